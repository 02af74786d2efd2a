"""The planner, without a database server: the chunk predicates partition every row.

The property tests run the planner's real SQL against SQLite (stdlib, in memory) and check that
each row lands in exactly one chunk: NULLs, duplicates, negative and huge keys, one row, none.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowmapper.errors import ConfigError, PlanError
from arrowmapper.plan import (
    KeyRange,
    bare_table,
    build_plan,
    equal_width_boundaries,
    ranges_from_boundaries,
)
from arrowmapper.sources import key_predicate, render_literal, source_sql


class ListProbe:
    """A Probe over a Python list of key values (the same facts a database would give)."""

    dialect = "sqlite"

    def __init__(self, values: list[Any], kind: str = "int64", unique_ok: bool = True) -> None:
        self.values = values
        self.kind = kind

    def columns(self) -> dict[str, str]:
        return {"k": self.kind, "payload": "int64"}

    def _nonnull(self) -> list[Any]:
        return sorted(v for v in self.values if v is not None)

    def key_stats(self, key: str) -> tuple[int, int, Any, Any]:
        nn = self._nonnull()
        return len(self.values), len(nn), (nn[0] if nn else None), (nn[-1] if nn else None)

    def quantiles(self, key: str, n: int) -> list[Any]:
        nn = self._nonnull()  # NTILE semantics: first value of each tile
        if not nn:
            return []
        size, extra = divmod(len(nn), n)
        firsts, pos = [], 0
        for i in range(min(n, len(nn))):
            firsts.append(nn[pos])
            pos += size + (1 if i < extra else 0)
        return sorted(set(firsts))[1:]

    def is_unique(self, key: str) -> bool:
        nn = self._nonnull()
        return len(set(nn)) == len(nn) and len(self.values) - len(nn) <= 1

    def declared_nullable(self, key: str) -> bool | None:
        return None

    def count(self) -> int:
        return len(self.values)

    def heap_blocks(self) -> tuple[int, int]:
        raise AssertionError("not for sqlite")

    def rowid_range(self) -> tuple[int, int, int]:
        return len(self.values), 1, max(1, len(self.values))


def _db(values: list[Any], sqltype: str = "INTEGER") -> sqlite3.Connection:
    con = sqlite3.connect(":memory:")
    con.execute(f"CREATE TABLE src (rid INTEGER PRIMARY KEY, k {sqltype}, payload INTEGER)")
    con.executemany(
        "INSERT INTO src (rid, k, payload) VALUES (?, ?, ?)",
        [(i + 1, v, i) for i, v in enumerate(values)],
    )
    return con


def _assert_exactly_once(con: sqlite3.Connection, plan: Any, n: int) -> None:
    seen: Counter[int] = Counter()
    for chunk in plan.chunks:
        for (payload,) in con.execute(chunk.sql.replace("SELECT *", "SELECT payload", 1)):
            seen[payload] += 1
    assert sorted(seen) == list(range(n)), "some rows are in no chunk"
    assert all(c == 1 for c in seen.values()), "some rows are in two chunks"


int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
keys = st.lists(st.one_of(st.none(), int64, st.integers(-5, 5)), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=keys, chunk_size=st.integers(1, 25), strategy=st.sampled_from(["key", "quantile"]))
def test_key_plans_cover_every_row_exactly_once(
    values: list[Any], chunk_size: int, strategy: str
) -> None:
    plan = build_plan(ListProbe(values), "src", strategy, "k", chunk_size)
    _assert_exactly_once(_db(values), plan, len(values))
    if any(v is None for v in values):
        assert any("IS NULL" in c.predicate for c in plan.chunks)


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(max_size=4)), max_size=40),
    chunk_size=st.integers(1, 10),
)
def test_quantile_plans_on_text_keys(values: list[Any], chunk_size: int) -> None:
    plan = build_plan(ListProbe(values, "string"), "src", "quantile", "k", chunk_size)
    _assert_exactly_once(_db(values, "TEXT"), plan, len(values))


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-(2**62), 2**62), unique=True, max_size=50),
    chunk_size=st.integers(1, 20),
)
def test_offset_pages_cover_every_row_exactly_once(values: list[int], chunk_size: int) -> None:
    plan = build_plan(ListProbe(values), "src", "offset", "k", chunk_size)
    _assert_exactly_once(_db(values), plan, len(values))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 80), chunk_size=st.integers(1, 30))
def test_rowid_plans_cover_every_row(n: int, chunk_size: int) -> None:
    values = list(range(n))
    plan = build_plan(ListProbe(values), "src", "rowid", None, chunk_size)
    _assert_exactly_once(_db(values), plan, n)


def test_rows_added_after_planning_outside_the_range_are_still_covered() -> None:
    values = list(range(100))
    plan = build_plan(ListProbe(values), "src", "key", "k", 10)
    con = _db([*values, -1000, 10**12, None])
    # the plan saw no NULLs, so it has no IS NULL chunk: 102 of 103 rows
    covered = sum(len(con.execute(c.sql).fetchall()) for c in plan.chunks)
    assert covered == 102
    assert plan.chunks[0].predicate.startswith('"k" <') and "<" not in plan.chunks[-1].predicate


def test_empty_source_and_single_row() -> None:
    for values in ([], [42], [None]):
        for strategy in ("key", "quantile", "offset", "none"):
            plan = build_plan(ListProbe(values), "src", strategy, "k", 5)
            _assert_exactly_once(_db(values), plan, len(values))


def test_equal_width_boundaries_dates_and_timestamps() -> None:
    d = equal_width_boundaries(dt.date(2020, 1, 1), dt.date(2020, 12, 31), 4)
    assert d == sorted(d) and len(d) == 3 and all(isinstance(x, dt.date) for x in d)
    tz = dt.UTC
    ts = equal_width_boundaries(
        dt.datetime(2020, 1, 1, tzinfo=tz), dt.datetime(2020, 1, 2, tzinfo=tz), 4
    )
    assert [x.hour for x in ts] == [6, 12, 18] and ts[0].tzinfo is tz
    assert equal_width_boundaries(5, 5, 10) == []
    assert equal_width_boundaries(0, 2, 10) == [1, 2]


def test_key_range_python_mirror() -> None:
    ranges = ranges_from_boundaries([10, 20], nullable=True)
    assert [r.contains(5) for r in ranges] == [True, False, False, False]
    assert [r.contains(10) for r in ranges] == [False, True, False, False]
    assert [r.contains(None) for r in ranges] == [False, False, False, True]
    assert key_predicate('"k"', KeyRange(lo=1, hi=2), "postgresql") == '"k" >= 1 AND "k" < 2'


def test_render_literals_per_dialect() -> None:
    assert render_literal("it's", "postgresql") == "'it''s'"
    assert render_literal(dt.date(2020, 1, 2), "postgresql") == "DATE '2020-01-02'"
    assert render_literal(dt.date(2020, 1, 2), "sqlite") == "'2020-01-02'"
    aware = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert render_literal(aware, "postgresql").startswith("TIMESTAMPTZ '2020-01-02 03:04:05")
    assert render_literal(float("nan"), "postgresql") == "'NaN'::float8"


def test_bare_table_detection_and_quoting() -> None:
    assert bare_table("events") == (None, "events")
    assert bare_table(' s1."My Table" ') == ("s1", "My Table")
    assert bare_table("SELECT * FROM s.t;") == ("s", "t")
    assert bare_table("SELECT id FROM t") is None
    assert source_sql("SELECT id FROM t", "postgresql") == "(SELECT id FROM t) AS _am_src"
    assert source_sql("s.t", "postgresql") == '"s"."t"'


def test_planner_errors_name_the_problem_and_fix() -> None:
    probe = ListProbe([1, 2, 2])
    with pytest.raises(ConfigError, match="strategy must be one of auto, offset"):
        build_plan(probe, "src", "fastest", "k", 10)
    with pytest.raises(PlanError, match="key column 'nope' is not in the query's columns"):
        build_plan(probe, "src", "key", "nope", 10)
    with pytest.raises(PlanError, match="needs a key column"):
        build_plan(probe, "src", "quantile", None, 10)
    with pytest.raises(PlanError, match="unique ORDER BY key"):
        build_plan(probe, "src", "offset", "k", 1)
    with pytest.raises(PlanError, match="use strategy='quantile'"):
        build_plan(ListProbe(["a"], "string"), "src", "key", "k", 1)
    with pytest.raises(PlanError, match="SQLite source and a plain table"):
        build_plan(probe, "SELECT k FROM src", "rowid", None, 1)
    with pytest.raises(PlanError, match="PostgreSQL source"):
        build_plan(probe, "src", "ctid", None, 1)


def test_auto_explains_its_choice() -> None:
    dense = build_plan(ListProbe(list(range(1000))), "src", "auto", "k", 100)
    assert dense.strategy == "key" and "dense" in dense.reason
    sparse = build_plan(ListProbe([i**3 for i in range(1000)]), "src", "auto", "k", 100)
    assert sparse.strategy == "quantile"
    small = build_plan(ListProbe([1, 2, 3]), "src", "auto", "k", 100)
    assert small.strategy == "none"
    assert build_plan(ListProbe(list(range(10))), "src", "auto", None, 3).strategy == "rowid"
    nokey = build_plan(ListProbe([1]), "SELECT k FROM src", "auto", None, 3)
    assert nokey.strategy == "none" and "pass key=" in nokey.reason


def test_plan_json_round_trip() -> None:
    plan = build_plan(ListProbe(list(range(50))), "src", "quantile", "k", 10)
    assert type(plan).from_json(plan.to_json()) == plan
