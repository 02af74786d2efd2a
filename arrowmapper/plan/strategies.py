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
from typing import Any

from ..config import STRATEGIES
from ..errors import ConfigError, PlanError
from ..sql import bare_table, nondeterministic, sql_dialect
from . import ranges as rg
from .records import RELATION_WORDS, Chunk, ChunkRenderer, Plan, Probe, TableShape

log = logging.getLogger("arrowmapper")
_INTEGER_OR_TIME = re.compile(r"^(u?int\d+|date\d+|timestamp.*)")
_DECIMAL = re.compile(r"^decimal(32|64|128|256)?\(")
_DECLARED_DECIMAL = re.compile(r"^(numeric|decimal)\b", re.IGNORECASE)


def _declared(probe: Probe, col: str) -> str | None:
    """The source's own type of ``col`` where the probe knows it (``numeric(12,2)``, ...)."""
    ask = getattr(probe, "declared_type", None)
    found = ask(col) if ask is not None else None
    return found if isinstance(found, str) else None


def _key_type(probe: Probe, col: str) -> str:
    """``col``'s type as a refusal names it: the source's own where known, else Arrow's."""
    arrow = probe.columns()[col]
    declared = _declared(probe, col)
    return f"{declared} ({arrow})" if declared and declared != arrow else arrow


def _ranged(probe: Probe, col: str) -> bool:
    """Whether the key strategy can cut ``col``'s domain into equal widths exactly: an
    integer, a date or timestamp, or an exact decimal (numeric read as text included)."""
    arrow = probe.columns()[col]
    if _INTEGER_OR_TIME.match(arrow) or _DECIMAL.match(arrow):
        return True
    return bool(_DECLARED_DECIMAL.match(_declared(probe, col) or ""))

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


def _shape(probe: Probe, query: str) -> TableShape | None:
    """What the catalog says of the plain table ``query`` names (None for a query, or a probe
    that cannot tell)."""
    if bare_table(query, probe.dialect) is None:
        return None
    ask = getattr(probe, "shape", None)
    found = ask() if ask is not None else None
    return found if isinstance(found, TableShape) else None


