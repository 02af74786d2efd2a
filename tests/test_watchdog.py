"""The watchdog kills a stalled worker's process tree and retries its chunk; source queries
run under a statement timeout."""

from __future__ import annotations

from pathlib import Path

import pytest

import arrowmapper as am
from tests.conftest import PG

pytestmark = pytest.mark.fault


def test_stalled_chunk_is_killed_and_retried(
    pg: PG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARROWMAPPER_TEST_MARKER", str(tmp_path / "hung"))
    pg.execute("CREATE TABLE src AS SELECT g AS id, g::text AS s FROM generate_series(1, 12000) g")
    r = am.map_query(
        pg.uri,
        pg.t("src"),
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        workers=2,
        chunk_size=1_000,
        transform="tests.helpers:hang_once",
        stall_timeout=2,
        retry=am.RetryConfig(max_retries=2, base_delay=0.05),
    )
    assert (tmp_path / "hung").exists(), "the hang never happened"
    assert r.success and r.rows_written == 12_000
    assert any("killed by the watchdog" in e and "no progress" in e for e in r.attempt_errors)
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 12_000


def test_statement_timeout_bounds_source_queries(pg: PG) -> None:
    pg.execute("CREATE TABLE src AS SELECT g AS id FROM generate_series(1, 3000) g")
    # one slow row per chunk of 1000: each chunk query takes 0.7 s, over the 0.5 s limit
    slow = f"SELECT id FROM {pg.t('src')} WHERE id % 1000 <> 500 OR pg_sleep(0.7) IS NOT NULL"
    with pytest.raises(am.JobFailed) as info:
        am.map_query(
            pg.uri,
            slow,
            pg.uri,
            "dst",
            schema=pg.schema,
            key="id",
            strategy="key",
            chunk_size=1_000,
            workers=1,
            statement_timeout=0.5,
            retry=am.RetryConfig(max_retries=1, base_delay=0.01),
        )
    errors = " ".join(info.value.result.attempt_errors)
    assert "statement timeout" in errors
    assert info.value.result.chunk_results[0].attempts == 2  # 57014 is transient: one retry
    with pytest.raises(am.ConfigError, match="stall_timeout must be a finite number of seconds > 0"):
        am.map_query(pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, stall_timeout=-1)
