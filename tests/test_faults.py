"""Fault tests: real processes killed, real connections terminated; the target stays exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import arrowmapper as am
from tests.conftest import PG

pytestmark = pytest.mark.fault
ROOT = Path(__file__).resolve().parents[1]


def _source(pg: PG, rows: int = 60_000) -> str:
    pg.execute(
        f"CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s, g * 0.5 AS f "
        f"FROM generate_series(1, {rows}) g"
    )
    return pg.t("src")


@pytest.fixture(autouse=True)
def _slow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARROWMAPPER_TEST_SLEEP", "0.05")


def test_sigkilled_worker_costs_one_attempt_not_the_job(pg: PG) -> None:
    src = _source(pg)
    killed: list[int] = []

    def kill_one(snap: am.ProgressSnapshot) -> None:
        busy = [c for c in snap.running if c.pid and c.rows_written > 0]
        if not killed and busy:  # a worker in the middle of a chunk, not an idle one
            killed.append(busy[0].pid)
            os.kill(busy[0].pid, signal.SIGKILL)

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
        batch_size=1_000,
        progress=kill_one,
        transform="tests.helpers:slow_identity",
        retry=am.RetryConfig(max_retries=3, base_delay=0.05),
    )
    assert killed, "the test never found a worker to kill"
    assert r.success and r.rows_written == 60_000
    # a SIGKILLed worker looks like the OOM killer's work: its chunk is split and retried
    assert any("died" in e or "split" in e for e in (*r.attempt_errors, *r.notes))
    assert pg.assert_same_rows(src, pg.t("dst")) == 60_000


def test_terminated_target_connection_is_retried(pg: PG) -> None:
    src = _source(pg)
    terminated: list[Any] = []

    def terminate(snap: am.ProgressSnapshot) -> None:
        if not terminated and snap.running_chunks and snap.rows_written > 0:
            rows = pg.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'arrowmapper' AND query ILIKE 'COPY%%' "
                "AND pid <> pg_backend_pid()"
            )
            if any(ok for (ok,) in rows):
                terminated.append(rows)

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
        batch_size=1_000,
        progress=terminate,
        transform="tests.helpers:slow_identity",
        retry=am.RetryConfig(max_retries=3, base_delay=0.05),
    )
    assert terminated, "no COPY backend was found to terminate"
    assert r.success and r.rows_written == 60_000
    assert max(c.attempts for c in r.chunk_results) >= 2
    assert pg.assert_same_rows(src, pg.t("dst")) == 60_000


@pytest.mark.parametrize("kill_what", ["coordinator", "process group"])
@pytest.mark.parametrize("kill_when", ["table created", "3 chunks committed"])
def test_killed_job_then_resume_loads_only_what_is_missing(
    pg: PG, kill_when: str, kill_what: str
) -> None:
    src = _source(pg)
    job = "resume-" + pg.schema
    script = textwrap.dedent(f"""
        import arrowmapper as am
        am.map_query({pg.uri!r}, {src!r}, {pg.uri!r}, "dst", schema={pg.schema!r},
                     key="id", strategy="key", workers=2, chunk_size=5_000, batch_size=1_000,
                     transform="tests.helpers:slow_identity", job_id={job!r})
    """)
    env = {**os.environ, "ARROWMAPPER_TEST_SLEEP": "0.1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env=env, start_new_session=True
    )
    ledger = pg.t("arrowmapper_ledger")
    deadline = time.monotonic() + 60
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if kill_when == "table created":
            if pg.scalar(f"SELECT to_regclass('{pg.schema}.dst') IS NOT NULL"):
                break
        else:
            try:
                committed = pg.scalar(f"SELECT COUNT(*) FROM {ledger} WHERE job_id = %s", (job,))
            except Exception:
                committed = 0
            if committed >= 3:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "the job finished before it could be killed"
    if kill_what == "coordinator":
        os.kill(proc.pid, signal.SIGKILL)  # its workers are orphaned and stop by themselves
    else:
        os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and every worker at once
    proc.wait()

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
        transform="tests.helpers:slow_identity",  # the same job: the same transform
        job_id=job,
        resume=True,
    )
    assert r.success and r.chunks == 13  # 12 key ranges + the IS NULL chunk
    if kill_when != "table created":
        assert len(r.skipped_chunks) >= 3
    assert pg.assert_same_rows(src, pg.t("dst")) == 60_000
    assert pg.scalar(f"SELECT COUNT(*) FROM {ledger} WHERE job_id = %s", (job,)) == 13
    # a second resume finds everything committed and loads nothing
    again = am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        transform="tests.helpers:slow_identity",
        job_id=job,
        resume=True,
    )
    assert again.rows_written == 0 and len(again.skipped_chunks) == 13
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 60_000


def test_terminated_source_connection_is_retried(pg: PG) -> None:
    src = _source(pg)
    terminated: list[Any] = []

    def terminate(snap: am.ProgressSnapshot) -> None:
        if not terminated and snap.running_chunks:
            rows = pg.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND application_name <> 'arrowmapper' "
                "AND query ILIKE %s AND pid <> pg_backend_pid()",
                (f"%{pg.schema}%src%",),
            )
            if any(ok for (ok,) in rows):
                terminated.append(rows)

    # one slow row late in each 5000-row chunk keeps its source query running for a while,
    # so the terminate below finds it whatever the machine's speed
    query = f"SELECT * FROM {src} WHERE id % 5000 <> 4000 OR pg_sleep(0.4) IS NOT NULL"
    r = am.map_query(
        pg.uri,
        query,
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        workers=2,
        chunk_size=5_000,
        batch_size=1_000,
        progress=terminate,
        transform="tests.helpers:slow_identity",
        retry=am.RetryConfig(max_retries=3, base_delay=0.05),
    )
    assert terminated, "no source backend was found to terminate"
    assert r.success and r.rows_written == 60_000
    assert r.attempt_errors
    assert pg.assert_same_rows(src, pg.t("dst")) == 60_000


def test_zombie_commit_is_refused_by_the_ledger(pg: PG) -> None:
    """A second writer of a committed chunk (a presumed-dead worker) writes nothing."""
    from arrowmapper.api import prepare
    from arrowmapper.run.worker import ChunkTask, release_worker_state, run_chunk

    src = _source(pg, 10_000)
    prepared = prepare(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        strategy="key",
        key="id",
        workers=1,
        chunk_size=5_000,
        job_id="zombie",
    )
    s = prepared.spec
    task = ChunkTask(
        job_id=s.job_id,
        chunk=s.plan.chunks[0],
        source=s.source,
        target=s.target,
        table=s.table,
        target_schema=s.target_schema,
        transform=s.transform,
        layout=s.layout,
        write=s.write,
    )
    first, second = run_chunk(task), run_chunk(task)
    release_worker_state()
    assert first.success and first.rows_written > 0
    assert second.success and second.already_committed and second.rows_written == 0
    assert pg.scalar("SELECT COUNT(*) FROM dst") == first.rows_written


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_worker_killed_in_the_commit_window(
    pg: PG, tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL just before COMMIT (nothing of the chunk lands) or just after it (everything
    landed, but the coordinator never heard): either way the target ends exact."""
    monkeypatch.setenv("ARROWMAPPER_FAULT", f"{point}:2")
    monkeypatch.setenv("ARROWMAPPER_FAULT_MARKER", str(tmp_path / "fault"))
    src = _source(pg, 30_000)
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
        job_id="commit-" + point,
        retry=am.RetryConfig(max_retries=2, base_delay=0.05),
    )
    assert (tmp_path / "fault").read_text().startswith(f"{point}:2:")
    assert r.success and pg.assert_same_rows(src, pg.t("dst")) == 30_000
    committed = [c for c in r.chunk_results if c.chunk_id == 2]
    if point == "after_commit":  # found in the ledger instead of being loaded again
        assert committed and committed[0].already_committed
    assert (
        pg.scalar("SELECT COUNT(*) FROM arrowmapper_ledger WHERE job_id = %s", ("commit-" + point,))
        == r.chunks
    )


