"""Real databases' shapes (issue #16): views, materialized views and partitioned tables under
``strategy="auto"``; key ranges over temporal and numeric keys; a MariaDB primary key as the
key; and a merge key apart from the key that splits the work."""

from __future__ import annotations

import pytest

import arrowmapper as am
from arrowmapper.api import prepare
from tests.conftest import PG, MariaDB

# --------------------------------------------------------------------------- merge_key


def _composite(pg: PG, name: str, rows: int, label: str) -> None:
    """A table partitioned by region whose primary key is (id, region): ids repeat across
    regions, so ``id`` alone is no upsert key."""
    pg.execute(
        f"CREATE TABLE {name} (id int NOT NULL, region int NOT NULL, label text, "
        f"PRIMARY KEY (id, region)) PARTITION BY LIST (region)"
    )
    for r in range(3):
        pg.execute(f"CREATE TABLE {name}_{r} PARTITION OF {name} FOR VALUES IN ({r})")
    pg.execute(
        f"INSERT INTO {name} SELECT g / 3, g % 3, '{label}-' || g FROM generate_series(0, {rows - 1}) g"
    )


def test_merge_on_a_composite_primary_key_split_by_another_key(pg: PG) -> None:
    """The target's primary key (id, region) is the upsert key; key='id' only cuts the work
    into chunks, so an update run lands exactly (it was one chunk, or refused, before)."""
    _composite(pg, "src", 600, "old")
    _composite(pg, "dst", 300, "older")  # half the ids, older labels
    r = am.map_query(
        pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, mode="merge", key="id",
        strategy="key", chunk_size=100, workers=2,
    )  # fmt: skip
    assert r.chunks >= 4
    pg.assert_same_rows("src", "dst")
    # the source changes: labels updated, rows added; merged again by a new job
    pg.execute("UPDATE src SET label = 'new-' || id WHERE id % 2 = 0")
    pg.execute("INSERT INTO src SELECT 1000 + g, g % 3, 'added' FROM generate_series(0, 29) g")
    r = am.map_query(
        pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, mode="merge", key="id",
        strategy="key", chunk_size=100, workers=2,
    )  # fmt: skip
    assert r.chunks >= 4
    assert pg.assert_same_rows("src", "dst") == 630


def test_merge_key_option_new_table_and_refusals(pg: PG) -> None:
    """merge_key= ("a,b" or a list) becomes a new table's primary key; a column the query
    does not return, a non-unique merge key in the source, and merge_key outside merge mode
    are refused before any row is written."""
    pg.execute(
        "CREATE TABLE src AS SELECT g / 3 AS id, g % 3 AS region, 'v' || g AS label "
        "FROM generate_series(0, 299) g"
    )
    am.map_query(
        pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, mode="merge", key="id",
        merge_key="id, region", chunk_size=100, workers=1,
    )  # fmt: skip
    pg.assert_same_rows("src", "dst")
    pk = pg.query(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        f"AND a.attnum = ANY(i.indkey) WHERE i.indrelid = '{pg.schema}.dst'::regclass "
        "AND i.indisprimary ORDER BY a.attname"
    )
    assert pk == [("id",), ("region",)]
    src, sch = pg.t("src"), pg.schema
    with pytest.raises(am.ConfigError, match=r"merge_key column\(s\) 'nope' are not in"):
        prepare(pg.uri, src, pg.uri, "d2", schema=sch, mode="merge", merge_key="id,nope")
    with pytest.raises(am.ConfigError, match=r"upserts on \(region\), but the query returns"):
        prepare(pg.uri, src, pg.uri, "d3", schema=sch, mode="merge", merge_key="region")
    with pytest.raises(am.TargetError, match=r"no primary key or unique index on \(region\)"):
        prepare(pg.uri, src, pg.uri, "dst", schema=sch, mode="merge", merge_key="region")
    with pytest.raises(am.ConfigError, match="merge_key= names the columns mode='merge'"):
        prepare(pg.uri, src, pg.uri, "d4", schema=sch, merge_key="id")
    tables = {r[0] for r in pg.query(f"SELECT tablename FROM pg_tables WHERE schemaname = '{pg.schema}'")}
    assert not tables & {"d2", "d3", "d4"}


def test_merge_key_spellings() -> None:
    """params, MAPPER_MERGE_KEY and the job file spell it like the argument."""
    from arrowmapper.config import OPTIONS, JobConfig, file_keys

    opt = OPTIONS["merge_key"]
    assert (opt.param, opt.env) == ("merge_key", "MAPPER_MERGE_KEY")
    assert "merge_key" in file_keys()
    base = {"mode": "merge"}
    assert JobConfig.build(base, {"merge_key": "a, b"}, env={}).merge_key == ("a", "b")
    assert JobConfig.build(base, env={"MAPPER_MERGE_KEY": "x"}).merge_key == ("x",)
    assert JobConfig.build({**base, "merge_key": ("a", "b")}, env={}).merge_key == ("a", "b")
    with pytest.raises(am.ConfigError, match="names a column twice"):
        JobConfig.build({**base, "merge_key": "a,a"}, env={})
    with pytest.raises(am.ConfigError, match="must be column names"):
        JobConfig.build({**base, "merge_key": "a,,b"}, env={})


