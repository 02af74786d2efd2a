"""Each chunk checked again: its rows counted (the chunks must add up to the query), read again
exactly as the job read them and checksummed against the target's rows; chunks a swap made
indistinguishable merged into one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from ..config import Endpoint
from ..errors import ArrowMapperError, redact
from ..plan import Chunk
from ..sources import SourceLayout, source_sql
from ..targets import LedgerEntry, Target, WriteLayout
from ..transform import TransformSpec
from .report import ChunkCheck


def count_rows(src: Endpoint, query: str) -> int:
    """The rows ``query`` holds now (each chunk's rows are counted too: they must add up)."""
    from ..sources import read_arrow

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


def check_chunk(
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
    """One chunk checked: its rows in the source now against the ledger's ``entry`` and the
    target's rows; with ``write`` (how the job cast them) its rows read again as the job
    read them and checksummed (``server``: the servers' checksums, when they ran)."""
    from ..checksum import Checksum, align
    from ..run.worker import ChunkTask, source_batches
    from ..sources import read_arrow

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
