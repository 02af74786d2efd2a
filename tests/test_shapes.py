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
    # preparing creates the table (the run's rows are pinned by the test above)
    prepare(
        pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, mode="merge", key="id",
        merge_key="id, region", chunk_size=100,
    )  # fmt: skip
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


# --------------------------------------------------------------------------- key ranges


def _pg_chunk_counts(pg: PG, plan: am.Plan) -> list[int]:
    return [int(pg.scalar(f"SELECT count(*) FROM ({c.sql}) AS c")) for c in plan.chunks]


def test_key_ranges_on_temporal_and_decimal_keys_pg(pg: PG) -> None:
    """strategy='key' on timestamp, timestamptz, date, numeric (unconstrained, more than 10
    fractional digits) and numeric(30,12) keys: typed exact literals, chunks that really
    split the rows, and every row in exactly one chunk; a float key is refused naming its
    type and the fix."""
    pg.execute(
        "CREATE TABLE k AS SELECT g AS id, timestamp '2024-01-01 00:00:00.000001' + g * "
        "interval '37 minutes' AS ts, timestamptz '2024-01-01 00:00+02' + g * interval '1 hour' "
        "AS tz, date '2020-01-01' + g AS d, (g / 7.0 + 0.123456789012345678)::numeric AS n, "
        "(g * 1234567.000000000001)::numeric(30,12) AS n2, g * 0.5::float8 AS f "
        "FROM generate_series(1, 1000) g"
    )
    for key in ("ts", "tz", "d", "n", "n2"):
        for query in (pg.t("k"), f"SELECT * FROM {pg.t('k')} WHERE id > 0"):
            plan = am.plan_query(pg.uri, query, strategy="key", key=key, chunk_size=250)
            assert plan.strategy == "key" and len(plan.chunks) >= 4, (key, plan.describe())
            inner = plan.chunks[1].predicate
            assert ("TIMESTAMP" in inner or "DATE" in inner) == (key in ("ts", "tz", "d")), inner
            counts = _pg_chunk_counts(pg, plan)
            assert sum(counts) == 1000 and max(counts) < 1000, (key, counts)
            seen = pg.scalar(
                "SELECT count(DISTINCT id) FROM ("
                + " UNION ALL ".join(f"SELECT id FROM ({c.sql}) AS c{i}" for i, c in enumerate(plan.chunks))
                + ") u"
            )
            assert seen == 1000
    with pytest.raises(am.PlanError, match=r"'f' is double.*strategy='quantile'"):
        am.plan_query(pg.uri, pg.t("k"), strategy="key", key="f", chunk_size=250)
    # end to end on the unconstrained numeric key (read as text, bounds exact)
    r = am.map_query(
        pg.uri, pg.t("k"), pg.uri, "out", schema=pg.schema, strategy="key", key="n",
        chunk_size=250, workers=1,
    )  # fmt: skip
    assert r.chunks >= 4
    pg.assert_same_rows("k", "out")


def test_type_mismatch_is_terminal(pg: PG) -> None:
    """A server's 42883 (no operator for these types), read as a worker reads a chunk (by
    connectorx, or by ADBC inside an exported snapshot), is the query's fault: never retried."""
    from arrowmapper.errors import classify
    from arrowmapper.plan import Chunk
    from arrowmapper.sources import ReadOptions, open_source, source_endpoint

    pg.execute("CREATE TABLE k AS SELECT now()::timestamp AS ts")
    bad = Chunk(0, f"SELECT * FROM {pg.t('k')} WHERE ts >= 5", "ts >= 5", "{}")
    source = open_source(source_endpoint(pg.uri))
    try:
        held, snapshot = source.export_snapshot()
        for how in (ReadOptions(), ReadOptions(snapshot=snapshot)):
            with pytest.raises(Exception) as caught:
                list(source.read_chunk(bad, None, how))
            assert classify(caught.value)[0] is False
            assert "operator does not exist" in str(caught.value)
        held.close()
    finally:
        source.close()


# --------------------------------------------------------------------------- MariaDB


def _my_counts(mariadb: MariaDB, plan: am.Plan) -> list[int]:
    sql = " UNION ALL ".join(
        f"SELECT {i} AS i, COUNT(*) FROM ({c.sql}) AS c{i}" for i, c in enumerate(plan.chunks)
    )
    rows = [line.split("\t") for line in mariadb.execute(sql).strip().splitlines()]
    return [int(n) for _, n in sorted(rows, key=lambda r: int(r[0]))]


