"""The drop-in layer: the existing executor's calling code, run as written."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import psutil
import pytest

from arrowmapper import (
    ChunkConfig,
    ChunkingStrategy,
    ConfigError,
    ParallelProcessingResult,
    ParallelProcessor,
    ProgressTracker,
    RetryConfig,
    RetryHandler,
    create_progress_callback,
    create_retry_handler,
    execute_query_parallel,
)
from arrowmapper.compat import connection_uri
from tests.conftest import PG

ROWS = 120_000


@pytest.fixture
def large_table(pg: PG) -> str:
    pg.execute(
        f"CREATE TABLE large_table AS SELECT g AS id, md5(g::text) AS s, g * 2 AS v "
        f"FROM generate_series(1, {ROWS}) g"
    )
    pg.execute("ANALYZE large_table")
    return pg.t("large_table")


def _spawned_workers() -> int:
    return sum(
        1 for p in psutil.Process().children() if any("spawn_main" in part for part in p.cmdline())
    )


def test_the_documented_snippet_runs_as_written(
    pg: PG, large_table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    retry_handler = RetryHandler(RetryConfig(max_retries=3))
    progress_tracker = ProgressTracker(
        total_chunks=10, callback=lambda s: print(f"Progress: {s.progress_percentage:.1f}%")
    )
    processor = ParallelProcessor(
        max_workers=4,
        chunk_size=50000,
        retry_handler=retry_handler,
        progress_tracker=progress_tracker,
    )
    result = processor.process_mapper_job(
        source_conn=pg.uri,
        source_sql=f"SELECT * FROM {large_table}",
        target_conn=pg.uri,
        target_schema=pg.schema,
        target_table="copy1",
    )
    assert isinstance(result, ParallelProcessingResult)
    assert result.success and result.total_rows == ROWS and result.parallel
    assert result.successful_chunks == result.total_chunks and result.failed_chunks == 0
    assert "Progress: 100.0%" in capsys.readouterr().out
    assert progress_tracker.total_chunks == result.total_chunks  # the real plan overrides the hint
    assert pg.assert_same_rows(large_table, pg.t("copy1")) == ROWS

    result = execute_query_parallel(
        source_conn=pg.uri,
        source_sql=f"SELECT * FROM {large_table}",
        target_conn=pg.uri,
        target_schema=pg.schema,
        target_table="copy2",
    )
    assert result.success and result.rows_per_second > 0 and result.duration_seconds > 0
    assert pg.assert_same_rows(large_table, pg.t("copy2")) == ROWS


def test_psycopg_connections(pg: PG, large_table: str) -> None:
    import psycopg
    import psycopg2

    with psycopg.connect(pg.uri) as src, psycopg2.connect(pg.uri) as dst:
        result = execute_query_parallel(
            source_conn=src,
            source_sql=large_table,
            target_conn=dst,
            target_schema=pg.schema,
            target_table="copy",
            key="id",
            strategy=ChunkingStrategy.KEY_BASED,
        )
    assert result.success and result.total_chunks >= 3
    assert pg.assert_same_rows(large_table, pg.t("copy")) == ROWS


def test_sqlalchemy_engines(pg: PG, large_table: str, tmp_path: Path) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(pg.uri.replace("postgresql://", "postgresql+psycopg://", 1))
    lite = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'out.db'}")
    with engine.connect() as conn:
        result = execute_query_parallel(
            conn,
            f"SELECT id, s FROM {large_table} WHERE id <= 1000",
            lite,
            None,
            "t",
            params={"enable_parallel": False},
        )
    assert result.success and result.total_rows == 1000 and not result.parallel
    assert sqlite3.connect(tmp_path / "out.db").execute("SELECT COUNT(*) FROM t").fetchone() == (
        1000,
    )


def test_uris_of_connections_never_show_the_password() -> None:
    class Info:
        user, password, host, port, dbname = "bob", "p@ss:w/rd", "db.example", 5433, "prod"

    class FakePsycopg:
        info = Info()

    FakePsycopg.__module__ = "psycopg.connection"
    uri = connection_uri(FakePsycopg())
    assert uri == "postgresql://bob:p%40ss%3Aw%2Frd@db.example:5433/prod"
    with pytest.raises(ConfigError) as info:
        connection_uri(42)
    assert "psycopg 3 or psycopg2 connection, a sqlite3 connection" in str(info.value)
    with pytest.raises(ConfigError, match="in-memory SQLite"):
        connection_uri(sqlite3.connect(":memory:"))


def test_sqlite_to_sqlite_with_sqlite3_connections(tmp_path: Path) -> None:
    src = sqlite3.connect(tmp_path / "src.db")
    src.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, x REAL)")
    src.executemany(
        "INSERT INTO t VALUES (?, ?, ?)", [(i, f"r{i}", i / 4) for i in range(1, 150_001)]
    )
    src.commit()
    dst = sqlite3.connect(tmp_path / "dst.db")
    result = execute_query_parallel(
        src,
        "t",
        dst,
        None,
        "t_copy",
        max_workers=2,
        chunk_size=40_000,
        strategy=ChunkingStrategy.ROWID_BASED,
    )
    assert result.success and result.parallel and result.total_chunks == 4
    got = dst.execute("SELECT id, name, x FROM t_copy ORDER BY id").fetchall()
    assert got == src.execute("SELECT id, name, x FROM t ORDER BY id").fetchall()


def test_sequential_fallback_below_min_rows_starts_no_workers(
    pg: PG, large_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAPPER_MIN_ROWS_FOR_PARALLEL", str(ROWS + 1))
    workers_seen: list[int] = []
    result = execute_query_parallel(
        pg.uri,
        large_table,
        pg.uri,
        pg.schema,
        "seq",
        progress_callback=lambda s: workers_seen.append(_spawned_workers()),
    )
    assert result.success and not result.parallel and result.total_chunks == 1
    assert result.chunk_results[0].pid == os.getpid() and set(workers_seen) == {0}
    assert pg.assert_same_rows(large_table, pg.t("seq")) == ROWS
    # params outrank the environment; disabled parallel also runs in-process
    result = execute_query_parallel(
        pg.uri,
        large_table,
        pg.uri,
        pg.schema,
        "par",
        params={"min_rows_for_parallel": 10, "chunk_size": 30_000},
    )
    assert result.parallel and result.total_chunks >= 4
    monkeypatch.setenv("MAPPER_PARALLEL_ENABLED", "false")
    result = execute_query_parallel(pg.uri, large_table, pg.uri, pg.schema, "off")
    assert not result.parallel and result.total_chunks == 1


def test_env_and_params_precedence_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAPPER_MAX_WORKERS", "3")
    monkeypatch.setenv("MAPPER_CHUNK_SIZE", "1234")
    s = ParallelProcessor().settings()
    assert (s.workers, s.chunk_size, s.min_rows_for_parallel) == (3, 1234, 100_000)
    s = ParallelProcessor().settings({"max_workers": 2, "chunk_size": 99})
    assert (s.workers, s.chunk_size) == (2, 99)
    s = ParallelProcessor(max_workers=1, chunk_size=7).settings({"max_workers": 2})
    assert (s.workers, s.chunk_size) == (1, 7)
    monkeypatch.setenv("MAPPER_MAX_WORKERS", "abc")
    with pytest.raises(ConfigError, match="MAPPER_MAX_WORKERS must be an integer >= 1, got 'abc'"):
        ParallelProcessor().settings()
    monkeypatch.delenv("MAPPER_MAX_WORKERS")
    with pytest.raises(ConfigError, match="chunk_size must be an integer >= 1"):
        ParallelProcessor(max_workers=2, chunk_size=-1)
    with pytest.raises(ConfigError, match=r"params\['max_workers'\] must be an integer"):
        ParallelProcessor(max_workers=None).settings({"max_workers": "x"})


def test_failing_chunk_returns_success_false(pg: PG) -> None:
    pg.execute("CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 10000) g")
    result = execute_query_parallel(
        pg.uri,
        pg.t("big"),
        pg.uri,
        pg.schema,
        "dst",
        key="id",
        strategy="key",
        transform="tests.helpers:fail_on_id",
        max_retries=1,
        params={"chunk_size": 1000, "min_rows_for_parallel": 0, "max_workers": 2},
    )
    assert not result.success and result.failed_chunks == 1
    assert result.successful_chunks == result.total_chunks - 1
    assert any("bad row id 5777" in e for e in result.errors)
    assert result.total_rows == 9000


def test_retry_handler_and_progress_helpers(caplog: pytest.LogCaptureFixture) -> None:
    handler = create_retry_handler(max_retries=2, base_delay=1.0, jitter=0.0)
    assert handler.max_retries == 2 and handler.calculate_delay(3) == 4.0
    assert handler.should_retry(1, ConnectionResetError()) and not handler.should_retry(3)
    assert not handler.should_retry(1, ValueError("bad data"))
    assert ChunkConfig().chunk_size == 50_000
    assert {s.name for s in ChunkingStrategy} >= {
        "OFFSET_LIMIT",
        "KEY_BASED",
        "ROWID_BASED",
        "QUANTILE",
        "CTID",
    }
    from arrowmapper import ProgressSnapshot

    cb = create_progress_callback()
    snap: Any = ProgressSnapshot(4, 4, 0, 0, 10, 10, 100.0, 1.0, 10.0, 0.0)
    with caplog.at_level(logging.INFO, logger="arrowmapper.progress"):
        cb(snap)
    assert "Progress: 100.0% (4/4 chunks" in caplog.text


@pytest.mark.parametrize(
    "call",
    [
        lambda pg: ParallelProcessor(chunk_config=5),  # type: ignore[arg-type]
        lambda pg: ParallelProcessor().process_mapper_job(pg.uri, None, pg.uri, pg.schema, "t"),
        lambda pg: ParallelProcessor().process_mapper_job(
            pg.uri, "SELECT 1 AS x", pg.uri, pg.schema, "t", params=[1]
        ),
        lambda pg: ParallelProcessor().process_mapper_job(
            pg.uri,
            "SELECT 1 AS x",
            pg.uri,
            pg.schema,
            "t",
            strategy="zzz",
            params={"min_rows_for_parallel": 10**9},
        ),
    ],
)
def test_bad_arguments_are_configuration_errors(pg: PG, call: Any) -> None:
    """Found by review: raw AttributeError/TypeError, or a bad strategy accepted when the job
    ran as one chunk."""
    with pytest.raises(ConfigError):
        call(pg)
