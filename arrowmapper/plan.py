"""The chunk planner: pure functions from a few probed facts to a :class:`Plan`.

Key-based plans split the key's domain, not the rows seen at planning time::

    chunk 0:   key <  b1
    chunk i:   b_i <= key < b_(i+1)
    chunk n:   key >= b_n
    chunk n+1: key IS NULL                 (when the key is nullable)

Whatever the boundaries ``b_1 < ... < b_n`` are, these predicates cover every possible key value
exactly once -- including rows inserted after planning below the minimum or above the maximum.
The boundaries only decide how *balanced* the chunks are: equal-width (``key``), or at the key's
quantiles (``quantile``, skew-aware, any orderable type). ``offset`` pages through
``ORDER BY key LIMIT/OFFSET`` and needs a unique key; ``ctid`` splits a PostgreSQL heap by block,
``rowid`` a SQLite table by rowid. The probing itself lives in :mod:`arrowmapper.sources`; this
module only calls the :class:`Probe` it is given, so it can be tested without a database.

Every chunk runs the query again, so a query that is not deterministic under re-execution
(:func:`arrowmapper.sql.nondeterministic`: a LIMIT, ``random()``, ``now()``, TABLESAMPLE...) is
never split: ``auto`` reads it in one chunk and says why; a splitting strategy is refused.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from .config import STRATEGIES
from .errors import ConfigError, PlanError
from .sql import bare_table as bare_table  # re-exported: sources, types and compat use it
from .sql import nondeterministic, string_literal, wrap_query
from .sql import quote_ident as quote_ident

SUBQUERY_ALIAS = "_am_src"


def source_sql(query: str, dialect: str) -> str:
    """The query as a FROM item: a plain table name quoted as the server resolves it
    (``Orders`` on PostgreSQL is ``"orders"``), or ``(query) AS _am_src`` after
    :func:`arrowmapper.sql.check_query` (one statement; a trailing ``;`` or comment dropped)."""
    bt = bare_table(query, dialect)
    if bt is not None:
        schema, table = bt
        name = quote_ident(table, dialect)
        return f"{quote_ident(schema, dialect)}.{name}" if schema else name
    return wrap_query(query, dialect, SUBQUERY_ALIAS)


def select_all(query: str, dialect: str) -> str:
    """``SELECT * FROM`` the query, ready for a WHERE clause."""
    return f"SELECT * FROM {source_sql(query, dialect)}"


# --------------------------------------------------------------------------- literals


def render_literal(value: Any, dialect: str) -> str:
    """A SQL literal for a boundary value probed from the source."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            return f"'{text}'::float8" if dialect == "postgresql" else repr(value)
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
        if dialect == "sqlite":
            return "'" + text + "'"
        if value.tzinfo is not None and dialect == "postgresql":
            return f"TIMESTAMPTZ '{text}'"
        return f"TIMESTAMP '{text}'"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'" if dialect == "sqlite" else f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        if "\x00" in value and dialect == "sqlite":  # SQLite text may hold NUL; SQL may not
            return f"CAST(X'{value.encode().hex()}' AS TEXT)"
        return string_literal(value, dialect)  # the same value whatever the server's settings
    if isinstance(value, bytes):
        if dialect == "postgresql":  # no backslash: '\\x..' depends on a setting
            return f"decode('{value.hex()}', 'hex')"
        return f"X'{value.hex()}'"
    raise PlanError(f"cannot use a key value of type {type(value).__name__} as a chunk boundary")


# --------------------------------------------------------------------------- plan records


@dataclass(frozen=True)
class KeyRange:
    """One cell of a key partition: ``lo <= key < hi``; ``None`` bounds are open; or IS NULL."""

    lo: Any = None
    hi: Any = None
    null: bool = False

    def predicate(self, column: str, dialect: str) -> str:
        if self.null:
            return f"{column} IS NULL"
        parts = []
        if self.lo is not None:
            parts.append(f"{column} >= {render_literal(self.lo, dialect)}")
        if self.hi is not None:
            parts.append(f"{column} < {render_literal(self.hi, dialect)}")
        return " AND ".join(parts) if parts else f"{column} IS NOT NULL"

    def contains(self, value: Any) -> bool:
        """Python mirror of :meth:`predicate`, for tests."""
        if value is None:
            return self.null
        if self.null:
            return False
        return (self.lo is None or value >= self.lo) and (self.hi is None or value < self.hi)


