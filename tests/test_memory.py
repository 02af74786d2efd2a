"""Memory faults: a worker over max_worker_memory (or killed like the OOM killer does) has its
chunk split in two; the halves partition the chunk, so the target stays exact."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psutil
import pytest

import arrowmapper as am
from arrowmapper.plan import Chunk, Plan
from arrowmapper.sources import split_offset
from tests.conftest import PG

pytestmark = pytest.mark.fault


def test_worker_over_memory_limit_is_killed_and_its_chunk_split(
    pg: PG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARROWMAPPER_TEST_MARKER", str(tmp_path / "hogged"))
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, 16000) g"
    )
    r = am.map_query(
        pg.uri,
        pg.t("src"),
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="quantile",
        workers=2,
        chunk_size=2_000,
        batch_size=500,
        transform="tests.helpers:hog_once",
        max_worker_memory=600,
        job_id="mem",
        retry=am.RetryConfig(max_retries=2, base_delay=0.05),
    )
    assert (tmp_path / "hogged").exists()
    assert r.success and r.rows_written == 16_000
    assert any("split into" in n and "max_worker_memory" in n for n in r.notes), r.notes
    planned = len(
        am.plan_query(pg.uri, pg.t("src"), key="id", strategy="quantile", chunk_size=2_000).chunks
    )
    assert r.chunks == planned + 1  # one chunk replaced by its two halves
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 16_000
    stored = json.loads(pg.scalar("SELECT plan FROM arrowmapper_jobs WHERE job_id = 'mem'"))
    assert len(stored["chunks"]) == r.chunks  # resume would find the halves
    assert pg.scalar("SELECT COUNT(*) FROM arrowmapper_ledger WHERE job_id = 'mem'") == r.chunks


@pytest.mark.parametrize("strategy", ["key", "ctid", "offset"])
def test_sigkill_like_the_oom_killer_splits_the_chunk(
    pg: PG, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARROWMAPPER_TEST_SLEEP", "0.05")
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, 20000) g"
    )
    killed: list[int] = []

    def kill_one(snap: am.ProgressSnapshot) -> None:
        busy = [c for c in snap.running if c.pid and c.rows_written > 0]
        if not killed and busy:
            killed.append(busy[0].chunk_id)
            psutil.Process(busy[0].pid).send_signal(signal.SIGKILL)

    r = am.map_query(
        pg.uri,
        pg.t("src"),
        pg.uri,
        "dst",
        schema=pg.schema,
        strategy=strategy,
        key=None if strategy == "ctid" else "id",
        workers=2,
        chunk_size=5_000,
        batch_size=500,
        transform="tests.helpers:slow_identity",
        progress=kill_one,
        retry=am.RetryConfig(max_retries=2, base_delay=0.05),
        snapshot=False,  # the split itself is under test (snapshot reads: test_snapshot.py)
    )
    assert killed
    assert r.success and r.rows_written == 20_000
    assert any(f"chunk {killed[0]} split into" in n for n in r.notes), r.notes
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 20_000


def test_offset_pages_split_into_adjacent_pages() -> None:
    plan = Plan("offset", "", "id", "t", ())
    page = Chunk(
        3,
        'SELECT * FROM "t" ORDER BY "id" LIMIT 100 OFFSET 300',
        "LIMIT 100 OFFSET 300",
        json.dumps({"offset": 300, "limit": 100}),
        100,
    )
    a, b = split_offset(plan, page, 10, "postgresql")
    assert a.sql.endswith("LIMIT 50 OFFSET 300") and b.sql.endswith("LIMIT 50 OFFSET 350")
    last = Chunk(
        4,
        'SELECT * FROM "t" ORDER BY "id" OFFSET 400',
        "OFFSET 400",
        json.dumps({"offset": 400, "limit": None}),
        80,
    )
    a, b = split_offset(plan, last, 12, "postgresql")
    assert a.sql.endswith("LIMIT 40 OFFSET 400") and b.sql.endswith(" OFFSET 440")
    assert "LIMIT" not in b.predicate  # the last page stays open-ended
