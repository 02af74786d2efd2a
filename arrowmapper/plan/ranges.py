"""Reader-neutral ranges: what one chunk reads, before any source writes it in its own terms.

Key-based plans split the key's domain, not the rows seen at planning time::

    chunk 0:   key <  b1
    chunk i:   b_i <= key < b_(i+1)
    chunk n:   key >= b_n
    chunk n+1: key IS NULL                 (when the key is nullable)

Whatever the boundaries ``b_1 < ... < b_n`` are, these cells cover every possible key value
exactly once -- including rows inserted after planning below the minimum or above the maximum.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import PlanError


@dataclass(frozen=True)
class KeyRange:
    """One cell of a key partition: ``lo <= key < hi``; ``None`` bounds are open; or IS NULL.
    ``after``: the lower bound is exclusive (``lo < key``), the cell just past a hot value
    that has chunks of its own (:class:`HotRange`)."""

    lo: Any = None
    hi: Any = None
    null: bool = False
    after: bool = False

    def predicate(self, column: str, dialect: str) -> str:
        """The old spelling of ``arrowmapper.sources.key_predicate`` (the source renders SQL),
        kept while callers move."""
        from ..sources.render import key_predicate

        return key_predicate(column, self, dialect)

    def contains(self, value: Any) -> bool:
        """Python mirror of the predicate a source renders, for tests."""
        if value is None:
            return self.null
        if self.null:
            return False
        above = self.lo is None or (value > self.lo if self.after else value >= self.lo)
        return above and (self.hi is None or value < self.hi)


@dataclass(frozen=True)
class Tiebreak:
    """What the rows of one hot key value are cut by: a unique NOT NULL ``column``, or the
    table's physical row address ``locator`` (``ctid``: heap blocks; ``rowid``)."""

    column: str | None = None
    locator: Literal["ctid", "rowid"] | None = None

    def describe(self) -> str:
        """How ``plan`` names it."""
        if self.column is not None:
            return f"column {self.column!r}"
        return "heap block (ctid)" if self.locator == "ctid" else "rowid"


@dataclass(frozen=True)
class HotRange:
    """Part of the rows of one key value that holds more rows than a chunk:
    ``key = value AND lo <= tiebreak < hi`` (None bounds open: the parts of one value cover
    all its rows, whatever the tiebreak's values)."""

    value: Any
    by: Tiebreak
    lo: Any = None
    hi: Any = None


@dataclass(frozen=True)
class Page:
    """Rows ``offset`` to ``offset + limit`` of the query ordered by a unique key; an open
    ``limit`` (None) reads to the end, so rows appended after planning are not lost."""

    offset: int
    limit: int | None


@dataclass(frozen=True)
class LocatorRange:
    """``lo <= locator < hi`` over a table's physical row address (None: open): PostgreSQL heap
    blocks (``ctid``) or SQLite rowids (``rowid``)."""

    locator: Literal["ctid", "rowid"]
    lo: int | None = None
    hi: int | None = None


@dataclass(frozen=True)
class PartitionRange:
    """Rows of one leaf partition of a partitioned table: ``partition`` (a FROM item, quoted
    as the server resolves it), its heap blocks ``lo <= block < hi`` (None: open; ``heap``
    False: a leaf without heap blocks, read whole). With ``partition`` None: the rows of the
    table in none of ``listed`` (partitions attached after planning). ``columns``: the
    partitioned table's columns in its order (a leaf's own order may differ)."""

    partition: str | None
    lo: int | None = None
    hi: int | None = None
    heap: bool = True
    listed: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()


#: Everything a chunk can be; the source renders it (``sources.render``).
ChunkRange = KeyRange | HotRange | Page | LocatorRange | PartitionRange


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
        f"the key strategy needs an integer, decimal, date or timestamp key, got "
        f"{type(value).__name__}; use strategy='quantile' for other orderable keys"
    )


def _decimal_scale(*values: Any) -> int:
    """The most fractional digits of the decimals among ``values`` (0 if none)."""
    scale = 0
    for v in values:
        if isinstance(v, decimal.Decimal):
            if not v.is_finite():
                raise PlanError(
                    f"a key holding {v} cannot bound chunks: filter those rows out in the "
                    "query, pick another key, or use strategy='offset'"
                )
            exponent = v.as_tuple().exponent
            assert isinstance(exponent, int)
            scale = max(scale, -exponent)
    return scale


def _decimal_ordinal(value: decimal.Decimal, scale: int) -> int:
    """``value * 10**scale`` exactly (no context rounding, whatever the digits)."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    n = int("".join(map(str, digits)) or "0") * int(10 ** (exponent + scale))
    return -n if sign else n


def _from_ordinal(n: int, kind: Any) -> Any:
    if kind is None:
        return n
    if isinstance(kind, tuple) and kind[0] == "decimal":
        return decimal.Decimal(f"{n}E-{kind[1]}")  # from text: exact
    if kind == "date":
        return dt.date.fromordinal(n)
    return dt.datetime(1970, 1, 1, tzinfo=kind[1]) + dt.timedelta(microseconds=n)


def equal_width_boundaries(lo: Any, hi: Any, n_chunks: int) -> list[Any]:
    """Inner boundaries that cut ``[lo, hi]`` into ``n_chunks`` ranges of equal width."""
    if n_chunks <= 1 or lo is None or hi is None:
        return []
    if isinstance(lo, decimal.Decimal) or isinstance(hi, decimal.Decimal):
        scale = _decimal_scale(lo, hi)  # exact integers in units of the finest digit
        a = _decimal_ordinal(decimal.Decimal(lo), scale)
        b = _decimal_ordinal(decimal.Decimal(hi), scale)
        kind: Any = ("decimal", scale)
    else:
        a, kind = _to_ordinal(lo)
        b, _ = _to_ordinal(hi)
    if b <= a:
        return []
    span = b - a + 1
    n = min(n_chunks, span)
    cuts = sorted({a + (span * i) // n for i in range(1, n)})
    return [_from_ordinal(c, kind) for c in cuts if a < c <= b]


def chunk_count(rows: int, chunk_size: int) -> int:
    """How many chunks of ``chunk_size`` rows hold ``rows`` (at least one)."""
    return max(1, math.ceil(rows / max(1, chunk_size)))
