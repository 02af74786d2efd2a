"""Order-independent checksums of Arrow data, for verifying what a chunk wrote.

Each row is hashed (Polars ``hash_rows`` with a fixed seed) and the 64-bit hashes are summed in
two 32-bit halves, so the result does not depend on row order or on batch boundaries. Both
sides of a comparison must have the same column types: cast the read-back rows to the schema of
the rows that were sent (:func:`align`) before hashing them.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

SEED = 0x5EED_A11  # part of the format: changing it changes every stored checksum
VERSION = "h1"


def _hashable(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    """The batch with the types Polars cannot hash as their exact text or storage
    (decimal256 -> string, extension types -> their storage)."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    columns = []
    for column in table.columns:
        if isinstance(column.type, pa.BaseExtensionType):
            column = pa.chunked_array(
                [c.storage for c in column.chunks], type=column.type.storage_type
            )
        if pa.types.is_decimal256(column.type):
            column = column.cast(pa.string())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


class Checksum:
    """Accumulates rows; ``digest`` is ``h1:<rows>:<hi>:<lo>``."""

    def __init__(self) -> None:
        self.rows = 0
        self._hi = 0
        self._lo = 0

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        import polars as pl

        if batch.num_rows == 0:
            return
        frame = pl.from_arrow(_hashable(batch))
        assert isinstance(frame, pl.DataFrame)
        hashes = frame.hash_rows(seed=SEED).to_arrow()
        self._hi += int(pc.sum(pc.shift_right(hashes, pa.scalar(32, pa.uint64()))).as_py() or 0)
        self._lo += int(
            pc.sum(pc.bit_wise_and(hashes, pa.scalar(0xFFFFFFFF, pa.uint64()))).as_py() or 0
        )
        self.rows += batch.num_rows

    def add_all(self, batches: Iterable[pa.RecordBatch]) -> Checksum:
        for batch in batches:
            self.add(batch)
        return self

    @property
    def digest(self) -> str:
        return f"{VERSION}:{self.rows}:{self._hi & (2**64 - 1):x}:{self._lo & (2**64 - 1):x}"


#: text that ends in a time of day, with no zone offset after it
_NO_OFFSET = r"([T ]\d\d:\d\d(:\d\d(\.\d*)?)?)$"


def instants(column: pa.ChunkedArray, want: pa.DataType) -> pa.ChunkedArray:
    """A SQLite target's zoned timestamps, read back as text, as the instants ``want`` holds:
    ``...+00:00`` as written now, and the UTC text without an offset that earlier versions
    wrote (so the jobs they ran still verify)."""
    import pyarrow.compute as pc

    text = pc.replace_substring_regex(column, _NO_OFFSET, "\\1+00:00")
    return text.cast(pa.timestamp(want.unit, "UTC")).cast(want)


def align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast ``table``'s columns to ``schema``'s types (storage of extension types first)."""
    columns = []
    for field in schema:
        column = table.column(field.name)
        if isinstance(column.type, pa.BaseExtensionType):
            column = pa.chunked_array(
                [c.storage for c in column.chunks], type=column.type.storage_type
            )
        if (
            pa.types.is_timestamp(field.type)
            and field.type.tz is not None
            and pa.types.is_string(column.type)
        ):
            column = instants(column, field.type)
        if column.type != field.type:
            column = column.cast(field.type)
        columns.append(column)
    return pa.Table.from_arrays(
        columns, schema=pa.schema([pa.field(f.name, f.type) for f in schema])
    )


_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_MASK = 2**64 - 1


class CopyDigest:
    """Count and order-independent digest of a PostgreSQL binary COPY stream's tuples, fed
    block by block (the COPY fast path's ``verify``). Only the framing is parsed -- each
    tuple's field count and field lengths -- and each tuple's bytes are hashed as they are
    (BLAKE2b, 64 bits, summed): no value is decoded. Two streams of the same column types
    digest alike whatever their row order and block boundaries; ``digest`` is
    ``c1:<rows>:<sum>``, a format of its own (not comparable with :class:`Checksum`)."""

    def __init__(self) -> None:
        self.rows = 0
        self.done = False  # the stream's trailer was seen
        self._sum = 0
        self._buf = bytearray()
        self._header = False

    def feed(self, data: bytes | memoryview) -> None:
        """Take the next block of the stream."""
        import struct
        from hashlib import blake2b

        buf = self._buf
        buf += data
        n, pos = len(buf), 0
        if not self._header:
            if n < 19:
                return
            if bytes(buf[:11]) != _COPY_SIGNATURE:
                raise ValueError("not a binary COPY stream (bad signature)")
            pos = 19 + struct.unpack_from("!i", buf, 15)[0]
            if n < pos:
                return
            self._header = True
        unpack, total = struct.unpack_from, self._sum
        while pos + 2 <= n and not self.done:
            fields = unpack("!h", buf, pos)[0]
            if fields == -1:
                self.done = True
                pos += 2
                break
            p = pos + 2
            for _ in range(fields):
                if p + 4 > n:
                    break
                length = unpack("!i", buf, p)[0]
                p += 4 + max(length, 0)
            else:
                if p <= n:
                    h = blake2b(buf[pos:p], digest_size=8).digest()
                    total = (total + int.from_bytes(h, "little")) & _MASK
                    self.rows += 1
                    pos = p
                    continue
            break  # the tuple goes on in the next block
        self._sum = total
        del buf[:pos]

    @property
    def digest(self) -> str:
        return f"c1:{self.rows}:{self._sum:x}"