def bounds_json(rng: rg.ChunkRange) -> str:
    """A range as the ``bounds`` a chunk and its ledger row keep."""
    if isinstance(rng, rg.PartitionRange):
        if rng.partition is None:
            return json.dumps({"not_in": list(rng.listed)})
        return json.dumps(
            {"partition": rng.partition, "heap": rng.heap, "block_lo": rng.lo, "block_hi": rng.hi}
        )
    if isinstance(rng, rg.KeyRange):
        spec: dict[str, Any] = {"lo": rng.lo, "hi": rng.hi, "null": rng.null}
        if rng.after:
            spec["after"] = True
        return json.dumps(spec, default=str)
    if isinstance(rng, rg.HotRange):
        by = rng.by.column if rng.by.column is not None else rng.by.locator
        return json.dumps(
            {"value": rng.value, "by": by, "lo": rng.lo, "hi": rng.hi}, default=str
        )
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
            strategy, reason, key = _choose(probe, query, key, chunk_size)
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
        except PlanError as exc:
            if reason == "chosen by the caller":
                raise
            # auto's guess: a name the catalog could not tell has no heap blocks
            return _plan_one(probe, query, key, f"one chunk: {exc}", out)
    try:
        return _plan_rowid(probe, query, chunk_size, reason, out)
    except PlanError as exc:
        if reason == "chosen by the caller":
            raise
        return _plan_one(probe, query, key, f"one chunk: {exc}", out)


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
    if strategy == "key" and not _ranged(probe, col):
        raise PlanError(
            f"strategy 'key' cuts the key's range into equal widths, which needs an "
            f"integer, decimal, date or timestamp key; {col!r} is {_key_type(probe, col)}: "
            "use strategy='quantile' (any orderable key), or key= another column"
        )
    if strategy == "key":
        hot = _hot_values(probe, query, col, nonnull, chunk_size, None)
        rest = nonnull - sum(c for _, c in hot)
        n = rg.chunk_count(rest, chunk_size)
        boundaries = rg.equal_width_boundaries(lo, hi, n)
    else:
        n = rg.chunk_count(nonnull, chunk_size)
        boundaries = probe.quantiles(col, n) if n > 1 and nonnull else []
        # quantiles fall at most nonnull/n <= chunk_size rows apart, so a value holding more
        # rows than a chunk is one of the boundaries: only those are counted
        hot = _hot_values(probe, query, col, nonnull, chunk_size, _dedup(boundaries))
        rest = nonnull - sum(c for _, c in hot)
    nullable = rows > nonnull or bool(probe.declared_nullable(col))
    cells = rg.ranges_from_boundaries(boundaries, False)
    # each cell's share of the rows that are not hot (quantile: the fraction of all rows
    # between its boundaries, less the hot values it holds)
    est = _cell_estimates(cells, boundaries, n, nonnull, rest, hot, lo, strategy)
    hot_out = getattr(out, "hot_range", None)
    by = _tiebreak(probe, query, col) if hot and hot_out is not None else None
    notes: list[str] = []
    ask = getattr(probe, "sampled", None)
    found = ask() if ask is not None else None
    if isinstance(found, tuple):
        notes.append(
            f"a large table with fresh statistics (about {found[0]} rows): the bounds and row "
            "estimates come from the catalog and a sample of its rows, not a full scan; the "
            "chunks still cover every row exactly once"
        )
    pieces: list[tuple[rg.ChunkRange, int]] = []
    for cell, cell_est in zip(cells, est, strict=True):
        pieces.extend(_carve(probe, col, cell, cell_est, hot, by, chunk_size, lo, hi, notes))
    if nullable:
        pieces.append((rg.KeyRange(null=True), rows - nonnull))
    rendered: list[tuple[rg.ChunkRange, Any, int]] = []
    for r, e in pieces:
        if isinstance(r, rg.HotRange):
            assert hot_out is not None
            rendered.append((r, hot_out(query, col, r), e))
        else:
            assert isinstance(r, rg.KeyRange)
            rendered.append((r, out.key_range(query, col, r), e))
    # a query small enough is counted range by range (one scan): progress in rows that are
    # there; a sampled large table keeps its estimates (planning stays cheap)
    counts = (
        _range_counts(probe, [done.predicate for _, done, _ in rendered])
        if rows <= COUNTED_ROWS and not isinstance(found, tuple)
        else None
    )
    chunks = [
        _chunk(i, done.sql, done.predicate, r, counts[i] if counts else e)
        for i, (r, done, e) in enumerate(rendered)
    ]
    return Plan(strategy, reason, col, query, tuple(chunks), rows, tuple(notes))


def _dedup(boundaries: list[Any]) -> list[Any]:
    bs: list[Any] = []
    for b in boundaries:
        if not bs or b != bs[-1]:
            bs.append(b)
    return bs