_ = MariaDB  # used by the MariaDB tests below


# --------------------------------------------------------------------------- auto's shapes


def _base(pg: PG, rows: int = 900) -> None:
    pg.execute(
        "CREATE TABLE base AS SELECT g AS id, g % 3 AS region, 'r' || g AS label, "
        f"timestamp '2024-01-01' + g * interval '1 minute' AS at FROM generate_series(1, {rows}) g"
    )


def _plan(pg: PG, query: str, **kw: object) -> am.Plan:
    return am.plan_query(pg.uri, query, chunk_size=200, **kw)  # type: ignore[arg-type]


def test_auto_plans_views_matviews_and_partitioned_tables(pg: PG) -> None:
    """auto never refuses a relkind: a view is one chunk (or split by key=), a materialized
    view by heap blocks, a partitioned table by its partitions' blocks (or its unique
    integer key); the reason says which and why; every row lands exactly once."""
    _base(pg)
    s = pg.schema
    pg.execute('CREATE VIEW "Big View" AS SELECT * FROM base')
    pg.execute("CREATE MATERIALIZED VIEW mv AS SELECT * FROM base")
    pg.execute(
        'CREATE TABLE "Größe Teil" (id int NOT NULL, region int NOT NULL, label text, '
        "at timestamp, PRIMARY KEY (id, region)) PARTITION BY LIST (region)"
    )
    for r in range(3):
        pg.execute(f'CREATE TABLE "Größe Teil {r}" PARTITION OF "Größe Teil" FOR VALUES IN ({r})')
    pg.execute('INSERT INTO "Größe Teil" SELECT * FROM base')
    pg.execute("CREATE TABLE pk_part (id bigint PRIMARY KEY, label text) PARTITION BY RANGE (id)")
    for r in range(3):
        pg.execute(
            f"CREATE TABLE pk_part_{r} PARTITION OF pk_part FOR VALUES FROM ({r * 300 + 1}) "
            f"TO ({r * 300 + 301})"
        )
    pg.execute("INSERT INTO pk_part SELECT id, label FROM base")

    for q in (f'{s}."Big View"', f'SELECT * FROM {s}."Big View"', f'{s}."BIG VIEW"'.lower()):
        if q.endswith('"big view"'):
            with pytest.raises(am.ArrowMapperError):  # quoted names are exact: not found
                _plan(pg, q)
            continue
        plan = _plan(pg, q)
        assert plan.strategy == "none" and "is a view" in plan.reason and "key=" in plan.reason
    keyed = _plan(pg, f'{s}."Big View"', key="id")
    assert keyed.strategy == "key" and len(keyed.chunks) > 1
    mv = _plan(pg, f"{s}.MV")  # unquoted: folded to mv
    assert mv.strategy == "ctid" and "materialized view" in mv.reason
    for q in (f'{s}."Größe Teil"', f'SELECT * FROM {s}."Größe Teil"'):
        plan = _plan(pg, q)
        assert plan.strategy == "ctid" and "3 leaf partitions" in plan.reason, plan.reason
        # 300 rows a leaf, 200 a chunk: two block ranges per leaf, then the rest
        assert len(plan.chunks) == 7
        assert {c.predicate.split(" AND ")[0] for c in plan.chunks[:-1]} == {
            f"tableoid = '{s}.\"Größe Teil {r}\"'::regclass" for r in range(3)
        }
        assert "NOT IN" in plan.chunks[-1].predicate
    pk = _plan(pg, f"{s}.pk_part")
    assert pk.strategy == "key" and pk.key == "id" and "partitioned table" in pk.reason
    with pytest.raises(am.PlanError, match=r"is a view, which has none: pass key="):
        _plan(pg, f'{s}."Big View"', strategy="ctid")

    for name, query in (
        ("v_out", f'{s}."Big View"'),
        ("mv_out", f"SELECT * FROM {s}.mv"),
        ("p_out", f'{s}."Größe Teil"'),
    ):
        r = am.map_query(pg.uri, query, pg.uri, name, schema=s, chunk_size=100, workers=1)
        assert r.rows_written == 900
        assert (r.chunks > 3) == (name != "v_out"), (name, r.chunks)
        pg.assert_same_rows("base", name)
    assert pg.scalar("SELECT count(*) FROM mv_out") == 900


def test_auto_on_a_bare_view_name(pg: PG) -> None:
    """A bare name resolves on the server's search path (public here)."""
    name = f"am_shape_{pg.schema}"
    _base(pg, 30)
    pg.execute(f"CREATE VIEW public.{name} AS SELECT * FROM {pg.schema}.base")
    try:
        plan = _plan(pg, name.upper())  # unquoted: folded
        assert plan.strategy == "none" and "is a view" in plan.reason
    finally:
        pg.execute(f"DROP VIEW public.{name}")
