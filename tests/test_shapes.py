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