def test_mariadb_primary_key_and_temporal_decimal_keys(mariadb: MariaDB, pg: PG) -> None:
    """auto splits a MariaDB table on its primary key (one chunk before: "not a plain table"),
    says so, and falls back to quantile (a text key) or one chunk (no key, a view) with the
    reason; strategy='key' on DATETIME(6), DATE and DECIMAL keys splits the rows exactly."""
    mariadb.execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, ts DATETIME(6) NOT NULL, d DATE, "
        "n DECIMAL(30,12), label VARCHAR(20)) CHARACTER SET utf8mb4;"
        "INSERT INTO t SELECT seq, '2024-01-01 00:00:00.000001' + INTERVAL seq * 37 MINUTE, "
        "'2020-01-01' + INTERVAL seq DAY, seq * 1234567.000000000001, CONCAT('l', seq) "
        "FROM seq_1_to_1000;"
        "CREATE TABLE s (code VARCHAR(10) PRIMARY KEY, v INT);"
        "INSERT INTO s SELECT CONCAT('c', seq), seq FROM seq_1_to_1000;"
        "CREATE TABLE nopk (v INT); INSERT INTO nopk SELECT seq FROM seq_1_to_300;"
        "CREATE VIEW tv AS SELECT * FROM t;"
    )
    uri = mariadb.uri
    db = uri.rsplit("/", 1)[1]
    for query in ("t", f"{db}.t", "SELECT * FROM t"):
        plan = am.plan_query(uri, query, chunk_size=250)
        assert plan.strategy == "key" and plan.key == "id", plan.reason
        assert "primary/unique key 'id'" in plan.reason and len(plan.chunks) >= 4
    text = am.plan_query(uri, "s", chunk_size=250)
    assert text.strategy == "quantile" and text.key == "code" and "'code'" in text.reason
    assert sum(_my_counts(mariadb, text)) == 1000
    one = am.plan_query(uri, "nopk", chunk_size=100)
    assert one.strategy == "none" and "no single-column primary key" in one.reason
    view = am.plan_query(uri, "tv", chunk_size=100)
    assert view.strategy == "none" and "is a view" in view.reason
    for key in ("ts", "d", "n"):
        plan = am.plan_query(uri, "t", strategy="key", key=key, chunk_size=250)
        counts = _my_counts(mariadb, plan)
        assert sum(counts) == 1000 and max(counts) < 1000 and len(counts) >= 4, (key, counts)
    r = am.map_query(uri, "t", pg.uri, "out", schema=pg.schema, chunk_size=250, workers=2)
    assert r.strategy == "key" and r.chunks >= 4
    assert pg.query("SELECT count(*), count(DISTINCT id), sum(id) FROM out") == [(1000, 1000, 500500)]
    assert pg.scalar("SELECT count(*) FROM out WHERE label = 'l' || id AND n = id * 1234567.000000000001") == 1000


def test_a_leaf_partition_chunk_splits_into_halves_of_its_rows(pg: PG) -> None:
    """A chunk too big for a worker's memory is split in two; a leaf partition's block range
    splits over that leaf's blocks, the two halves holding exactly its rows; the rest chunk
    (partitions attached later) is not split."""
    from arrowmapper.sources import open_source, source_endpoint

    _composite(pg, "p", 3000, "x")
    plan = am.plan_query(pg.uri, pg.t("p"), chunk_size=100_000)
    assert plan.strategy == "ctid" and len(plan.chunks) == 4
    source = open_source(source_endpoint(pg.uri))
    try:
        first = plan.chunks[0]
        halves = source.split(plan, first, 100)
        assert halves is not None
        whole = pg.scalar(f"SELECT count(*) FROM ({first.sql}) c")
        parts = [pg.scalar(f"SELECT count(*) FROM ({h.sql}) c") for h in halves]
        assert whole == 1000 and sum(parts) == whole and min(parts) > 0, parts
        assert source.split(plan, plan.chunks[-1], 102) is None
    finally:
        source.close()


def test_sqlite_view_is_one_chunk(tmp_path: object) -> None:
    """A SQLite view has no rowids: auto reads it in one chunk (it was refused)."""
    import sqlite3
    from pathlib import Path

    path = Path(str(tmp_path)) / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(50)])
        conn.execute("CREATE VIEW v AS SELECT * FROM t")
    plan = am.plan_query(f"sqlite:///{path}", "v", chunk_size=10)
    assert plan.strategy == "none" and "is a view" in plan.reason
    assert am.plan_query(f"sqlite:///{path}", "t", chunk_size=10).strategy == "rowid"
