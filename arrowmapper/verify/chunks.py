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
from ..sources import Source, SourceLayout, read_arrow
from ..targets import LedgerEntry, Target, WriteLayout, conform
from ..transform import Transformer, TransformSpec
from .report import ChunkCheck


def count_rows(src: Endpoint, relation: str) -> int:
    """The rows ``relation`` (a FROM item: a table, or a query in parentheses with an alias)
    holds now."""
    counted = read_arrow(src, f"SELECT COUNT(*) AS n FROM {relation}")
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
    source: Source,
    tgt: Target,
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

    def counts_only(read_error: str | None = None) -> ChunkCheck:
        try:
            counted = source.count_rows("", chunk, layout)
        except ArrowMapperError as exc:  # a file that is gone or changed: 0 rows, and why
            counted, read_error = 0, read_error or redact(str(exc))
        held = tgt.read_rows(locator, []).num_rows if locator else None
        return ChunkCheck(source_rows=counted, target_rows=held, read_error=read_error, **base)

    if write is None:
        return counts_only()
    rows_in = 0
    source_sum = Checksum()
    sent: list[pa.Schema] = []
    transformer = Transformer(spec_t)
    try:  # read, transform and cast as the job's worker did
        for batch in source.read_chunk(chunk, layout):
            rows_in += batch.num_rows
            for out in transformer.batches(batch):
                out = conform(out, write.schema, tgt.ref.dialect)
                source_sum.add(out)
                sent = sent or [out.schema]
    except ArrowMapperError as exc:  # e.g. the source now holds a value the job would refuse
        return counts_only(redact(str(exc)))
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
        source_rows=rows_in,
        target_rows=held,
        source_checksum=source_sum.digest,
        target_checksum=target_sum,
        **base,
    )
