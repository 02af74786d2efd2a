"""File jobs under faults: a SIGKILLed worker, a job killed with its workers and resumed, a
worker killed right after its COMMIT -- each ends with exactly the files' rows in the target,
nothing lost and nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import arrowmapper as am
from tests.conftest import PG
from tests.test_files import expected, pg_rows, table, write

pytestmark = pytest.mark.fault
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _slow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARROWMAPPER_TEST_SLEEP", "0.05")


def test_sigkilled_worker_in_a_parquet_job(pg: PG, tmp_path: Path) -> None:
    data = table(20_000)
    path = write(tmp_path / "d.parquet", "parquet", data)  # 40 row groups of 500
    killed: list[int] = []

    def kill_one(snap: am.ProgressSnapshot) -> None:
        busy = [c for c in snap.running if c.pid and c.rows_written > 0]
        if not killed and busy:
            killed.append(busy[0].pid)
            os.kill(busy[0].pid, signal.SIGKILL)

    r = am.map_query(
        str(path), None, pg.uri, "dst", schema=pg.schema, workers=2, chunk_size=2_000,
        batch_size=500, progress=kill_one, transform="tests.helpers:slow_identity",
        retry=am.RetryConfig(max_retries=3, base_delay=0.05),
    )
    assert killed, "the test never found a worker to kill"
    assert r.success and r.rows_written == 20_000
    assert pg_rows(pg, "dst") == expected(data)


def test_killed_csv_job_resumes_exactly(pg: PG, tmp_path: Path) -> None:
    data = table(12_000)
    path = write(tmp_path / "d.csv", "csv", data)
    job = "files-resume-" + pg.schema
    script = textwrap.dedent(f"""
        import arrowmapper as am
        am.map_query({str(path)!r}, None, {pg.uri!r}, "dst", schema={pg.schema!r},
                     workers=2, chunk_size=1_000, batch_size=250, job_id={job!r},
                     transform="tests.helpers:slow_identity")
    """)
    env = {**os.environ, "ARROWMAPPER_TEST_SLEEP": "0.1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, start_new_session=True)
    ledger = pg.t("arrowmapper_ledger")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if pg.scalar(f"SELECT COUNT(*) FROM {ledger} WHERE job_id = %s", (job,)) >= 2:
                break
        except Exception:
            pass
        time.sleep(0.02)
    assert proc.poll() is None, "the job finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and every worker at once
    proc.wait()
    r = am.map_query(
        str(path), None, pg.uri, "dst", schema=pg.schema, workers=2, chunk_size=1_000,
        job_id=job, resume=True, transform="tests.helpers:slow_identity",
    )
    assert r.success and len(r.skipped_chunks) >= 2
    assert pg_rows(pg, "dst") == expected(data)
    assert pg.scalar(f"SELECT COUNT(*) FROM {ledger} WHERE job_id = %s", (job,)) == r.chunks


def test_worker_killed_after_commit_in_a_file_job(
    pg: PG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARROWMAPPER_FAULT", "after_commit:1")
    monkeypatch.setenv("ARROWMAPPER_FAULT_MARKER", str(tmp_path / "fault"))
    files = [write(tmp_path / f"p{i}.jsonl", "jsonl", table(1_000, i * 1_000)) for i in range(4)]
    r = am.map_query(
        [str(f) for f in files], None, pg.uri, "dst", schema=pg.schema, workers=2,
        strategy="file", retry=am.RetryConfig(max_retries=2, base_delay=0.05),
    )
    assert (tmp_path / "fault").read_text().startswith("after_commit:1:")
    assert r.success and r.rows_written + sum(
        c.rows_written for c in r.chunk_results if c.already_committed
    ) >= 3_000
    got = pg.query(f"SELECT id FROM {pg.t('dst')} ORDER BY id")
    assert [g[0] for g in got] == list(range(4_000))