def _cell_estimates(
    cells: list[rg.KeyRange],
    boundaries: list[Any],
    n: int,
    nonnull: int,
    rest: int,
    hot: list[tuple[Any, int]],
    lo: Any,
    strategy: str,
) -> list[int]:
    """Each cell's rows that are not hot. ``key``: the rest evenly. ``quantile``: the i-th
    boundary ``b`` is the key at fraction i/n, so about i/n of the rows lie below it; below a
    hot value the run of equal boundaries and its known count narrow where it starts."""
    if strategy == "key" or not boundaries or not nonnull:
        return [rest // max(1, len(cells))] * len(cells)
    counts = dict(hot) if all(_hashable(v) for v, _ in hot) else {}
    below: list[float] = []  # the fraction of rows below each distinct boundary
    i = 0
    while i < len(boundaries):
        j = i
        while j + 1 < len(boundaries) and boundaries[j + 1] == boundaries[i]:
            j += 1
        b = boundaries[i]
        first, last = (i + 1) / n, (j + 1) / n
        if b == lo:
            pos = 0.0
        elif _hashable(b) and b in counts:
            c = counts[b] / nonnull
            low, high = max(i / n, last - c), min(first, last + 1 / n - c)
            pos = (low + high) / 2 if low <= high else first
        else:
            pos = first
        below.append(pos)
        i = j + 1
    edges = [0.0, *below, 1.0]
    out = []
    for k, cell in enumerate(cells):
        inside = sum(c for v, c in hot if cell.contains(v))
        out.append(max(0, round((edges[k + 1] - edges[k]) * nonnull) - inside))
    return out


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _hot_values(
    probe: Probe, query: str, col: str, nonnull: int, chunk_size: int, among: list[Any] | None
) -> list[tuple[Any, int]]:
    """The key values holding more rows than a chunk (never cut by key boundaries), in the
    server's order, looked for ``among`` those values where given; none where the probe
    cannot tell or no value can be that big."""
    ask = getattr(probe, "frequent", None)
    if ask is None or nonnull <= chunk_size or among == []:
        return []
    shape = _shape(probe, query)
    if shape is not None and col in shape.keys:
        return []  # unique: no value holds two rows (and no grouping pass is needed)
    found = ask(col, chunk_size) if among is None else ask(col, chunk_size, among)
    return [(v, int(n)) for v, n in found] if isinstance(found, list) else []


def _tiebreak(probe: Probe, query: str, col: str) -> rg.Tiebreak | None:
    """What cuts a hot value's rows: a single-column unique NOT NULL key of the plain table
    (the primary key first), else its row address (ctid, rowid); None for a query."""
    if getattr(probe, "tiebreak_quantiles", None) is None:
        return None
    shape = _shape(probe, query)
    if shape is None or shape.kind not in ("table", "matview", "partitioned"):
        return None
    cols = probe.columns()
    keys = [k for k in shape.keys if k in cols and k != col]
    if keys:
        return rg.Tiebreak(column=keys[0])
    locator = sql_dialect(probe.dialect).row_locator
    if shape.kind in ("table", "matview") and locator in ("ctid", "rowid"):
        return rg.Tiebreak(locator="ctid" if locator == "ctid" else "rowid")
    return None


def _carve(
    probe: Probe,
    col: str,
    cell: rg.KeyRange,
    cell_est: int,
    hot: list[tuple[Any, int]],
    by: rg.Tiebreak | None,
    chunk_size: int,
    lo: Any,
    hi: Any,
    notes: list[str],
) -> list[tuple[rg.ChunkRange, int]]:
    """``cell`` as chunks: as it is, or with each hot value it holds cut out into chunks of
    its own (``key = v AND tiebreak in [a, b)``) between ``[lo, v)`` and ``(v, hi)``, which
    cover the cell exactly once whatever the values."""
    inside = [(v, n) for v, n in hot if cell.contains(v)]
    if not inside or by is None:
        for v, n in inside:
            notes.append(
                f"key value {v!r} of {col!r} holds {n} rows, more than a chunk of {chunk_size}, "
                "and no tiebreak can cut it (no single-column primary key or unique NOT NULL "
                "column, no row address): it is read in one big chunk; pass key= a column "
                "that cuts it, or use strategy='offset' over a unique key"
            )
        total = cell_est + sum(n for _, n in inside)
        return [(cell, total)]
    pieces: list[tuple[rg.ChunkRange, int]] = []
    below_lo, below_after = cell.lo, cell.after
    # the cell's other rows: all above where the first hot value is the minimum, all below
    # where the last is the maximum, else split evenly
    gaps = len(inside) + 1
    weights = [1.0] * gaps
    if inside[0][0] == lo or (inside[0][0] == cell.lo and not cell.after):
        weights[0] = 0.0
    if inside[-1][0] == hi:
        weights[-1] = 0.0
    if sum(weights) == 0:
        weights = [1.0] * gaps
    scale = sum(weights)
    for j, (v, n) in enumerate(inside):
        if not (below_lo is not None and below_lo == v and not below_after):  # v <= k < v
            below = rg.KeyRange(below_lo, v, after=below_after)
            pieces.append((below, int(cell_est * weights[j] / scale)))
        parts = rg.chunk_count(n, chunk_size)
        ask = getattr(probe, "tiebreak_quantiles", None)
        assert ask is not None  # _tiebreak found one
        try:
            cuts = _dedup(list(ask(col, v, by, parts))) if parts > 1 else []
        except PlanError as exc:  # e.g. a SQLite table WITHOUT ROWID
            notes.append(
                f"key value {v!r} of {col!r} holds {n} rows, more than a chunk of "
                f"{chunk_size}, and {by.describe()} cannot cut it ({exc}): it is read in one "
                "big chunk"
            )
            cuts = []
        edges: list[Any] = [None, *cuts, None]
        for k in range(len(edges) - 1):
            pieces.append((rg.HotRange(v, by, edges[k], edges[k + 1]), n // (len(edges) - 1)))
        if len(edges) > 2:
            notes.append(
                f"hot key value {v!r} of {col!r} holds {n} rows, more than a chunk of "
                f"{chunk_size}: cut into {len(edges) - 1} chunks by {by.describe()}"
            )
        below_lo, below_after = v, True
    pieces.append(
        (rg.KeyRange(below_lo, cell.hi, after=below_after), int(cell_est * weights[-1] / scale))
    )
    return pieces


#: a key plan of at most this many chunks counts each chunk's rows (one scan of the query)
COUNTED_RANGES = 256
#: ... and of a query of at most this many rows (the count is a scan: past this, planning
#: would cost more than the estimate is worth; shares are corrected as chunks finish)
COUNTED_ROWS = 2_000_000


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


def _by_key(probe: Probe, col: str, chunk_size: int, what: str) -> tuple[str, str]:
    """auto's strategy over the key ``col`` (``what``: how the reason names it)."""
    if _INTEGER_OR_TIME.match(probe.columns()[col]):
        rows, nonnull, lo, hi = probe.key_stats(col)
        if rows <= chunk_size:
            return "none", f"{rows} rows fit in one chunk of {chunk_size}"
        if isinstance(lo, int) and isinstance(hi, int) and nonnull:
            density = nonnull / max(1, hi - lo + 1)
            if density >= 0.5:
                return (
                    "key",
                    f"integer {what} {col!r} is dense ({density:.0%}): equal-width ranges",
                )
            return "quantile", f"integer {what} {col!r} is sparse or skewed ({density:.1%})"
        return "quantile", f"{what} {col!r} is temporal: quantile ranges balance the chunks"
    return "quantile", f"{what} {col!r} is {probe.columns()[col]}: quantile ranges"


def _choose(
    probe: Probe, query: str, key: str | None, chunk_size: int
) -> tuple[str, str, str | None]:
    """auto's strategy, why, and the key it splits on."""
    if key:
        col = _check_key(probe, key, "auto")
        strategy, reason = _by_key(probe, col, chunk_size, "key")
        return strategy, reason, key
    bt = bare_table(query, probe.dialect)
    locator = sql_dialect(probe.dialect).row_locator
    shape = _shape(probe, query)
    if shape is not None:
        name = query.strip()
        words = RELATION_WORDS.get(shape.kind, shape.kind)
        cols = probe.columns()
        keys = [k for k in shape.keys if k in cols]
        ranged = [k for k in keys if _INTEGER_OR_TIME.match(cols[k])]
        if shape.kind in ("view", "foreign", "other"):
            return (
                "none",
                f"no key given and {name!r} is a {words} (no rows of its own to range, no "
                "key the catalog vouches for): one chunk; pass key= to split it",
                None,
            )
        if shape.kind == "partitioned":
            if ranged:
                what = f"unique key of partitioned table {name!r},"
                strategy, reason = _by_key(probe, ranged[0], chunk_size, what)
                return strategy, reason, ranged[0]
            return (
                "ctid",
                f"no key given and {name!r} is a partitioned table without a single-column "
                f"integer or timestamp unique key: heap block ranges of each of its "
                f"{len(shape.partitions)} leaf partitions",
                None,
            )
        if locator is None and keys:
            col = (ranged or keys)[0]
            strategy, reason = _by_key(probe, col, chunk_size, "primary/unique key")
            return strategy, f"no key given; {reason}", col
        if locator is None:
            return (
                "none",
                f"no key given and {name!r} has no single-column primary key or unique NOT "
                "NULL column: one chunk (pass key= to split it)",
                None,
            )
    if bt is not None and locator is not None:
        if shape is not None and shape.kind == "matview":
            why = f"no key given and {query.strip()!r} is a materialized view: heap block ranges"
            return locator, why, None
        return locator, _LOCATOR_REASONS[locator], None
    return (
        "none",
        "no key given and the query is not a plain table: one chunk (pass key= to split)",
        None,
    )


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
    shape = _shape(probe, query)
    if shape is not None and shape.kind == "partitioned":
        return _plan_partitions(probe, query, shape, chunk_size, reason, out)
    if shape is not None and shape.kind not in ("table", "matview"):
        words = RELATION_WORDS.get(shape.kind, shape.kind)
        raise PlanError(
            f"strategy 'ctid' ranges a table's heap blocks, and {query.strip()!r} is a {words}, "
            "which has none: pass key= (a column the rows are unique or ordered by) with "
            "strategy='key' or 'quantile', or leave strategy='auto' (one chunk)"
        )
    blocks, rows = probe.heap_blocks()
    chunks = []
    for i, (lo, hi) in enumerate(_block_edges(blocks, rows, chunk_size)):
        rng = rg.LocatorRange("ctid", lo, hi)
        done = out.locator_range(query, rng)
        chunks.append(_chunk(i, done.sql, done.predicate, rng, _block_rows(lo, hi, blocks, rows)))
    return Plan("ctid", reason, None, query, tuple(chunks), rows)


def _block_edges(blocks: int, rows: int, chunk_size: int) -> list[tuple[int | None, int | None]]:
    """Block ranges of about ``chunk_size`` rows each, the first and last open."""
    per_block = max(1.0, rows / max(1, blocks))
    step = max(1, int(chunk_size / per_block))
    edges: list[int | None] = [None, *range(step, blocks, step), None]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def _block_rows(lo: int | None, hi: int | None, blocks: int, rows: int) -> int:
    per_block = max(1.0, rows / max(1, blocks))
    return int(((hi if hi is not None else blocks) - (lo or 0)) * per_block)


def _plan_partitions(
    probe: Probe, query: str, shape: TableShape, chunk_size: int, reason: str, out: ChunkRenderer
) -> Plan:
    """Heap block ranges of each leaf partition (read from the leaf itself: no chunk scans
    another partition), then one chunk for rows of any partition attached after planning."""
    columns = tuple(probe.columns())
    chunks: list[Chunk] = []
    for part in shape.partitions:
        cells = _block_edges(part.blocks, part.rows, chunk_size) if part.heap else [(None, None)]
        for lo, hi in cells:
            rng = rg.PartitionRange(part.relation, lo, hi, part.heap, (), columns)
            done = out.partition_range(query, rng)
            est = _block_rows(lo, hi, part.blocks, part.rows) if part.heap else part.rows
            chunks.append(_chunk(len(chunks), done.sql, done.predicate, rng, est))
    rest = rg.PartitionRange(None, listed=tuple(p.relation for p in shape.partitions))
    done = out.partition_range(query, rest)
    chunks.append(_chunk(len(chunks), done.sql, done.predicate, rest, 0))
    rows = sum(p.rows for p in shape.partitions)
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