@dataclass(frozen=True)
class Chunk:
    """One unit of work: a query whose rows are disjoint from every other chunk's."""

    chunk_id: int
    sql: str
    predicate: str
    bounds: str
    estimated_rows: int | None = None


@dataclass(frozen=True)
class Plan:
    """The chunks of one job, the strategy used and why (``auto`` explains its choice)."""

    strategy: str
    reason: str
    key: str | None
    query: str
    chunks: tuple[Chunk, ...]
    estimated_rows: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        chunks = tuple(Chunk(**c) for c in data.pop("chunks"))
        return cls(chunks=chunks, **data)

    def describe(self) -> str:
        lines = [
            f"strategy: {self.strategy} ({self.reason})",
            f"chunks: {len(self.chunks)}; estimated rows: {self.estimated_rows}",
        ]
        for c in self.chunks:
            lines.append(f"  {c.chunk_id:>5}  ~{c.estimated_rows or 0:>10}  {c.predicate}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- pure splitting


def ranges_from_boundaries(boundaries: Sequence[Any], nullable: bool) -> list[KeyRange]:
    """Partition the key domain at ``boundaries`` (plus an IS NULL cell).

    The boundaries must come in the *server's* order (a quantile query returns them so): they
    are never sorted here, since Python's order is not the server's (a collation such as
    en_US or MySQL's utf8mb4_general_ci, NaN, ...), and ranges cut at boundaries out of the
    server's order overlap. Repeats next to each other are dropped."""
    bs: list[Any] = []
    for b in boundaries:
        if not bs or b != bs[-1]:
            bs.append(b)
    edges: list[Any] = [None, *bs, None]
    ranges = [KeyRange(lo=edges[i], hi=edges[i + 1]) for i in range(len(edges) - 1)]
    if nullable:
        ranges.append(KeyRange(null=True))
    return ranges


def _to_ordinal(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        raise PlanError("the key strategy needs an integer, date or timestamp key, got a boolean")
    if isinstance(value, int):
        return value, None
    if isinstance(value, dt.datetime):
        epoch = dt.datetime(1970, 1, 1, tzinfo=value.tzinfo)
        return (value - epoch) // dt.timedelta(microseconds=1), ("datetime", value.tzinfo)
    if isinstance(value, dt.date):
        return value.toordinal(), "date"
    raise PlanError(
        f"the key strategy needs an integer, date or timestamp key, got {type(value).__name__}; "
        "use strategy='quantile' for other orderable keys"
    )


def _from_ordinal(n: int, kind: Any) -> Any:
    if kind is None:
        return n
    if kind == "date":
        return dt.date.fromordinal(n)
    return dt.datetime(1970, 1, 1, tzinfo=kind[1]) + dt.timedelta(microseconds=n)


def equal_width_boundaries(lo: Any, hi: Any, n_chunks: int) -> list[Any]:
    """Inner boundaries that cut ``[lo, hi]`` into ``n_chunks`` ranges of equal width."""
    if n_chunks <= 1 or lo is None or hi is None:
        return []
    a, kind = _to_ordinal(lo)
    b, _ = _to_ordinal(hi)
    if b <= a:
        return []
    span = b - a + 1
    n = min(n_chunks, span)
    cuts = sorted({a + (span * i) // n for i in range(1, n)})
    return [_from_ordinal(c, kind) for c in cuts if a < c <= b]


def chunk_count(rows: int, chunk_size: int) -> int:
    return max(1, math.ceil(rows / max(1, chunk_size)))


# --------------------------------------------------------------------------- planning


class Probe(Protocol):
    """What the planner needs to know about a source (implemented in sources.py)."""

    dialect: str

    def columns(self) -> dict[str, str]: ...  # name -> arrow type string

    def key_stats(self, key: str) -> tuple[int, int, Any, Any]: ...  # rows, non-null, min, max

    def quantiles(self, key: str, n: int) -> list[Any]: ...

    def is_unique(self, key: str) -> bool: ...

    def declared_nullable(self, key: str) -> bool | None: ...

    def count(self) -> int: ...

    def heap_blocks(self) -> tuple[int, int]: ...  # ctid: blocks, estimated rows

    def rowid_range(self) -> tuple[int, int, int]: ...  # rowid: rows, min, max


_INTEGER_OR_TIME = re.compile(r"^(u?int\d+|date\d+|timestamp.*)")


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


def build_plan(
    probe: Probe, query: str, strategy: str, key: str | None, chunk_size: int, workers: int = 1
) -> Plan:
    """Probe the source as little as the strategy needs and return the chunk plan."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
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
    base = select_all(query, dialect)
    if strategy == "none":
        rows = probe.count()
        return Plan("none", reason, key, query, (Chunk(0, base, "all rows", "{}", rows),), rows)
    if strategy == "offset":
        return _plan_offset(probe, query, _check_key(probe, key, strategy), chunk_size, reason)
    if strategy in ("key", "quantile"):
        col = _check_key(probe, key, strategy)
        rows, nonnull, lo, hi = probe.key_stats(col)
        n = chunk_count(nonnull, chunk_size)
        if strategy == "key":
            if not _INTEGER_OR_TIME.match(probe.columns()[col]):
                raise PlanError(
                    f"strategy 'key' needs an integer, date or timestamp key; {col!r} is "
                    f"{probe.columns()[col]}; use strategy='quantile' for any orderable key"
                )
            boundaries = equal_width_boundaries(lo, hi, n)
        else:
            boundaries = probe.quantiles(col, n) if n > 1 and nonnull else []
        nullable = rows > nonnull or bool(probe.declared_nullable(col))
        ranges = ranges_from_boundaries(boundaries, nullable)
        qcol = quote_ident(col, dialect)
        per = nonnull // max(1, len(ranges) - (1 if nullable else 0))
        chunks = tuple(
            Chunk(
                i,
                f"{base} WHERE {r.predicate(qcol, dialect)}",
                r.predicate(qcol, dialect),
                json.dumps({"lo": r.lo, "hi": r.hi, "null": r.null}, default=str),
                (rows - nonnull) if r.null else per,
            )
            for i, r in enumerate(ranges)
        )
        return Plan(strategy, reason, col, query, chunks, rows)
    if strategy == "ctid":
        try:
            return _plan_ctid(probe, query, chunk_size, reason)
        except PlanError:
            if reason == "chosen by the caller":
                raise
            # auto's guess: a name that is a view or a partitioned table has no heap blocks
            rows = probe.count()
            why = "no key given and the query names a view or partitioned table: one chunk"
            return Plan("none", why, key, query, (Chunk(0, base, "all rows", "{}", rows),), rows)
    return _plan_rowid(probe, query, chunk_size, reason)


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
    if bt is not None and probe.dialect == "postgresql":
        return "ctid", "no key given and the query is a plain PostgreSQL table: heap block ranges"
    if bt is not None and probe.dialect == "sqlite":
        return "rowid", "no key given and the query is a plain SQLite table: rowid ranges"
    return "none", "no key given and the query is not a plain table: one chunk (pass key= to split)"


def _plan_offset(probe: Probe, query: str, key: str, chunk_size: int, reason: str) -> Plan:
    if not probe.is_unique(key):
        raise PlanError(
            f"strategy 'offset' needs a unique ORDER BY key, but {key!r} has duplicate values "
            "(or more than one NULL); pick a unique column or use strategy='quantile'"
        )
    d = probe.dialect
    rows = probe.count()
    n = chunk_count(rows, chunk_size)
    order = f"SELECT * FROM {source_sql(query, d)} ORDER BY {quote_ident(key, d)}"
    chunks = []
    for i in range(n):
        off = i * chunk_size
        if i < n - 1:
            tail = f"LIMIT {chunk_size} OFFSET {off}"
        else:  # open-ended last page: rows appended after planning are not lost
            tail = {"sqlite": "LIMIT -1", "mysql": "LIMIT 18446744073709551615"}.get(d, "")
            tail = f"{tail} OFFSET {off}".strip()
        chunks.append(
            Chunk(
                i,
                f"{order} {tail}",
                tail,
                json.dumps({"offset": off, "limit": chunk_size if i < n - 1 else None}),
                min(chunk_size, rows - off),
            )
        )
    return Plan("offset", reason, key, query, tuple(chunks), rows)


def _plan_ctid(probe: Probe, query: str, chunk_size: int, reason: str) -> Plan:
    if probe.dialect != "postgresql" or bare_table(query, "postgresql") is None:
        raise PlanError(
            "strategy 'ctid' needs a PostgreSQL source and a plain table name as the query "
            "(e.g. query='events'); use strategy='key' or 'quantile' with key= for a query"
        )
    blocks, rows = probe.heap_blocks()
    per_block = max(1.0, rows / max(1, blocks))
    step = max(1, int(chunk_size / per_block))
    cuts = list(range(step, blocks, step))
    edges: list[int | None] = [None, *cuts, None]
    base = select_all(query, "postgresql")
    chunks = []
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        parts = []
        if lo is not None:
            parts.append(f"ctid >= '({lo},0)'::tid")
        if hi is not None:
            parts.append(f"ctid < '({hi},0)'::tid")
        pred = " AND ".join(parts) or "TRUE"
        width = (hi if hi is not None else blocks) - (lo or 0)
        chunks.append(
            Chunk(
                i,
                f"{base} WHERE {pred}",
                pred,
                json.dumps({"block_lo": lo, "block_hi": hi}),
                int(width * per_block),
            )
        )
    return Plan("ctid", reason, None, query, tuple(chunks), rows)


def _plan_rowid(probe: Probe, query: str, chunk_size: int, reason: str) -> Plan:
    if probe.dialect != "sqlite" or bare_table(query, "sqlite") is None:
        raise PlanError(
            "strategy 'rowid' needs a SQLite source and a plain table name as the query; "
            "use strategy='key' or 'quantile' with key= for a query"
        )
    rows, lo, hi = probe.rowid_range()
    ranges = ranges_from_boundaries(
        equal_width_boundaries(lo, hi, chunk_count(rows, chunk_size)), False
    )
    base = select_all(query, "sqlite")
    chunks = tuple(
        Chunk(
            i,
            f"{base} WHERE {r.predicate('rowid', 'sqlite')}",
            r.predicate("rowid", "sqlite"),
            json.dumps({"lo": r.lo, "hi": r.hi}),
            rows // len(ranges),
        )
        for i, r in enumerate(ranges)
    )
    return Plan("rowid", reason, "rowid", query, chunks, rows)


# --------------------------------------------------------------------------- splitting


def split_by(
    plan: Plan,
    chunk: Chunk,
    column_sql: str,
    boundary_sql: str,
    first_id: int,
    dialect: str,
    extra: tuple[dict[str, Any], dict[str, Any]] = ({}, {}),
) -> tuple[Chunk, Chunk]:
    """Two chunks that partition ``chunk``: its predicate AND ``column < b``, and ``>= b``."""
    base = select_all(plan.query, dialect)
    halves = []
    for i, op in enumerate(("<", ">=")):
        pred = f"({chunk.predicate}) AND {column_sql} {op} {boundary_sql}"
        bounds = json.dumps(
            {"parent": chunk.chunk_id, "split": f"{op} {boundary_sql}", **extra[i]}, default=str
        )
        est = (chunk.estimated_rows or 0) // 2
        halves.append(Chunk(first_id + i, f"{base} WHERE {pred}", pred, bounds, est))
    return halves[0], halves[1]


def split_offset(
    plan: Plan, chunk: Chunk, first_id: int, dialect: str
) -> tuple[Chunk, Chunk] | None:
    """Two pages for one OFFSET page: the first half, then the rest (open if it was)."""
    info = json.loads(chunk.bounds)
    off = int(info["offset"])
    found = re.search(r"\bLIMIT (\d+)", chunk.predicate)
    limit = int(found.group(1)) if found and not chunk.predicate.startswith("LIMIT -1") else None
    if limit is not None and limit >= 2**62:  # MySQL's spelling of "no limit"
        limit = None
    size = int(limit) if limit else int(chunk.estimated_rows or 0)
    half = size // 2
    if half < 1:
        return None
    order = chunk.sql[: chunk.sql.rindex(chunk.predicate)].rstrip()
    first_tail = f"LIMIT {half} OFFSET {off}"
    if limit:
        second_tail = f"LIMIT {int(limit) - half} OFFSET {off + half}"
    else:
        tail = {"sqlite": "LIMIT -1", "mysql": "LIMIT 18446744073709551615"}.get(dialect, "")
        second_tail = f"{tail} OFFSET {off + half}".strip()
    return (
        Chunk(
            first_id,
            f"{order} {first_tail}",
            first_tail,
            json.dumps({"offset": off, "limit": half, "parent": chunk.chunk_id}),
            half,
        ),
        Chunk(
            first_id + 1,
            f"{order} {second_tail}",
            second_tail,
            json.dumps(
                {
                    "offset": off + half,
                    "limit": int(limit) - half if limit else None,
                    "parent": chunk.chunk_id,
                }
            ),
            size - half,
        ),
    )


def replace_chunk(plan: Plan, parent: int, children: tuple[Chunk, ...]) -> Plan:
    """The plan with chunk ``parent`` replaced by ``children`` (for the stored plan)."""
    chunks = tuple(c for c in plan.chunks if c.chunk_id != parent) + children
    return Plan(plan.strategy, plan.reason, plan.key, plan.query, chunks, plan.estimated_rows)
