"""Reading one part of a file -- a Parquet file's row groups, an Arrow file's record batches, a
byte range of a CSV or JSON-lines file, or a whole file -- as Arrow record batches in the
source's one schema. Every failure names the file and where in it."""

from __future__ import annotations

import contextlib
import mmap
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ...config.files import FileSpec
from ...errors import SourceError
from .discover import FileInfo, check_unchanged
from .rejects import Rejects
from .schema import csv_convert, csv_options, csv_quote, encoding_hint, overrides

#: bytes a JSON-lines block holds (a line longer than this cannot be read)
JSON_BLOCK = 1 << 24


@contextlib.contextmanager
def open_ipc(path: str) -> Iterator[Any]:
    """An Arrow IPC file (random access) or stream reader over ``path``."""
    import pyarrow.ipc as ipc

    with pa.memory_map(path) as source:
        try:
            reader: Any = ipc.open_file(source)
        except pa.ArrowInvalid:
            source.seek(0)
            reader = ipc.open_stream(source)
        yield reader


def info_of(part: dict[str, Any]) -> FileInfo:
    """The :class:`FileInfo` a chunk's part was planned from."""
    return FileInfo(
        part["path"],
        part["size"],
        part["mtime_ns"],
        part["format"],
        part.get("compression"),
        bool(part.get("tab")),
        tuple((k, v) for k, v in part.get("hive", ())),
    )


def where(part: dict[str, Any]) -> str:
    """The part, in words: ``row groups 0-3``, ``bytes 0-1048576``, ``the whole file``."""
    if part.get("rg") is not None:
        rg = part["rg"]
        if len(rg) == 1:
            return f"row group {rg[0]}"
        return f"row groups {rg[0]}-{rg[-1]}"
    if part.get("range") is not None:
        s, e = part["range"]
        return f"bytes {s}-{e}"
    return "the whole file"


def part_bytes(part: dict[str, Any]) -> int:
    """The bytes of the file a part stands for, counted as read once the part is done: a byte
    range's length; a Parquet file's row groups' compressed bytes (from its metadata); an
    Arrow file's record batches' share of its size (by rows); a whole file's size."""
    size = int(part["size"])
    if part.get("range") is not None:
        s, e = part["range"]
        return max(0, int(e) - int(s))
    groups = part.get("rg")
    if groups is None:
        return size
    try:
        if part["format"] == "parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(part["path"]).metadata
            return sum(
                meta.row_group(i).column(j).total_compressed_size
                for i in groups
                for j in range(meta.num_columns)
            )
        with open_ipc(part["path"]) as reader:
            if not hasattr(reader, "get_batch"):
                return size
            rows = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
        total = sum(rows)
        return int(size * sum(rows[i] for i in groups) / total) if total else 0
    except (OSError, pa.ArrowInvalid, IndexError):  # changed since: counted as its share
        return size


def text_stream(part: dict[str, Any], info: FileInfo) -> Any:
    """The bytes a CSV or JSON-lines part is parsed from: a byte range with the file's header
    in front of it, or the whole file (decompressed); None for a range of blank lines only."""
    if part.get("range") is not None:
        from ..filesplit import read_range

        s, e = part["range"]
        header = read_range(info.path, 0, part.get("header", 0))
        body = read_range(info.path, s, e)
        if not body.strip(b"\r\n"):
            return None  # blank lines only: no rows
        if not body.endswith(b"\n"):
            body += b"\n"  # the file's last record, without a line end
        return pa.BufferReader(header + body)
    return pa.input_stream(info.path, compression=info.compression)


#: a whole CSV file this small (on disk) is read at once
_SMALL = 1 << 16


def csv_stream(part: dict[str, Any], info: FileInfo, spec: FileSpec) -> Any:
    """:func:`text_stream` for a CSV part; a small whole file is read at once, and a header
    record alone without a line end gets one (pyarrow refuses it: "Empty CSV file"; it is a
    file of no rows)."""
    from .schema import _ascii_newline

    if part.get("range") is not None or info.size > _SMALL:
        return text_stream(part, info)
    with pa.input_stream(info.path, compression=info.compression) as stream:
        data = bytes(stream.read(_SMALL + 1))
    if len(data) > _SMALL:  # decompressed, it is larger
        return text_stream(part, info)
    if data and b"\n" not in data and b"\r" not in data and _ascii_newline(spec.encoding):
        data += b"\n"
    return pa.BufferReader(data)


def _batches(
    part: dict[str, Any],
    spec: FileSpec,
    schema: pa.Schema,
    size: int,
    rejects: Rejects | None,
) -> Iterator[pa.RecordBatch]:
    info = info_of(part)
    fmt = info.format
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(info.path)
        groups = part.get("rg")
        if groups is None:
            groups = list(range(pf.num_row_groups))
        if groups:
            yield from pf.iter_batches(batch_size=size, row_groups=groups, use_threads=False)
        return
    if fmt == "arrow":
        with open_ipc(info.path) as reader:
            groups = part.get("rg")
            if not hasattr(reader, "get_batch"):  # a stream: read in order
                yield from reader
                return
            if groups is None:
                groups = range(reader.num_record_batches)
            for i in groups:
                yield reader.get_batch(i)
        return
    if spec.bad_rows is not None:  # a bad row is skipped (and kept) instead of failing
        from .bad import tolerant_batches

        def opener() -> Any:
            return csv_stream(part, info, spec) if fmt == "csv" else text_stream(part, info)

        yield from tolerant_batches(part, info, spec, schema, rejects or Rejects(), opener)
        return
    if fmt == "csv":
        yield from _csv_batches(part, info, spec, schema)
        return
    stream = text_stream(part, info)
    if stream is None:
        return
    from .jsonl import read_jsonl

    yield from read_jsonl(part, info, spec, schema, stream, lambda: text_stream(part, info))


