"""The strategies: from a few probed facts to the ranges of a :class:`Plan`.

The boundaries only decide how *balanced* the chunks are: equal-width (``key``), or at the key's
quantiles (``quantile``, skew-aware, any orderable type). ``offset`` pages through the query
ordered by a unique key; ``ctid`` splits a PostgreSQL heap by block, ``rowid`` a SQLite table
by rowid. The planner decides ranges only: the :class:`Probe` it is given answers its
questions and the :class:`ChunkRenderer` writes each range as the source reads it, so it can be
tested without a database.

Every chunk runs the query again, so a query that is not deterministic under re-execution
(:func:`arrowmapper.sql.nondeterministic`: a LIMIT, ``random()``, ``now()``, TABLESAMPLE...) is
never split: ``auto`` reads it in one chunk and says why; a splitting strategy is refused.
"""

from __future__ import annotations

import json
import logging
import re

from ..config import STRATEGIES
from ..errors import ConfigError, PlanError
from ..sql import bare_table, nondeterministic, sql_dialect
from . import ranges as rg
from .records import Chunk, ChunkRenderer, Plan, Probe

log = logging.getLogger("arrowmapper")
_INTEGER_OR_TIME = re.compile(r"^(u?int\d+|date\d+|timestamp.*)")

#: auto's choice for a plain table without a key, by the table's physical row address
_LOCATOR_REASONS = {
    "ctid": "no key given and the query is a plain PostgreSQL table: heap block ranges",
    "rowid": "no key given and the query is a plain SQLite table: rowid ranges",
}


def _check_key(probe: Probe, key: str | None, strategy: str) -> str:
    if not key:
        raise PlanError(f"strategy {strategy!r} needs a key column: pass key='column_name'")
    cols = probe.columns()
    if key not in cols:
        raise PlanError(
            f"key column {key!r} is not in the query's columns ({', '.join(cols) or 'none'}); "
            "pass one of those as key="
        )
    return key


def bounds_json(rng: rg.ChunkRange) -> str:
    """A range as the ``bounds`` a chunk and its ledger row keep."""
    if isinstance(rng, rg.KeyRange):
        return json.dumps({"lo": rng.lo, "hi": rng.hi, "null": rng.null}, default=str)
    if isinstance(rng, rg.Page):
        return json.dumps({"offset": rng.offset, "limit": rng.limit})
    if rng.locator == "ctid":
        return json.dumps({"block_lo": rng.lo, "block_hi": rng.hi})
    return json.dumps({"lo": rng.lo, "hi": rng.hi})


def default_renderer(dialect: str) -> ChunkRenderer:
    """The SQL source's rendering for ``dialect`` (what a bare :class:`Probe` is planned with)."""
    from ..sources.render import SqlRender  # the source renders; imported when planning

    return SqlRender(dialect)


#: strategies only a file source plans (it plans itself: Source.plan)
FILE_ONLY: tuple[str, ...] = ("rowgroup", "byterange", "file")


