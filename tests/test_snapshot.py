"""snapshot=True: every chunk reads from one exported snapshot, so a source updated while the
job runs is copied as it was when the job started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import arrowmapper as am
from tests.conftest import PG

pytestmark = pytest.mark.fault


def _source(pg: PG) -> None:
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s, g * 0.5 AS f, "
        "TIMESTAMPTZ '2026-01-01 00:00+00' + g * INTERVAL '1 s' AS ts "
        "FROM generate_series(1, 40000) g"
    )
    pg.execute("CREATE TABLE expected AS SELECT * FROM src")


def _writer(pg: PG, done: list[Any]) -> Any:
    def write(snap: am.ProgressSnapshot) -> None:
        if not done and snap.rows_written > 0:
            pg.execute("UPDATE src SET s = 'changed' WHERE id % 2 = 0")
            pg.execute("DELETE FROM src WHERE id % 7 = 0")
            pg.execute(
                "INSERT INTO src SELECT g, 'new', 0, now() FROM generate_series(40001, 41000) g"
            )
            done.append(True)

    return write


def test_snapshot_copy_is_not_torn_by_concurrent_writes(
    pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARROWMAPPER_TEST_SLEEP", "0.05")
    _source(pg)
    done: list[Any] = []
    r = am.map_query(
        pg.uri,
        pg.t("src"),
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        workers=2,
        chunk_size=4_000,
        batch_size=1_000,
        transform="tests.helpers:slow_identity",
        snapshot=True,
        progress=_writer(pg, done),
    )
    assert done, "the source was never written during the job"
    assert r.success and r.rows_written == 40_000
    assert pg.assert_same_rows(pg.t("expected"), pg.t("dst")) == 40_000


def test_without_snapshot_the_same_writes_tear_the_copy(
    pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the test above would catch a snapshot that is not used."""
    monkeypatch.setenv("ARROWMAPPER_TEST_SLEEP", "0.05")
    _source(pg)
    done: list[Any] = []
    am.map_query(
        pg.uri,
        pg.t("src"),
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        workers=2,
        chunk_size=4_000,
        batch_size=1_000,
        transform="tests.helpers:slow_identity",
        progress=_writer(pg, done),
    )
    assert done
    changed = pg.scalar(
        "SELECT COUNT(*) FROM (SELECT * FROM dst EXCEPT ALL SELECT * FROM expected) d"
    )
    assert changed > 0


def test_snapshot_needs_postgres(pg: PG, tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "s.db"
    sqlite3.connect(db).execute("CREATE TABLE t (id INTEGER)")
    with pytest.raises(am.ConfigError, match="snapshot=True needs a PostgreSQL source"):
        am.map_query(f"sqlite://{db}", "t", pg.uri, "dst", schema=pg.schema, snapshot=True)


@pytest.mark.parametrize("strategy", ["auto", "offset"])
def test_ctid_and_offset_plans_read_one_snapshot_by_default(pg: PG, strategy: str) -> None:
    """Found by review: with concurrent UPDATEs, auto's ctid ranges read moved row versions
    twice (20,039 rows from 20,000); OFFSET pages shifted under concurrent inserts."""
    import threading
    import time

    import psycopg

    pg.execute(
        "CREATE TABLE src (id int, name text, v int) WITH (fillfactor = 100); "
        "INSERT INTO src SELECT g, repeat('n', 60) || g, 0 FROM generate_series(1, 20000) g"
    )
    stop: list[int] = []

    def writer() -> None:
        with psycopg.connect(pg.uri, autocommit=True) as conn:
            while not stop:
                conn.execute(
                    f"UPDATE {pg.t('src')} SET v = v + 1 WHERE id IN "
                    "(SELECT (random() * 4000)::int + 1 FROM generate_series(1, 50))"
                )
                time.sleep(0.01)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        r = am.map_query(
            pg.uri,
            pg.t("src"),
            pg.uri,
            "dst",
            schema=pg.schema,
            workers=2,
            chunk_size=1000,
            strategy=strategy,
            key="id" if strategy == "offset" else None,
        )
    finally:
        stop.append(1)
        thread.join()
    assert r.success and any("one snapshot" in n for n in r.notes)
    assert pg.scalar("SELECT count(*) FROM dst") == 20000
    assert pg.scalar("SELECT count(DISTINCT id) FROM dst") == 20000