def _csv_batches(
    part: dict[str, Any], info: FileInfo, spec: FileSpec, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """A CSV part's batches, its number columns converted exactly (:mod:`.csvtext`): a value
    its column's type would change fails the part, naming the line, the column and the fix."""
    import pyarrow.csv as pcsv

    from .csvtext import Inexact, checked_columns, exact_batch, read_types

    stream = csv_stream(part, info, spec)
    if stream is None:
        return
    read, parse = csv_options(info, spec)
    types = {f.name: f.type for f in schema}
    checked = checked_columns(types, overrides(spec))
    reader = pcsv.open_csv(
        stream,
        read_options=read,
        parse_options=parse,
        convert_options=csv_convert(spec, read_types(types, checked)),
    )
    rows = 0
    for batch in reader:
        try:
            out = exact_batch(batch, types, checked)
        except Inexact as exc:
            line = csv_line(part, info, spec, rows + exc.index)
            at = f", line {line}" if line is not None else ""
            raise SourceError(
                f"cannot read {part['path']} ({where(part)}{at}) as csv: {exc.message()}",
                transient=False,
            ) from None
        rows += batch.num_rows
        yield out


def csv_line(part: dict[str, Any], info: FileInfo, spec: FileSpec, row: int) -> int | None:
    """The line of the file the part's ``row``-th parsed row (from 0) starts on, or None
    (an encoding that is not ASCII-compatible)."""
    from .bad import _ascii_compatible, _line_base, _records

    if not _ascii_compatible(spec.encoding):
        return None
    record = row + 1 + (1 if spec.header else 0)  # pyarrow's numbering: the header is 1
    found = _records(
        csv_stream(part, info, spec), {record}, csv_quote(info, spec), spec.escape, spec.encoding
    )
    if record not in found:
        return None
    return _line_base(part, info) + found[record][0]


def partition_value(value: str | None, typ: pa.DataType) -> Any:
    """A partition folder's value as its column's type (see ``schema._partition_type``)."""
    import datetime as dt

    if value is None:
        return None
    if pa.types.is_integer(typ):
        return int(value)
    if pa.types.is_date(typ):
        return dt.date.fromisoformat(value)
    return value


def conform(batch: pa.RecordBatch, schema: pa.Schema, part: dict[str, Any]) -> pa.RecordBatch:
    """``batch`` in the source's schema: columns in its order, cast (safely: a value that does
    not fit is an error, never a changed value), a column the file lacks as NULLs, partition
    columns filled from the folder names."""
    n = batch.num_rows
    hive = dict((k, v) for k, v in part.get("hive", ()))
    names = batch.schema.names
    arrays = []
    for f in schema:
        if f.name in names:
            col = batch.column(names.index(f.name))
            if col.type != f.type:
                try:
                    col = col.cast(f.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SourceError(
                        f"{part['path']} ({where(part)}): column {f.name!r} is {col.type} and "
                        f"does not fit the job's {f.type}: {exc}; pass columns= with a type "
                        "that holds every file's values",
                        transient=False,
                    ) from None
            arrays.append(col)
        elif f.name in hive:
            value = hive[f.name]
            arrays.append(pa.array([partition_value(value, f.type)] * n, type=f.type))
        else:
            arrays.append(pa.nulls(n, type=f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def read_part(
    part: dict[str, Any],
    spec: FileSpec,
    schema: pa.Schema,
    batch_size: int,
    rejects: Rejects | None = None,
) -> Iterator[pa.RecordBatch]:
    """One part's rows in ``schema``; the file checked first to be the version the job
    planned. A file that cannot be read is a terminal SourceError naming it and the part.
    With ``spec.bad_rows``, a CSV or JSON-lines row that does not parse is skipped instead and
    handed to ``rejects`` (:mod:`.bad`)."""
    check_unchanged(part)
    try:
        for batch in _batches(part, spec, schema, batch_size, rejects):
            if batch.num_rows:
                yield conform(batch, schema, part)
    except SourceError:
        raise
    except FileNotFoundError:
        check_unchanged(part)  # says it is gone
        raise
    except (OSError, pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        at = _line(part, str(exc), schema)
        said = re.sub(r"Row #\d+: ", "", str(exc)) if at.startswith(", line") else str(exc)
        raise SourceError(
            f"cannot read {part['path']} ({where(part)}{at}) as {part['format']}: {said}"
            f"{encoding_hint(said, spec)}",
            transient=False,
        ) from None


_BAD_ROW = re.compile(r"Expected \d+ columns, got \d+: (.*)$", re.S)
_BAD_VALUE = re.compile(r"In CSV column #(\d+): .*invalid value '(.*)'", re.S)


def _line(part: dict[str, Any], message: str, schema: pa.Schema) -> str:
    """Where in the file a parse error is (``, line 501``; ``, column 'id'``), or ""."""
    try:
        bad_row = _BAD_ROW.search(message)
        if bad_row and not part.get("compression"):
            text = bad_row.group(1).split(" ...", 1)[0].strip().encode()
            start, end = part.get("range") or (0, part["size"])
            with (
                open(part["path"], "rb") as f,
                mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m,
            ):
                at = m.find(text, start, end)
                if at >= 0:
                    line = m[:at].count(b"\n") + 1
                    return f", line {line}"
        bad_value = _BAD_VALUE.search(message)
        if bad_value and int(bad_value.group(1)) < len(schema):
            name = schema.field(int(bad_value.group(1))).name
            return f", column {name!r}: {bad_value.group(2)!r} is not {schema.field(name).type}"
    except (OSError, ValueError):
        pass
    return ""
