"""End to end against a real PostgreSQL with real worker processes: every strategy, every
transform form, skewed and NULL keys, SQLite on either side. Content is compared, not counts."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import polars as pl
import pytest

import arrowmapper as am
from tests import helpers
from tests.conftest import PG, with_userinfo

ROWS = 120_000


def make_source(pg: PG, rows: int = ROWS, name: str = "src") -> str:
    pg.execute(
        f"""
        CREATE TABLE {name} AS
        SELECT g AS id,
               CASE WHEN g % 97 = 0 THEN NULL ELSE (g % 1000) END AS grp,
               md5(g::text) AS label,
               (g * 1.25)::float8 AS amount,
               TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * INTERVAL '1 minute' AS created,
               DATE '2020-01-01' + (g % 2000) AS day,
               (g % 3 = 0) AS flag,
               CASE WHEN g % 11 = 0 THEN NULL ELSE 'x' || (g % 13) END AS maybe
        FROM generate_series(1, {rows}) AS g
        """
    )
    pg.execute(f"ANALYZE {name}")
    return pg.t(name)


@pytest.mark.parametrize(
    ("strategy", "key"),
    [
        ("offset", "id"),
        ("key", "id"),
        ("quantile", "id"),
        ("ctid", None),
        ("none", None),
        ("auto", None),
        ("auto", "id"),
        ("key", "created"),
        ("quantile", "label"),
    ],
)
def test_every_strategy_copies_exactly(pg: PG, strategy: str, key: str | None) -> None:
    src = make_source(pg)
    result = am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        strategy=strategy,
        key=key,
        workers=2,
        chunk_size=30_000,
    )
    assert result.success and result.rows_written == ROWS
    if strategy != "none":
        assert result.chunks >= 4
    assert pg.assert_same_rows(src, pg.t("dst")) == ROWS
    ledger = pg.scalar(
        f"SELECT SUM(rows) FROM {pg.t('arrowmapper_ledger')} WHERE job_id = %s", (result.job_id,)
    )
    assert ledger == ROWS


def test_skewed_and_null_keys_with_quantile_and_key(pg: PG) -> None:
    pg.execute(
        """CREATE TABLE skew AS
           SELECT g AS id,
                  CASE WHEN g % 10 = 0 THEN NULL WHEN g <= 90000 THEN 7 ELSE g END AS k,
                  g::text AS v
           FROM generate_series(1, 100000) g"""
    )
    for strategy in ("quantile", "key"):
        table = f"out_{strategy}"
        r = am.map_query(
            pg.uri,
            pg.t("skew"),
            pg.uri,
            table,
            schema=pg.schema,
            strategy=strategy,
            key="k",
            workers=2,
            chunk_size=10_000,
        )
        assert r.rows_written == 100_000
        assert pg.assert_same_rows(pg.t("skew"), pg.t(table)) == 100_000
        plan = am.plan_query(pg.uri, pg.t("skew"), strategy=strategy, key="k", chunk_size=10_000)
        assert plan.chunks[-1].predicate == '"k" IS NULL'


def test_query_with_where_and_join_is_split_by_key(pg: PG) -> None:
    src = make_source(pg, 50_000)
    q = f"SELECT s.id, s.label, s.amount FROM {src} s WHERE s.id % 2 = 0"
    r = am.map_query(
        pg.uri,
        q,
        pg.uri,
        "evens",
        schema=pg.schema,
        key="id",
        strategy="quantile",
        workers=2,
        chunk_size=5_000,
    )
    assert r.rows_written == 25_000 and r.chunks >= 5
    pg.assert_same_rows(f"({q}) q", pg.t("evens"))


@pytest.mark.parametrize(
    "transform",
    [
        helpers.double_amount,
        "tests.helpers:double_amount",
        [pl.all(), (pl.col("amount") * 2).alias("amount2")],
        "SELECT *, amount * 2 AS amount2 FROM self",
    ],
    ids=["callable", "module:function", "expressions", "sql"],
)
def test_each_transform_form_end_to_end(pg: PG, transform: object) -> None:
    src = make_source(pg, 40_000)
    r = am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        transform=transform,
        key="id",
        strategy="key",
        workers=2,
        chunk_size=10_000,
    )
    assert r.rows_written == 40_000
    pg.assert_same_rows(f"(SELECT *, amount * 2 AS amount2 FROM {src}) s", pg.t("dst"))


def test_append_into_existing_table_with_narrower_types(pg: PG) -> None:
    src = make_source(pg, 20_000)
    pg.execute(
        "CREATE TABLE dst (id integer PRIMARY KEY, label varchar(40), amount real, extra text DEFAULT 'd')"
    )
    q = f"SELECT id, label, amount FROM {src}"
    r = am.map_query(
        pg.uri,
        q,
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        workers=2,
        chunk_size=5_000,
        mode="append",
    )
    assert r.rows_written == 20_000
    pg.assert_same_rows(f"(SELECT id, label, amount::real, 'd'::text FROM {src}) s", pg.t("dst"))


def test_sqlite_source_to_postgres_and_back(pg: PG, tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT, score REAL, n INTEGER)")
    con.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?)",
        [(i, f"n{i}", i / 3, None if i % 7 == 0 else i % 5) for i in range(1, 30_001)],
    )
    con.commit()
    r = am.map_query(
        f"sqlite://{db}",
        "events",
        pg.uri,
        "from_sqlite",
        schema=pg.schema,
        workers=2,
        chunk_size=5_000,
    )
    assert r.strategy == "rowid" and r.rows_written == 30_000
    rows = pg.query("SELECT id, name, score, n FROM from_sqlite ORDER BY id")
    assert rows == con.execute("SELECT id, name, score, n FROM events ORDER BY id").fetchall()

    out = tmp_path / "dst.db"
    r2 = am.map_query(
        pg.uri,
        pg.t("from_sqlite"),
        f"sqlite://{out}",
        "back",
        key="id",
        strategy="quantile",
        workers=2,
        chunk_size=4_000,
    )
    assert r2.rows_written == 30_000
    back = (
        sqlite3.connect(out).execute("SELECT id, name, score, n FROM back ORDER BY id").fetchall()
    )
    assert back == rows


def test_progress_callback_reaches_100(pg: PG) -> None:
    src = make_source(pg, 30_000)
    seen: list[am.ProgressSnapshot] = []
    r = am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        workers=2,
        chunk_size=5_000,
        progress=seen.append,
    )
    assert seen and seen[-1].progress_percentage == 100.0
    assert seen[-1].completed_chunks == r.chunks and seen[-1].rows_written == 30_000
    pcts = [s.progress_percentage for s in seen]
    assert pcts == sorted(pcts)


def test_password_never_appears(pg: PG) -> None:
    """Trust auth ignores the password, so a job runs with one in the URI; it must not leak."""
    src = make_source(pg, 5_000)
    secret = "Sup3rSecretPw"
    uri = with_userinfo(pg.uri, "postgres", secret)
    r = am.map_query(uri, src, uri, "dst", schema=pg.schema, key="id", workers=1, chunk_size=2_000)
    assert secret not in repr(r) and secret not in r.to_json() and secret not in r.summary()
    with pytest.raises(am.ArrowMapperError) as info:
        am.map_query(uri, "SELECT nope FROM nowhere", uri, "dst2", schema=pg.schema)
    assert secret not in str(info.value)
    plan = am.plan_query(uri, src, key="id", strategy="key", chunk_size=1000)
    assert secret not in plan.to_json()


def test_workers_get_thread_caps_and_are_reused(pg: PG) -> None:
    from arrowmapper.config import usable_cpus

    src = make_source(pg, 20_000)
    r = am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        workers=2,
        chunk_size=2_000,
        transform="tests.helpers:thread_caps",
    )
    assert r.chunks >= 10
    expected = str(max(1, usable_cpus() // 2))
    caps = pg.query("SELECT DISTINCT polars_threads, rayon_threads FROM dst")
    assert caps == [(expected, expected)]
    # glibc arenas capped in the workers (a user's own setting wins)
    arenas = os.environ.get("MALLOC_ARENA_MAX", "2")
    assert pg.query("SELECT DISTINCT malloc_arenas FROM dst") == [(arenas,)]
    # long-lived workers: at most 2 processes did all the chunks
    assert pg.scalar("SELECT COUNT(DISTINCT worker_pid) FROM dst") <= 2


def test_in_process_mode_runs_the_same_pipeline(pg: PG) -> None:
    import dataclasses

    from arrowmapper.api import prepare, run_prepared

    src = make_source(pg, 10_000)
    prepared = prepare(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        strategy="key",
        key="id",
        workers=1,
        chunk_size=2_000,
    )
    seen: list[am.ProgressSnapshot] = []
    spec = dataclasses.replace(prepared.spec, in_process=True)
    r = run_prepared(spec, seen.append)
    assert r.success and r.rows_written == 10_000 and r.workers == 0
    assert seen[-1].progress_percentage == 100.0
    assert pg.assert_same_rows(src, pg.t("dst")) == 10_000


def test_adbc_layer_reads_ingests_commits_and_rolls_back(pg: PG) -> None:
    """arrowmapper.adbc, the thin layer the targets use instead of the ADBC DB-API."""
    import pyarrow as pa

    from arrowmapper.adbc import connect_postgresql

    pg.execute("CREATE TABLE t (id bigint, name text)")
    data = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b", None]})
    with connect_postgresql(pg.uri) as conn:
        with conn.cursor() as cur:
            assert cur.execute("SELECT 1 AS one, 'x' AS two").fetchone() == (1, "x")
            assert cur.execute(f"DELETE FROM {pg.t('t')}").fetchall() == []  # no result set
            assert cur.adbc_ingest("t", data, db_schema_name=pg.schema) == 3
        conn.rollback()  # autocommit is off: nothing stays
        assert pg.scalar("SELECT COUNT(*) FROM t") == 0
        with conn.cursor() as cur:
            cur.adbc_ingest("t", data.to_reader(), db_schema_name=pg.schema)
            got = cur.execute(f"SELECT id, name FROM {pg.t('t')} ORDER BY id").fetch_arrow_table()
            assert got.to_pylist() == data.to_pylist()  # its own uncommitted rows
        conn.commit()
        schema = conn.adbc_get_table_schema("t", db_schema_filter=pg.schema)
        assert schema.names == ["id", "name"] and schema.field("id").type == pa.int64()
        with conn.cursor() as cur, pytest.raises(RuntimeError, match="no statement"):
            cur.fetchall()
    assert pg.query("SELECT id, name FROM t ORDER BY id") == [(1, "a"), (2, "b"), (3, None)]
