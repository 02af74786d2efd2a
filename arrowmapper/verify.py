"""Re-checking a finished job against its source: :func:`verify` (``arrowmapper verify``).

Per chunk of the job's stored plan, up to three independent checks:

* **counts**: the rows the chunk's query returns now, what the ledger says was read and
  written, and the rows the target holds for the chunk (found by its locator: the PostgreSQL
  transaction that wrote them, or a SQLite rowid range).
* **reader checksums**: the chunk is read again exactly as the job read it (connectorx, the
  job's transform, the cast to the target's types) and the order-independent checksum of
  those rows is compared with the target's rows and, for ``verify=True`` jobs, the ledger's.
  This catches a write that changed or lost a value, but not a value the *reader* changed:
  it would change it again in the same way.
* **server checksums** (PostgreSQL source and target, no transform): the source server
  hashes the text of each of the chunk's rows, rendered in the target's column types, and
  sums the hashes; the target server does the same over the rows the chunk committed. Neither
  side goes through connectorx, Arrow or Polars, so a value the reader changed (as connectorx
  does with ``infinity``) shows up as a mismatch.

:attr:`VerifyReport.checks_done` names the checks that ran.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .config import Endpoint, check_reachable, parse_uri
from .errors import ArrowMapperError, ConfigError, redact
from .plan import Chunk, Plan, quote_ident
from .run.prepare import output_schema, stored_plan, table_ref, write_layout
from .sources import SourceLayout, SourceProbe, describe_source, source_sql
from .targets import LedgerEntry, TableRef, Target, WriteLayout, check_job_id, open_target
from .transform import TransformLike, TransformSpec, normalize

#: The checks :func:`verify` can run, in the words the report uses.
COUNTS = "row counts"
READER = "reader checksums (the chunk read again through connectorx, cast as the job did)"
SERVER = "server checksums (the source and target servers hash each row's text)"

# Session settings both servers render values with, so the same value has the same text.
_RENDER = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
)
_HASH_SEED = 0x5EED  # part of the server checksum's format ("s1")


@dataclass(frozen=True)
class ChunkCheck:
    """One chunk of a finished job: the source now, the ledger, and the target's rows.

    ``source_checksum``/``target_checksum``: the reader checksums (see the module's doc);
    ``server_source_checksum``/``server_target_checksum``: computed by the servers themselves;
    ``read_error``: why the chunk could not be read again the way the job read it.
    """

    chunk_id: int
    predicate: str
    source_rows: int
    rows_read: int | None
    rows_written: int | None
    target_rows: int | None = None
    source_checksum: str | None = None
    target_checksum: str | None = None
    ledger_checksum: str | None = None
    server_source_checksum: str | None = None
    server_target_checksum: str | None = None
    read_error: str | None = None

    @property
    def committed(self) -> bool:
        """Whether the ledger records the chunk as committed."""
        return self.rows_written is not None

    @property
    def problems(self) -> list[str]:
        """What is wrong with this chunk, one phrase each (empty: nothing)."""
        if not self.committed:
            return ["not committed"]
        found = []
        read = self.rows_read if self.rows_read is not None else self.rows_written
        if read != self.source_rows:
            found.append(f"source now has {self.source_rows} rows, {read} were read")
        if self.target_rows is not None and self.target_rows != self.rows_written:
            found.append(f"target holds {self.target_rows} rows, {self.rows_written} were written")
        sums = {x for x in (self.source_checksum, self.target_checksum, self.ledger_checksum) if x}
        if len(sums) > 1:
            found.append(
                f"checksums differ (source {self.source_checksum}, target "
                f"{self.target_checksum}, ledger {self.ledger_checksum})"
            )
        server = (self.server_source_checksum, self.server_target_checksum)
        if all(server) and server[0] != server[1]:
            found.append(
                f"the source server's checksum of the chunk's rows ({server[0]}) differs from "
                f"the target server's ({server[1]}): a value differs between source and target"
            )
        if self.read_error:
            found.append(f"the source cannot be read as the job read it: {self.read_error}")
        return found

    @property
    def ok(self) -> bool:
        """Whether the chunk passed every check that ran."""
        return not self.problems


@dataclass(frozen=True)
class VerifyReport:
    """The result of :func:`verify`: per-chunk checks and the target table's total."""

    job_id: str
    table: str
    checks: tuple[ChunkCheck, ...]
    target_rows: int
    checks_done: tuple[str, ...] = (COUNTS,)
    checks_skipped: tuple[str, ...] = ()  # a check that could not run, and why
    source_total: int | None = None  # the query's rows now, counted once (chunks must add up)

    @property
    def overlap(self) -> str | None:
        """Why the chunks do not add up to the query (rows in two chunks, or in none)."""
        if self.source_total is None:
            return None
        in_chunks = sum(c.source_rows for c in self.checks)
        if in_chunks == self.source_total:
            return None
        return (
            f"the chunks' queries hold {in_chunks:,} rows where the query holds "
            f"{self.source_total:,}: chunks overlap or miss rows"
        )

    @property
    def ledger_rows(self) -> int:
        """The rows the ledger says this job wrote."""
        return sum(c.rows_written or 0 for c in self.checks)

    @property
    def ok(self) -> bool:
        """Whether every chunk passed every check that ran, and the chunks add up."""
        return all(c.ok for c in self.checks) and self.overlap is None

    def summary(self) -> str:
        """A few lines: the totals, the checks that ran, and each chunk that failed one."""
        bad = [c for c in self.checks if not c.ok]
        checked = "counts and checksums" if len(self.checks_done) > 1 else "counts"
        lines = [
            f"job {self.job_id} -> {self.table}: {len(self.checks)} chunks, "
            f"{len(self.checks) - len(bad)} match the source ({checked}); "
            f"ledger {self.ledger_rows:,} rows, table {self.target_rows:,} rows",
            f"  checked: {'; '.join(self.checks_done)}",
        ]
        lines.extend(f"  not checked: {why}" for why in self.checks_skipped)
        if self.overlap:
            lines.append(f"  {self.overlap}")
        for c in bad:
            lines.append(f"  chunk {c.chunk_id} ({c.predicate}): {'; '.join(c.problems)}")
        if self.target_rows != self.ledger_rows:
            lines.append(
                "  note: the table's row count differs from this job's ledger (other "
                "jobs or writers use the table, or the transform changes row counts)"
            )
        return "\n".join(lines)


def verify(
    source: str,
    target: str,
    job_id: str,
    *,
    schema: str | None = None,
    transform: TransformLike = None,
    checksums: bool = True,
) -> VerifyReport:
    """Re-check a finished job, chunk by chunk: the rows in the source now, what the ledger says
    was read and written, and the rows the target holds for that chunk.

    With ``checksums`` (the default) each chunk is also read from the source again, transformed
    (pass the job's ``transform``) and cast like the job did, and its order-independent checksum
    is compared with the chunk's rows in the target and, for jobs run with ``verify=True``, with
    the checksum in the ledger. When source and target are both PostgreSQL and there is no
    transform, both servers also checksum the chunk's rows themselves (each row's text in the
    target's column types), which catches a value the reader changed. ``checksums=False``
    compares counts only. :attr:`VerifyReport.checks_done` names the checks that ran.
    """

    check_job_id(job_id)
    src, dst = parse_uri(source, "source"), parse_uri(target, "target")
    check_reachable(src, "source")
    check_reachable(dst, "target")
    spec_t = normalize(transform)
    lookup = open_target(dst, table_ref(dst, schema, "_"))
    try:
        stored = stored_plan(lookup, job_id)
        if stored is None:
            where = f"schema {schema!r}" if schema else "the default schema"
            raise ConfigError(
                f"no job {job_id!r} in the ledger of {dst.redacted} ({where}); "
                "pass the schema the job loaded into"
            )
        table_name, plan_json = stored
        ledger = lookup.ledger(job_id)
    finally:
        lookup.close()
    tschema, _, tname = table_name.rpartition(".")
    tgt = open_target(dst, TableRef(tschema or None, tname, dst.dialect))
    done, skipped = [COUNTS], []
    try:
        target_rows = tgt.row_count()
        source_total = _count(src, Plan.from_json(plan_json).query)
        plan = Plan.from_json(plan_json)
        layout = describe_source(src, plan.query)
        write = None
        if checksums:  # read and cast the source exactly as the job did
            try:
                out_schema, _, _ = output_schema(SourceProbe(src, plan.query, layout), spec_t)
                write = write_layout(tgt, out_schema, (), layout.session)
                done.append(READER)
            except ArrowMapperError as exc:
                if exc.kind != "data":
                    raise
                # the source now holds a value the job would refuse (infinity, ...): the
                # reader cannot check, the servers still can
                skipped.append(f"reader checksums: {redact(str(exc))}")
        chunks, ledger = merge_shared_locators(plan.chunks, ledger)
        server: dict[int, tuple[str, str | None]] = {}
        if checksums:
            why_not = _no_server_checksums(src, dst, spec_t, layout)
            if why_not is None:
                try:
                    server = _server_checksums(src, tgt, chunks, ledger, layout)
                    done.append(SERVER)
                except Exception as exc:  # e.g. a type with no cast between the two sides
                    tgt.rollback()
                    text = " ".join(redact(str(exc)).split())[:300]
                    skipped.append(f"server checksums: the servers could not compute them ({text})")
            else:
                skipped.append(f"server checksums: {why_not}")
        checks = [
            _check_chunk(
                src,
                tgt,
                job_id,
                chunk,
                ledger.get(chunk.chunk_id),
                spec_t,
                write,
                layout if layout.columns else None,
                server.get(chunk.chunk_id),
            )
            for chunk in chunks
        ]
    finally:
        tgt.close()
    return VerifyReport(
        job_id, table_name, tuple(checks), target_rows, tuple(done), tuple(skipped), source_total
    )


def _count(src: Endpoint, query: str) -> int:
    """The rows ``query`` holds now (each chunk's rows are counted too: they must add up)."""
    from .sources import read_arrow

    counted = read_arrow(src, f"SELECT COUNT(*) AS n FROM {source_sql(query, src.dialect)}")
    return int(counted.read_all().column(0)[0].as_py())


def merge_shared_locators(
    chunks: Sequence[Chunk], ledger: dict[int, LedgerEntry]
) -> tuple[list[Chunk], dict[int, LedgerEntry]]:
    """Chunks whose rows can no longer be told apart (a ``replace`` job swapped into an
    existing table: every row was copied in the swap's transaction) are checked as one: their
    queries joined by UNION ALL, their ledger counts added."""
    groups: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        entry = ledger.get(chunk.chunk_id)
        if entry is not None and entry.locator:
            groups.setdefault(entry.locator, []).append(chunk)
    shared = {loc: group for loc, group in groups.items() if len(group) > 1}
    if not shared:
        return list(chunks), ledger
    merged_ids = {c.chunk_id for group in shared.values() for c in group}
    out = [c for c in chunks if c.chunk_id not in merged_ids]
    entries = {cid: e for cid, e in ledger.items() if cid not in merged_ids}
    for locator, group in shared.items():
        first = min(c.chunk_id for c in group)
        sql = " UNION ALL ".join(
            f"SELECT * FROM ({c.sql}) AS _am_part{i}" for i, c in enumerate(group)
        )
        ids = ", ".join(str(c.chunk_id) for c in group)
        out.append(Chunk(first, sql, f"chunks {ids}, swapped in together", "{}", None))
        parts = [ledger[c.chunk_id] for c in group]
        reads = [p.rows_read for p in parts]
        entries[first] = LedgerEntry(
            sum(p.rows for p in parts),
            None if any(r is None for r in reads) else sum(r or 0 for r in reads),
            None,  # per-chunk checksums do not add up
            locator,
        )
    return sorted(out, key=lambda c: c.chunk_id), entries


def _no_server_checksums(
    src: Endpoint, dst: Endpoint, spec_t: TransformSpec, layout: SourceLayout
) -> str | None:
    """Why the servers cannot checksum this job's chunks themselves (None: they can)."""
    if src.dialect != "postgresql" or dst.dialect != "postgresql":
        return "they need PostgreSQL as both source and target"
    if spec_t.kind != "identity":
        return "the job's transform runs in Python, where the servers cannot follow it"
    if not layout.columns or any(c.sql_type is None for c in layout.columns):
        return "the source's column types could not be described"
    return None


def _check_chunk(
    src: Endpoint,
    tgt: Target,
    job_id: str,
    chunk: Chunk,
    entry: LedgerEntry | None,
    spec_t: TransformSpec,
    write: WriteLayout | None,
    layout: SourceLayout | None,
    server: tuple[str, str | None] | None = None,
) -> ChunkCheck:
    from .checksum import Checksum, align
    from .run.worker import ChunkTask, source_batches
    from .sources import read_arrow

    written = read = locator = stored_sum = None
    if entry is not None:
        written, read = entry.rows, entry.rows_read
        stored_sum, locator = entry.checksum, entry.locator
    if locator is not None and locator.startswith("none:"):
        locator = None  # its rows cannot be told apart in the target: not compared
    base: dict[str, Any] = dict(
        chunk_id=chunk.chunk_id,
        predicate=chunk.predicate,
        rows_read=read,
        rows_written=written,
        ledger_checksum=stored_sum,
        server_source_checksum=server[0] if server else None,
        server_target_checksum=server[1] if server else None,
    )
    if write is None:  # counts only
        counted = read_arrow(src, f"SELECT COUNT(*) AS n FROM ({chunk.sql}) AS _am_v").read_all()
        held = tgt.read_rows(locator, []).num_rows if locator else None
        return ChunkCheck(source_rows=int(counted.column(0)[0].as_py()), target_rows=held, **base)
    task = ChunkTask(
        job_id=job_id,
        chunk=chunk,
        source=src,
        target=tgt.endpoint,
        table=tgt.ref,
        target_schema=write.schema,
        transform=spec_t,
        layout=layout,
        write=write,
    )
    rows_in = [0]
    source_sum = Checksum()
    sent: list[pa.Schema] = []
    try:
        for batch in source_batches(task, None, rows_in):
            source_sum.add(batch)
            sent = sent or [batch.schema]
    except ArrowMapperError as exc:  # e.g. the source now holds a value the job would refuse
        counted = read_arrow(src, f"SELECT COUNT(*) AS n FROM ({chunk.sql}) AS _am_v").read_all()
        held = tgt.read_rows(locator, []).num_rows if locator else None
        return ChunkCheck(
            source_rows=int(counted.column(0)[0].as_py()),
            target_rows=held,
            read_error=redact(str(exc)),
            **base,
        )
    target_sum = None
    held = None
    if locator:
        back = tgt.read_rows(
            locator, sent[0].names if sent else [], as_text=set(write.staged), session=write.session
        )
        held = back.num_rows
        found = Checksum()
        if sent and back.num_rows:
            found.add(align(back, sent[0]))
        target_sum = found.digest
    return ChunkCheck(
        source_rows=rows_in[0],
        target_rows=held,
        source_checksum=source_sum.digest,
        target_checksum=target_sum,
        **base,
    )


# --------------------------------------------------------------------------- server checksums


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
        q = quote_ident(name, "postgresql")
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


def _server_checksums(
    src: Endpoint,
    tgt: Target,
    chunks: Sequence[Chunk],
    ledger: dict[int, LedgerEntry],
    layout: SourceLayout,
) -> dict[int, tuple[str, str | None]]:
    """chunk_id -> (source server's checksum, target server's checksum or None when the
    chunk's rows cannot be located). One aggregate query per chunk on the source; one scan of
    the target for every chunk together (its rows grouped by the transaction that wrote them)."""
    from .adbc import connect_postgresql

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
