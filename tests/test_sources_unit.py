"""The Source seam without a database server: the SQL source implements the protocol, renders
every strategy's ranges in each dialect's own terms, and reads a SQLite file chunk by chunk.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from arrowmapper.config import Endpoint, parse_uri
from arrowmapper.errors import ConfigError, PlanError
from arrowmapper.plan import KeyRange, LocatorRange, Page, build_plan
from arrowmapper.sources import (
    SOURCES,
    ReadOptions,
    Source,
    SqlRender,
    SqlSource,
    open_source,
)

DIALECTS = ("postgresql", "mysql", "sqlite")


class FakeProbe:
    """The facts of a 100-row table with a date key (and one NULL), in any dialect."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def columns(self) -> dict[str, str]:
        return {"id": "int64", "day": "date32[day]"}

    def key_stats(self, key: str) -> tuple[int, int, Any, Any]:
        if key == "day":
            return 100, 99, dt.date(2024, 1, 1), dt.date(2024, 4, 9)
        return 100, 100, 1, 100

    def quantiles(self, key: str, n: int) -> list[Any]:
        return [dt.date(2024, 2, 1), dt.date(2024, 3, 1)][: n - 1]

    def is_unique(self, key: str) -> bool:
        return True

    def declared_nullable(self, key: str) -> bool | None:
        return None

    def count(self) -> int:
        return 100

    def heap_blocks(self) -> tuple[int, int]:
        return 10, 100

    def rowid_range(self) -> tuple[int, int, int]:
        return 100, 1, 100


def _source(dialect: str, tmp_path: Path) -> SqlSource:
    uri = {
        "postgresql": "postgresql://u@localhost:5432/db",
        "mysql": "mysql://u@localhost:3306/db",
        "sqlite": f"sqlite:///{tmp_path / 'x.db'}",
    }[dialect]
    source = open_source(parse_uri(uri))
    assert isinstance(source, SqlSource)
    return source


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_sql_source_implements_the_protocol(dialect: str, tmp_path: Path) -> None:
    members = {
        name
        for name, _ in inspect.getmembers(Source)
        if not name.startswith("_") or name in ("__enter__", "__exit__")
    } | {"endpoint", "dialect"}
    members -= set(dir(object)) - {"__enter__", "__exit__"}
    with _source(dialect, tmp_path) as source:
        missing = sorted(m for m in members if not hasattr(source, m))
        assert not missing, f"SqlSource lacks {missing}"
        assert source.dialect == dialect and isinstance(source.render, SqlRender)
    source.close()  # idempotent
    assert all(SOURCES[d] is SqlSource for d in DIALECTS)


def test_open_source_names_the_sources_it_has() -> None:
    endpoint = Endpoint("parquet:///data", "parquet")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"source must be one of .*sqlite.*, got 'parquet'"):
        open_source(endpoint)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_each_strategy_renders_in_the_dialects_terms(dialect: str, tmp_path: Path) -> None:
    source = _source(dialect, tmp_path)
    q = {"mysql": "`day`", "postgresql": '"day"', "sqlite": '"day"'}[dialect]
    feb = {"sqlite": "'2024-02-01'"}.get(dialect, "DATE '2024-02-01'")
    probe = FakeProbe(dialect)

    plan = build_plan(probe, "SELECT * FROM t", "quantile", "day", 40, render=source.render)
    first, second, _, null = plan.chunks
    assert first.predicate == f"{q} < {feb}"
    assert second.predicate.startswith(f"{q} >= {feb} AND {q} < ")
    assert null.predicate == f"{q} IS NULL"
    table = {"mysql": "`t`", "postgresql": '"t"', "sqlite": '"t"'}[dialect]
    assert first.sql == f"SELECT * FROM {table} WHERE {first.predicate}"
    assert json.loads(first.bounds) == {"lo": None, "hi": "2024-02-01", "null": False}

    key = build_plan(probe, "SELECT id FROM t WHERE id > 0", "key", "day", 50, render=source.render)
    assert key.chunks[0].sql.startswith("SELECT * FROM (SELECT id FROM t WHERE id > 0) AS _am_src")

    pages = build_plan(probe, "t", "offset", "id", 40, render=source.render).chunks
    qid = "`id`" if dialect == "mysql" else '"id"'
    assert pages[0].sql == f"SELECT * FROM {table} ORDER BY {qid} LIMIT 40 OFFSET 0"
    last = {"sqlite": "LIMIT -1 OFFSET 80", "mysql": "LIMIT 18446744073709551615 OFFSET 80"}
    assert pages[-1].predicate == last.get(dialect, "OFFSET 80")  # open: appended rows count

    whole = build_plan(probe, "t", "none", None, 40, render=source.render).chunks
    assert [(c.sql, c.predicate) for c in whole] == [(f"SELECT * FROM {table}", "all rows")]


