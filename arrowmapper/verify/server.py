"""Server checksums: the source and target servers hash each of a chunk's rows' text
themselves (no connectorx, Arrow or Polars between them), so a value the reader changed shows
up as a mismatch. Both servers must hash rows (:attr:`SourceDialect.hashes_rows
<arrowmapper.sources.SourceDialect.hashes_rows>`, :attr:`Dialect.hashes_rows
<arrowmapper.targets.Dialect.hashes_rows>`)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from ..config import Endpoint
from ..plan import Chunk
from ..sources import SourceLayout, source_dialect
from ..targets import LedgerEntry, Target
from ..transform import TransformSpec

# Session settings both servers render values with, so the same value has the same text.
_RENDER = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
)
_HASH_SEED = 0x5EED  # part of the server checksum's format ("s1")


def no_server_checksums(
    src: Endpoint, tgt: Target, spec_t: TransformSpec, layout: SourceLayout
) -> str | None:
    """Why the servers cannot checksum this job's chunks themselves (None: they can)."""
    if not (source_dialect(src.dialect).hashes_rows and tgt.dialect.hashes_rows):
        return "they need PostgreSQL as both source and target"
    if spec_t.kind != "identity":
        return "the job's transform runs in Python, where the servers cannot follow it"
    if not layout.columns or any(c.sql_type is None for c in layout.columns):
        return "the source's column types could not be described"
    return None


def _row_hash(exprs: Sequence[str]) -> str:
    """SQL: the order-independent sum of 64-bit hashes of each row's text."""
    row = f"ROW({', '.join(exprs)})::text" if exprs else "''"
    return f"COALESCE(SUM(hashtextextended({row}, {_HASH_SEED})), 0)::text"


def _digest(rows: int, total: str) -> str:
    return f"s1:{rows}:{total}"


def _compared_columns(tgt: Target, layout: SourceLayout) -> tuple[list[str], list[str]]:
    """The SQL expressions each side hashes, column by column: the target's columns the query
    also returns, the source's values cast to the target's type where the types differ (so
    both sides render them with the same output function), enums and other user-defined
    types as text."""
    source_types = {c.name: c.sql_type for c in layout.columns}
    src_exprs, dst_exprs = [], []
    for name, sql_type, base, _typname, typtype, category, own_kind in tgt.pg_columns():
        if name not in source_types:
            continue
        q = tgt.dialect.quote(name)
        if source_types[name] == sql_type:
            src_exprs.append(q)
            dst_exprs.append(q)
        elif typtype == "e" or category == "U" or own_kind not in ("b", "d"):
            src_exprs.append(f"{q}::text")
            dst_exprs.append(f"{q}::text")
        else:
            src_exprs.append(f"CAST({q} AS {base})")
            dst_exprs.append(f"CAST({q} AS {base})")
    return src_exprs, dst_exprs


def server_checksums(
    src: Endpoint,
    tgt: Target,
    chunks: Sequence[Chunk],
    ledger: dict[int, LedgerEntry],
    layout: SourceLayout,
) -> dict[int, tuple[str, str | None]]:
    """chunk_id -> (source server's checksum, target server's checksum or None when the
    chunk's rows cannot be located). One aggregate query per chunk on the source; one scan of
    the target for every chunk together (its rows grouped by the transaction that wrote them)."""
    from ..adbc import connect_postgresql

    src_exprs, dst_exprs = _compared_columns(tgt, layout)
    out: dict[int, tuple[str, str | None]] = {}
    conn = connect_postgresql(src.uri)
    try:
        cur = conn.cursor()
        for sql in _RENDER:
            cur.execute(sql)
        for chunk in chunks:
            if chunk.chunk_id not in ledger:
                continue
            cur.execute(f"SELECT COUNT(*), {_row_hash(src_exprs)} FROM ({chunk.sql}) AS _am_v")
            n, total = cur.fetchall()[0]
            out[chunk.chunk_id] = (_digest(int(n), str(total)), None)
        cur.close()
        conn.rollback()
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    xids = {
        int(e.locator.partition(":")[2]): cid
        for cid, e in ledger.items()
        if e.locator and e.locator.startswith("xid:") and cid in out
    }
    if not xids:
        return out
    found = {cid: _digest(0, "0") for cid in xids.values()}
    listed = ", ".join(f"'{x}'" for x in sorted(xids))
    cur = tgt.conn.cursor()
    try:
        for sql in _RENDER:
            cur.execute(sql)
        cur.execute(
            f"SELECT xmin::text, COUNT(*), {_row_hash(dst_exprs)} FROM {tgt.ref.qualified()} "
            f"WHERE xmin = ANY(ARRAY[{listed}]::xid[]) GROUP BY xmin"
        )
        for xid, n, total in cur.fetchall():
            found[xids[int(xid)]] = _digest(int(n), str(total))
    finally:
        cur.close()
        tgt.rollback()
    for cid, digest in found.items():
        out[cid] = (out[cid][0], digest)
    return out
