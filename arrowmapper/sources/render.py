"""A chunk's SQL: the SQL source writes the planner's reader-neutral ranges in its dialect.

:class:`SqlRender` is the SQL source's :class:`~arrowmapper.plan.ChunkRenderer`; what differs
between servers (literals, an open LIMIT, the quote) comes from the dialect tables.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
from typing import Any

from ..errors import PlanError
from ..plan import (
    Chunk,
    HotRange,
    KeyRange,
    LocatorRange,
    Page,
    PartitionRange,
    Plan,
    Rendered,
)
from ..sql import bare_table, quote_ident, string_literal, wrap_query
from .dialects import source_dialect

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


def render_literal(value: Any, dialect: str) -> str:
    """A SQL literal for a boundary value probed from the source."""
    d = source_dialect(dialect)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if (math.isnan(value) or math.isinf(value)) and d.float_special is not None:
            text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            return d.float_special.format(text)
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
        return (d.timestamptz if value.tzinfo is not None else d.timestamp).format(text)
    if isinstance(value, dt.date):
        return d.date.format(value.isoformat())
    if isinstance(value, str):
        if "\x00" in value and d.nul_text_as_hex:
            return f"CAST(X'{value.encode().hex()}' AS TEXT)"
        return string_literal(value, dialect)  # the same value whatever the server's settings
    if isinstance(value, bytes):
        return d.bytes.format(value.hex())
    raise PlanError(f"cannot use a key value of type {type(value).__name__} as a chunk boundary")


def key_predicate(column: str, rng: KeyRange, dialect: str) -> str:
    """``rng`` over the SQL expression ``column``: ``lo <= column < hi``, or IS NULL."""
    if rng.null:
        return f"{column} IS NULL"
    parts = []
    if rng.lo is not None:
        op = ">" if rng.after else ">="
        parts.append(f"{column} {op} {render_literal(rng.lo, dialect)}")
    if rng.hi is not None:
        parts.append(f"{column} < {render_literal(rng.hi, dialect)}")
    return " AND ".join(parts) if parts else f"{column} IS NOT NULL"


def _page_tail(page: Page, dialect: str) -> str:
    if page.limit is not None:
        return f"LIMIT {page.limit} OFFSET {page.offset}"
    return f"{source_dialect(dialect).no_limit} OFFSET {page.offset}".strip()


class SqlRender:
    """The SQL source's rendering of ranges in one dialect (a ``plan.ChunkRenderer``)."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def everything(self, query: str) -> Rendered:
        return Rendered(select_all(query, self.dialect), "all rows")

    def key_range(self, query: str, key: str, rng: KeyRange) -> Rendered:
        pred = key_predicate(quote_ident(key, self.dialect), rng, self.dialect)
        return Rendered(f"{select_all(query, self.dialect)} WHERE {pred}", pred)

    def hot_range(self, query: str, key: str, rng: HotRange) -> Rendered:
        """Part of one hot key value's rows: ``key = value`` and the tiebreak's range."""
        d = self.dialect
        parts = [f"{quote_ident(key, d)} = {render_literal(rng.value, d)}"]
        if rng.lo is None and rng.hi is None:
            pass  # all the value's rows (no tiebreak could cut them)
        elif rng.by.column is not None:
            cut = KeyRange(rng.lo, rng.hi)
            parts.append(key_predicate(quote_ident(rng.by.column, d), cut, d))
        else:
            assert rng.by.locator is not None
            found = self._locator(LocatorRange(rng.by.locator, rng.lo, rng.hi))
            if found != "TRUE":
                parts.append(found)
        pred = " AND ".join(parts)
        return Rendered(f"{select_all(query, d)} WHERE {pred}", pred)

    def _locator(self, rng: LocatorRange) -> str:
        if rng.locator == "rowid":
            return key_predicate("rowid", KeyRange(rng.lo, rng.hi), self.dialect)
        parts = []
        if rng.lo is not None:
            parts.append(f"ctid >= '({rng.lo},0)'::tid")
        if rng.hi is not None:
            parts.append(f"ctid < '({rng.hi},0)'::tid")
        return " AND ".join(parts) or "TRUE"

    def page(self, query: str, key: str, page: Page) -> Rendered:
        d = self.dialect
        order = f"SELECT * FROM {source_sql(query, d)} ORDER BY {quote_ident(key, d)}"
        tail = _page_tail(page, d)
        return Rendered(f"{order} {tail}", tail)

    def locator_range(self, query: str, rng: LocatorRange) -> Rendered:
        pred = self._locator(rng)
        return Rendered(f"{select_all(query, self.dialect)} WHERE {pred}", pred)

    def partition_range(self, query: str, rng: PartitionRange) -> Rendered:
        """A leaf partition read directly (its blocks ranged by ctid; the partitioned table's
        columns named, in its order); the predicate says the same over the partitioned table
        (``tableoid``), so a split of the chunk reads the same rows. The rest chunk: rows in
        none of the partitions the plan lists."""
        d = self.dialect
        if rng.partition is None:
            listed = ", ".join(f"{string_literal(p, d)}::regclass" for p in rng.listed)
            pred = f"tableoid NOT IN ({listed})" if listed else "TRUE"
            return Rendered(f"{select_all(query, d)} WHERE {pred}", pred)
        blocks = []
        if rng.heap and rng.lo is not None:
            blocks.append(f"ctid >= '({rng.lo},0)'::tid")
        if rng.heap and rng.hi is not None:
            blocks.append(f"ctid < '({rng.hi},0)'::tid")
        cols = ", ".join(quote_ident(c, d) for c in rng.columns) or "*"
        sql = f"SELECT {cols} FROM {rng.partition}"
        if blocks:
            sql += " WHERE " + " AND ".join(blocks)
        pred = " AND ".join([f"tableoid = {string_literal(rng.partition, d)}::regclass", *blocks])
        return Rendered(sql, pred)


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
    first, rest = Page(off, half), Page(off + half, int(limit) - half if limit else None)
    halves = []
    for i, (page, est) in enumerate(((first, half), (rest, size - half))):
        tail = _page_tail(page, dialect)
        bounds = json.dumps({"offset": page.offset, "limit": page.limit, "parent": chunk.chunk_id})
        halves.append(Chunk(first_id + i, f"{order} {tail}", tail, bounds, est))
    return halves[0], halves[1]