def build_plan(
    probe: Probe,
    query: str,
    strategy: str,
    key: str | None,
    chunk_size: int,
    workers: int = 1,
    render: ChunkRenderer | None = None,
) -> Plan:
    """Probe the source as little as the strategy needs and return the chunk plan; each range
    is written by ``render`` (None: the SQL source's rendering for ``probe.dialect``)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    if strategy in FILE_ONLY:
        raise PlanError(
            f"strategy {strategy!r} cuts files (by row group, byte range or file); a database "
            "query is cut with auto, offset, key, quantile, ctid, rowid or none"
        )
    out = render if render is not None else default_renderer(probe.dialect)
    reason = "chosen by the caller"
    dialect = probe.dialect
    why = None if bare_table(query, dialect) is not None else nondeterministic(query, dialect)
    if why and strategy not in ("auto", "none"):
        raise PlanError(
            f"strategy {strategy!r} splits the query into chunks that each run it again, but "
            f"the query is not deterministic: {why}. Use strategy='none' (one chunk, the query "
            "runs once), or materialise the result first (CREATE TABLE ... AS <query>) and "
            "copy that table"
        )
    if strategy == "auto":
        if why:
            strategy, reason = "none", f"one chunk: the query is not deterministic ({why})"
        else:
            strategy, reason = _choose(probe, query, key, chunk_size)
    if strategy == "none":
        return _plan_one(probe, query, key, reason, out)
    if strategy == "offset":
        return _plan_offset(probe, query, _check_key(probe, key, strategy), chunk_size, reason, out)
    if strategy in ("key", "quantile"):
        col = _check_key(probe, key, strategy)
        return _plan_keys(probe, query, strategy, col, chunk_size, reason, out)
    if strategy == "ctid":
        try:
            return _plan_ctid(probe, query, chunk_size, reason, out)
        except PlanError:
            if reason == "chosen by the caller":
                raise
            # auto's guess: a name that is a view or a partitioned table has no heap blocks
            why = "no key given and the query names a view or partitioned table: one chunk"
            return _plan_one(probe, query, key, why, out)
    return _plan_rowid(probe, query, chunk_size, reason, out)


def _plan_one(probe: Probe, query: str, key: str | None, reason: str, out: ChunkRenderer) -> Plan:
    rows = probe.count()
    whole = out.everything(query)
    return Plan(
        "none", reason, key, query, (Chunk(0, whole.sql, whole.predicate, "{}", rows),), rows
    )


def _chunk(i: int, rendered_sql: str, predicate: str, rng: rg.ChunkRange, rows: int) -> Chunk:
    return Chunk(i, rendered_sql, predicate, bounds_json(rng), rows)


def _plan_keys(
    probe: Probe,
    query: str,
    strategy: str,
    col: str,
    chunk_size: int,
    reason: str,
    out: ChunkRenderer,
) -> Plan:
    rows, nonnull, lo, hi = probe.key_stats(col)
    n = rg.chunk_count(nonnull, chunk_size)
    if strategy == "key":
        if not _INTEGER_OR_TIME.match(probe.columns()[col]):
            raise PlanError(
                f"strategy 'key' needs an integer, date or timestamp key; {col!r} is "
                f"{probe.columns()[col]}; use strategy='quantile' for any orderable key"
            )
        boundaries = rg.equal_width_boundaries(lo, hi, n)
    else:
        boundaries = probe.quantiles(col, n) if n > 1 and nonnull else []
    nullable = rows > nonnull or bool(probe.declared_nullable(col))
    ranges = rg.ranges_from_boundaries(boundaries, nullable)
    per = nonnull // max(1, len(ranges) - (1 if nullable else 0))
    rendered = [out.key_range(query, col, r) for r in ranges]
    counts = _range_counts(probe, [done.predicate for done in rendered])
    chunks = []
    for i, (r, done) in enumerate(zip(ranges, rendered, strict=True)):
        est = counts[i] if counts else (rows - nonnull) if r.null else per
        chunks.append(_chunk(i, done.sql, done.predicate, r, est))
    return Plan(strategy, reason, col, query, tuple(chunks), rows)


#: a key plan of at most this many chunks counts each chunk's rows (one scan of the query)
COUNTED_RANGES = 256


def _range_counts(probe: Probe, predicates: list[str]) -> list[int] | None:
    """Each key range's rows, counted in one scan, so the progress of a skewed key is told in
    rows that are there (an equal share per chunk would call a range holding 80% of the rows
    one chunk's worth); None when the probe cannot count (files), for one range or past
    :data:`COUNTED_RANGES` (then each range gets an equal share, corrected as chunks finish)."""
    counter = getattr(probe, "range_counts", None)
    if counter is None or not 1 < len(predicates) <= COUNTED_RANGES:
        return None
    try:
        counts: list[int] = counter(predicates)
    except Exception as exc:  # an estimate: the plan stands without it
        log.warning("could not count the rows of each key range (%s); estimating", exc)
        return None
    return counts


def _choose(probe: Probe, query: str, key: str | None, chunk_size: int) -> tuple[str, str]:
    bt = bare_table(query, probe.dialect)
    if key:
        col = _check_key(probe, key, "auto")
        if _INTEGER_OR_TIME.match(probe.columns()[col]):
            rows, nonnull, lo, hi = probe.key_stats(col)
            if rows <= chunk_size:
                return "none", f"{rows} rows fit in one chunk of {chunk_size}"
            if isinstance(lo, int) and isinstance(hi, int) and nonnull:
                density = nonnull / max(1, hi - lo + 1)
                if density >= 0.5:
                    return (
                        "key",
                        f"integer key {col!r} is dense ({density:.0%}): equal-width ranges",
                    )
                return "quantile", f"integer key {col!r} is sparse or skewed ({density:.1%})"
            return "quantile", f"key {col!r} is temporal: quantile ranges balance the chunks"
        return "quantile", f"key {col!r} is {probe.columns()[col]}: quantile ranges"
    locator = sql_dialect(probe.dialect).row_locator
    if bt is not None and locator is not None:
        return locator, _LOCATOR_REASONS[locator]
    return "none", "no key given and the query is not a plain table: one chunk (pass key= to split)"


def _plan_offset(
    probe: Probe, query: str, key: str, chunk_size: int, reason: str, out: ChunkRenderer
) -> Plan:
    if not probe.is_unique(key):
        raise PlanError(
            f"strategy 'offset' needs a unique ORDER BY key, but {key!r} has duplicate values "
            "(or more than one NULL); pick a unique column or use strategy='quantile'"
        )
    rows = probe.count()
    n = rg.chunk_count(rows, chunk_size)
    chunks = []
    for i in range(n):
        # open-ended last page: rows appended after planning are not lost
        page = rg.Page(i * chunk_size, chunk_size if i < n - 1 else None)
        done = out.page(query, key, page)
        est = min(chunk_size, rows - page.offset)
        chunks.append(_chunk(i, done.sql, done.predicate, page, est))
    return Plan("offset", reason, key, query, tuple(chunks), rows)


def _has_locator(probe: Probe, query: str, locator: str) -> bool:
    d = sql_dialect(probe.dialect)
    return d.row_locator == locator and bare_table(query, d.name) is not None


def _plan_ctid(probe: Probe, query: str, chunk_size: int, reason: str, out: ChunkRenderer) -> Plan:
    if not _has_locator(probe, query, "ctid"):
        raise PlanError(
            "strategy 'ctid' needs a PostgreSQL source and a plain table name as the query "
            "(e.g. query='events'); use strategy='key' or 'quantile' with key= for a query"
        )
    blocks, rows = probe.heap_blocks()
    per_block = max(1.0, rows / max(1, blocks))
    step = max(1, int(chunk_size / per_block))
    cuts = list(range(step, blocks, step))
    edges: list[int | None] = [None, *cuts, None]
    chunks = []
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        rng = rg.LocatorRange("ctid", lo, hi)
        done = out.locator_range(query, rng)
        width = (hi if hi is not None else blocks) - (lo or 0)
        chunks.append(_chunk(i, done.sql, done.predicate, rng, int(width * per_block)))
    return Plan("ctid", reason, None, query, tuple(chunks), rows)


def _plan_rowid(probe: Probe, query: str, chunk_size: int, reason: str, out: ChunkRenderer) -> Plan:
    if not _has_locator(probe, query, "rowid"):
        raise PlanError(
            "strategy 'rowid' needs a SQLite source and a plain table name as the query; "
            "use strategy='key' or 'quantile' with key= for a query"
        )
    rows, lo, hi = probe.rowid_range()
    cells = rg.ranges_from_boundaries(
        rg.equal_width_boundaries(lo, hi, rg.chunk_count(rows, chunk_size)), False
    )
    chunks = []
    for i, cell in enumerate(cells):
        rng = rg.LocatorRange("rowid", cell.lo, cell.hi)
        done = out.locator_range(query, rng)
        chunks.append(_chunk(i, done.sql, done.predicate, rng, rows // len(cells)))
    return Plan("rowid", reason, "rowid", query, tuple(chunks), rows)