def test_worker_killed_before_reading_anything(pg: PG) -> None:
    src = _source(pg, 30_000)
    killed: list[int] = []

    def kill_early(snap: am.ProgressSnapshot) -> None:
        fresh = [c for c in snap.running if c.pid and c.rows_read == 0]
        if not killed and fresh:
            killed.append(fresh[0].chunk_id)
            os.kill(fresh[0].pid, signal.SIGKILL)

    r = am.map_query(
        pg.uri,
        f"SELECT * FROM {src} WHERE id % 3000 <> 1 OR pg_sleep(0.3) IS NOT NULL",
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        workers=2,
        chunk_size=3_000,
        progress=kill_early,
        retry=am.RetryConfig(max_retries=2, base_delay=0.05),
    )
    assert killed
    assert r.success and pg.assert_same_rows(src, pg.t("dst")) == 30_000


def test_worker_killed_while_the_server_still_commits_is_not_split_and_reloaded(pg: PG) -> None:
    """Found by review: a worker SIGKILLed while its COMMIT was still running on the server
    (a deferred trigger makes it take seconds) was taken for an out-of-memory death; the
    coordinator read the ledger without waiting for that commit, split the chunk, and the
    halves loaded its rows a second time (6,000 rows from 5,000, verify agreeing)."""
    import threading

    import psycopg

    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, 'n' || g AS name FROM generate_series(1, 5000) g"
    )
    pg.execute("CREATE TABLE dst (id int, name text)")
    pg.execute(
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$"
    )
    pg.execute(
        "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON dst DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW WHEN (new.id = 1) EXECUTE FUNCTION slow()"
    )
    pids: dict[int, int] = {}
    killed: list[int] = []

    def seen(snap: am.ProgressSnapshot) -> None:
        for chunk in snap.running:
            if chunk.pid:
                pids[chunk.chunk_id] = chunk.pid

    def killer() -> None:
        deadline = time.monotonic() + 60
        with psycopg.connect(pg.uri, autocommit=True) as conn:
            while time.monotonic() < deadline and not killed:
                sleeping = conn.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                    "AND query ILIKE 'commit%'"
                ).fetchall()
                if sleeping and 0 in pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    r = am.map_query(
        pg.uri,
        pg.t("src"),
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        workers=2,
        chunk_size=1000,
        job_id="commit-race",
        progress=seen,
    )
    thread.join(timeout=5)
    assert killed, "the commit window was never hit"
    assert r.success
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 5000
    assert am.verify(pg.uri, pg.uri, "commit-race", schema=pg.schema).ok