def test_physical_ranges_only_where_the_server_has_them(tmp_path: Path) -> None:
    pg = _source("postgresql", tmp_path).render
    assert pg.locator_range("t", LocatorRange("ctid", 3, 6)).predicate == (
        "ctid >= '(3,0)'::tid AND ctid < '(6,0)'::tid"
    )
    assert pg.locator_range("t", LocatorRange("ctid")).predicate == "TRUE"
    lite = _source("sqlite", tmp_path).render
    assert lite.locator_range("t", LocatorRange("rowid", 1, 9)).predicate == (
        "rowid >= 1 AND rowid < 9"
    )
    assert lite.locator_range("t", LocatorRange("rowid")).predicate == "rowid IS NOT NULL"
    for dialect, strategy in (("mysql", "ctid"), ("mysql", "rowid"), ("sqlite", "ctid")):
        with pytest.raises(PlanError, match=f"strategy '{strategy}' needs"):
            build_plan(FakeProbe(dialect), "t", strategy, None, 10)
    assert build_plan(FakeProbe("postgresql"), "t", "auto", None, 30).strategy == "ctid"
    assert build_plan(FakeProbe("sqlite"), "t", "auto", None, 30).strategy == "rowid"
    assert build_plan(FakeProbe("mysql"), "t", "auto", None, 30).strategy == "none"


def test_literals_differ_by_dialect_only_where_the_servers_do(tmp_path: Path) -> None:
    aware = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    cell = KeyRange(lo=aware, hi=b"\x01")
    got = {d: SqlRender(d).key_range("t", "k", cell).predicate for d in DIALECTS}
    assert got["postgresql"] == (
        "\"k\" >= TIMESTAMPTZ '2024-01-02 03:04:05+00:00' AND \"k\" < decode('01', 'hex')"
    )
    assert got["mysql"] == "`k` >= TIMESTAMP '2024-01-02 03:04:05+00:00' AND `k` < X'01'"
    assert got["sqlite"] == "\"k\" >= '2024-01-02 03:04:05+00:00' AND \"k\" < X'01'"
    assert SqlRender("sqlite").key_range("t", "k", KeyRange(hi="a\x00b")).predicate == (
        "\"k\" < CAST(X'610062' AS TEXT)"
    )
    assert SqlRender("mysql").page("t", "id", Page(10, None)).predicate == (
        "LIMIT 18446744073709551615 OFFSET 10"
    )


def test_a_sqlite_file_is_planned_read_and_split_through_the_seam(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2), note TEXT)")
    con.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)", [(i, f"{i}.25", f"n{i}") for i in range(1, 501)]
    )
    con.commit()
    con.close()
    with open_source(parse_uri(f"sqlite:///{path}")) as source:
        layout = source.describe("orders")
        amount = layout.column("amount")
        assert amount is not None and amount.as_text and str(amount.decode) == "decimal128(10, 2)"
        probe = source.probe("orders", layout)
        plan = build_plan(probe, "orders", "auto", None, 100, render=source.render)
        assert plan.strategy == "rowid" and len(plan.chunks) == 5
        ids: list[int] = []
        for chunk in plan.chunks:
            for batch in source.read_chunk(chunk, layout, ReadOptions(batch_size=64)):
                assert str(batch.schema.field("amount").type) == "decimal128(10, 2)"
                ids.extend(batch.column("id").to_pylist())
        assert sorted(ids) == list(range(1, 501))  # every row once
        halves = source.split(plan, plan.chunks[1], 10)
        assert halves is not None
        split_ids = [
            i
            for h in halves
            for b in source.read_chunk(h, layout)
            for i in b.column("id").to_pylist()
        ]
        whole = [
            i for b in source.read_chunk(plan.chunks[1], layout) for i in b.column("id").to_pylist()
        ]
        assert sorted(split_ids) == sorted(whole) and len(whole) == 100


def test_the_names_that_moved_to_the_source_still_import_from_the_planner() -> None:
    import arrowmapper.plan as plan
    import arrowmapper.sources as sources

    for name in ("source_sql", "select_all", "render_literal", "split_by", "split_offset"):
        assert getattr(plan, name) is getattr(sources, name), name
    assert KeyRange(lo=1).predicate("`k`", "mysql") == "`k` >= 1"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        plan.nope  # noqa: B018
