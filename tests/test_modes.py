"""Write modes against real PostgreSQL and SQLite targets: append, create, replace (atomic, with
a reader polling during the swap and a failing job leaving the old table intact), truncate
(resumable without emptying twice) and merge (upsert on the key or the primary key)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

import arrowmapper as am
from tests.conftest import PG

ROWS = 6_000


def _source(pg: PG, rows: int = ROWS, offset: int = 0) -> str:
    pg.execute(
        f"CREATE TABLE src AS SELECT g AS id, 'new-' || g AS label, (g * 0.5)::numeric(12,2) "
        f"AS amount FROM generate_series(1 + {offset}, {rows} + {offset}) g"
    )
    return pg.t("src")


def _old_target(pg: PG, rows: int = 500) -> None:
    pg.execute(
        "CREATE TABLE dst (id int PRIMARY KEY, label text NOT NULL, amount numeric(12,2), "
        "CONSTRAINT label_not_empty CHECK (label <> ''))"
    )
    pg.execute("CREATE INDEX dst_label_idx ON dst (label)")
    pg.execute(f"INSERT INTO dst SELECT g, 'old-' || g, g FROM generate_series(1, {rows}) g")


def _indexes(pg: PG) -> set[str]:
    return {
        str(r[0])
        for r in pg.query(f"SELECT indexname FROM pg_indexes WHERE schemaname = '{pg.schema}'")
    }


def _constraints(pg: PG, table: str = "dst") -> set[str]:
    return {
        str(r[0])
        for r in pg.query(
            f"SELECT conname FROM pg_constraint WHERE conrelid = '{pg.schema}.{table}'::regclass"
        )
    }


def test_replace_swaps_atomically_while_a_reader_polls(pg: PG) -> None:
    src = _source(pg)
    _old_target(pg)
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def poll() -> None:
        import psycopg

        with psycopg.connect(pg.uri, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(f"SELECT count(*), min(label) FROM {pg.t('dst')}").fetchone()
                assert row is not None
                seen.append((int(row[0]), str(row[1])))
                time.sleep(0.005)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        result = am.map_query(
            pg.uri,
            src,
            pg.uri,
            "dst",
            schema=pg.schema,
            mode="replace",
            key="id",
            chunk_size=1000,
            workers=2,
        )
        time.sleep(0.1)
    finally:
        stop.set()
        reader.join()
    assert result.rows_written == ROWS and result.chunks >= 6
    pg.assert_same_rows(src, pg.t("dst"))
    # the reader saw the old table (500 old rows) or the new one (all new rows), nothing else
    assert set(seen) <= {(500, "old-1"), (ROWS, "new-1")}, set(seen)
    assert (500, "old-1") in seen and (ROWS, "new-1") in seen
    # the definition is kept: indexes, primary key, check constraint; the stage is gone
    assert {"dst_pkey", "dst_label_idx"} <= _indexes(pg)
    assert {"dst_pkey", "label_not_empty"} <= _constraints(pg)
    tables = {
        r[0] for r in pg.query(f"SELECT tablename FROM pg_tables WHERE schemaname = '{pg.schema}'")
    }
    assert not any("__am_stage_" in t for t in tables), tables


def test_failed_replace_leaves_the_old_table_intact(pg: PG) -> None:
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, 'new-' || g AS label, g::numeric(12,2) AS amount "
        "FROM generate_series(1, 8000) g"
    )
    _old_target(pg)
    before = pg.query("SELECT * FROM dst ORDER BY id")
    with pytest.raises(am.JobFailed):
        am.map_query(
            pg.uri,
            pg.t("src"),
            pg.uri,
            "dst",
            schema=pg.schema,
            mode="replace",
            key="id",
            chunk_size=1000,
            workers=2,
            transform="tests.helpers:fail_on_id",
            retry=am.RetryConfig(max_retries=0),
        )
    assert pg.query("SELECT * FROM dst ORDER BY id") == before


def test_replace_creates_a_missing_table(pg: PG) -> None:
    src = _source(pg)
    am.map_query(
        pg.uri,
        src,
        pg.uri,
        "fresh",
        schema=pg.schema,
        mode="replace",
        key="id",
        chunk_size=2000,
        workers=2,
    )
    pg.assert_same_rows(src, pg.t("fresh"))
    assert (
        pg.scalar(
            f"SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
            f"'{pg.schema}.fresh'::regclass AND attname = 'amount'"
        )
        == "numeric(12,2)"
    )


def test_truncate_empties_once_even_when_resumed(
    pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, 'new-' || g AS label, g::numeric(12,2) AS amount "
        "FROM generate_series(1, 8000) g"
    )
    _old_target(pg)
    with pytest.raises(am.JobFailed):
        am.map_query(
            pg.uri,
            pg.t("src"),
            pg.uri,
            "dst",
            schema=pg.schema,
            mode="truncate",
            key="id",
            strategy="key",
            chunk_size=1000,
            workers=1,
            transform="tests.helpers:fail_on_id_until_fixed",
            retry=am.RetryConfig(max_retries=0),
            job_id="trunc-1",
        )
    partial = pg.scalar("SELECT count(*) FROM dst")
    assert 0 < partial < 8000
    assert pg.scalar("SELECT count(*) FROM dst WHERE label LIKE 'old-%'") == 0
    # resume once the transform is fixed: the chunks committed before stay, nothing is emptied
    monkeypatch.setenv("ARROWMAPPER_TEST_FIXED", "1")
    am.map_query(
        pg.uri,
        pg.t("src"),
        pg.uri,
        "dst",
        schema=pg.schema,
        mode="truncate",
        key="id",
        strategy="key",
        chunk_size=1000,
        workers=1,
        transform="tests.helpers:fail_on_id_until_fixed",
        job_id="trunc-1",
        resume=True,
    )
    pg.assert_same_rows(pg.t("src"), pg.t("dst"))
    assert {"dst_pkey", "dst_label_idx"} <= _indexes(pg)


def test_merge_upserts_on_the_primary_key(pg: PG) -> None:
    src = _source(pg, rows=3000, offset=250)  # ids 251..3250: 250 overlap the old rows
    _old_target(pg)  # ids 1..500
    result = am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        mode="merge",
        chunk_size=700,
        workers=2,
        verify=True,
    )
    assert result.rows_written == 3000
    assert pg.scalar("SELECT count(*) FROM dst") == 3250
    assert pg.query("SELECT label FROM dst WHERE id IN (1, 250, 251, 500, 3250) ORDER BY id") == [
        ("old-1",),
        ("old-250",),
        ("new-251",),
        ("new-500",),
        ("new-3250",),
    ]
    assert pg.scalar("SELECT count(*) FROM (SELECT * FROM src EXCEPT SELECT * FROM dst) d") == 0
    # running it again changes nothing and duplicates nothing
    am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        mode="merge",
        key="id",
        chunk_size=700,
        workers=2,
    )
    assert pg.scalar("SELECT count(*) FROM dst") == 3250


def test_merge_needs_a_unique_key(pg: PG) -> None:
    src = _source(pg, rows=100)
    pg.execute("CREATE TABLE nokey (id int, label text, amount numeric(12,2))")
    with pytest.raises(
        am.TargetError, match=r"no primary key or unique index on \(id\).*CREATE UNIQUE INDEX"
    ):
        am.map_query(pg.uri, src, pg.uri, "nokey", schema=pg.schema, mode="merge", key="id")
    with pytest.raises(am.ConfigError, match="needs key= or a primary key"):
        am.map_query(pg.uri, src, pg.uri, "nokey", schema=pg.schema, mode="merge")
    with pytest.raises(am.ConfigError, match="into a new table .* needs key="):
        am.map_query(pg.uri, src, pg.uri, "newone", schema=pg.schema, mode="merge")
    assert pg.scalar("SELECT count(*) FROM nokey") == 0
    # into a new table with key=: created with that primary key
    am.map_query(pg.uri, src, pg.uri, "newone", schema=pg.schema, mode="merge", key="id")
    assert "newone_pkey" in _constraints(pg, "newone")
    assert pg.scalar("SELECT count(*) FROM newone") == 100


def test_merge_refuses_null_merge_keys_instead_of_inserting_them_every_run(pg: PG) -> None:
    """An upsert never matches a NULL key: a merge would insert such rows again on every run
    (found by review: 1,010 rows after two runs of 1,000). Refused before any row moves."""
    pg.execute("CREATE TABLE s AS SELECT g AS seq, CASE WHEN g % 100 = 0 THEN NULL ELSE g END "
               "AS k FROM generate_series(1, 1000) g")
    pg.execute("CREATE TABLE d (seq int, k int UNIQUE)")
    with pytest.raises(am.ConfigError, match=r"10 rows with NULL.*insert those rows again"):
        am.map_query(pg.uri, pg.t("s"), pg.uri, "d", schema=pg.schema, mode="merge",
                     merge_key="k", key="seq", workers=1)
    assert pg.scalar("SELECT count(*) FROM d") == 0
    query = f"SELECT * FROM {pg.t('s')} WHERE k IS NOT NULL"
    for _ in range(2):
        am.map_query(pg.uri, query, pg.uri, "d", schema=pg.schema, mode="merge",
                     merge_key="k", key="seq", workers=1)
    assert pg.scalar("SELECT count(*) FROM d") == 990


def _sqlite_rows(path: Path, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT id, label FROM {table} ORDER BY id").fetchall()


@pytest.mark.parametrize("mode", ["replace", "truncate", "merge"])
def test_sqlite_target_modes(pg: PG, tmp_path: Path, mode: str) -> None:
    src = _source(pg, rows=2000, offset=100)  # ids 101..2100
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE dst (id INTEGER PRIMARY KEY, label TEXT, amount TEXT)")
        conn.execute("CREATE INDEX dst_label ON dst (label)")
        conn.executemany(
            "INSERT INTO dst VALUES (?, ?, ?)", [(i, f"old-{i}", str(i)) for i in range(1, 201)]
        )
    am.map_query(
        pg.uri, src, f"sqlite:///{db}", "dst", mode=mode, key="id", chunk_size=500, workers=2
    )
    rows = _sqlite_rows(db, "dst")
    new = [(i, f"new-{i}") for i in range(101, 2101)]
    if mode == "merge":
        assert rows == [(i, f"old-{i}") for i in range(1, 101)] + new
    else:
        assert rows == new
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "dst_label" in names and not any("__am_stage_" in n for n in names)
