"""A small one-chunk job runs in the calling process (no worker to start): exactly-once,
retried and reported like any other job; the cases that keep a worker keep one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import arrowmapper as am
from tests.conftest import PG

#: the target's first write fails with a serialization failure (transient), later ones pass
FAIL_ONCE = """
CREATE TABLE {s}.dst (id int, s text);
CREATE SEQUENCE {s}.tries;
CREATE FUNCTION {s}.fail_first_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('{s}.tries') = 1 THEN
    RAISE EXCEPTION 'first write fails' USING ERRCODE = '40001';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER fail_once BEFORE INSERT ON {s}.dst
  FOR EACH STATEMENT EXECUTE FUNCTION {s}.fail_first_write();
"""


def _src(pg: PG, rows: int = 3_000) -> None:
    pg.execute(
        f"CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, {rows}) g"
    )
    pg.execute("ANALYZE src")


@pytest.mark.parametrize("path", ["arrow", "copy"])
def test_a_small_job_runs_in_this_process_and_retries_a_transient_failure(
    pg: PG, path: str
) -> None:
    _src(pg)
    pg.execute(FAIL_ONCE.format(s=pg.schema))
    r = am.map_query(
        pg.uri,
        pg.t("src"),
        pg.uri,
        "dst",
        schema=pg.schema,
        path=path,
        retry=am.RetryConfig(max_retries=2, base_delay=0.01),
    )
    assert r.success and r.workers == 0 and r.path == path
    assert r.chunks == 1 and r.chunk_results[0].attempts == 2
    assert "in this process" in r.summary()
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 3_000  # once each


def test_a_terminal_failure_in_this_process_is_a_clear_job_failure(pg: PG) -> None:
    _src(pg)
    query = f"SELECT id, 100 / (id - 2500) AS q FROM {pg.t('src')}"
    with pytest.raises(am.JobFailed, match="division by zero") as failed:
        am.map_query(pg.uri, query, pg.uri, "dst", schema=pg.schema, path="arrow")
    assert failed.value.result.workers == 0
    assert pg.scalar("SELECT count(*) FROM dst") == 0  # the chunk's transaction rolled back


def test_a_resumed_job_with_one_chunk_left_runs_it_here(pg: PG) -> None:
    """A job of several chunks whose resume leaves one runs that one in this process."""
    _src(pg, 2_000)
    pg.execute("CREATE TABLE ctl AS SELECT true AS fail")
    pg.execute("CREATE TABLE dst (id int, s text)")
    pg.execute(
        f"CREATE FUNCTION {pg.schema}.fails() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.id > 1500 AND (SELECT fail FROM {pg.t('ctl')}) THEN RAISE EXCEPTION 'no'; "
        f"END IF; RETURN NEW; END $$"
    )
    pg.execute(
        f"CREATE TRIGGER fails BEFORE INSERT ON dst FOR EACH ROW EXECUTE FUNCTION {pg.schema}.fails()"
    )
    query = pg.t("src")
    opts = dict(schema=pg.schema, strategy="key", key="id", chunk_size=500, workers=2)
    with pytest.raises(am.JobFailed) as failed:
        am.map_query(pg.uri, query, pg.uri, "dst", job_id="r1", **opts)
    assert failed.value.result.workers == 2
    assert pg.scalar("SELECT count(*) FROM dst") == 1_500
    pg.execute("UPDATE ctl SET fail = false")
    r = am.map_query(pg.uri, query, pg.uri, "dst", job_id="r1", resume=True, **opts)
    assert r.success and r.workers == 0
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 2_000


@pytest.mark.parametrize(
    "keeps",
    [{"stall_timeout": 600}, {"max_worker_memory": 4096}, {"chunk_size": 1_000}],
    ids=["stall_timeout", "max_worker_memory", "two chunks"],
)
def test_jobs_that_need_a_worker_keep_one(pg: PG, keeps: dict[str, int]) -> None:
    _src(pg, 2_000)
    r = am.map_query(pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, workers=1, **keeps)
    assert r.success and r.workers == 1
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 2_000


def test_stale_statistics_do_not_send_a_big_table_into_this_process(pg: PG) -> None:
    """The planner's estimate says 10 rows (ANALYZE ran before the load); the bounded count
    says more than an in-process chunk may hold, so the chunk goes to a worker."""
    pg.execute("CREATE TABLE src (id int, s text) WITH (autovacuum_enabled = false)")
    pg.execute("INSERT INTO src SELECT g, 'x' FROM generate_series(1, 10) g")
    pg.execute("ANALYZE src")
    pg.execute("INSERT INTO src SELECT g, md5(g::text) FROM generate_series(11, 120000) g")
    r = am.map_query(pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, workers=1)
    assert r.success and r.chunks == 1 and r.workers == 1  # on a worker, not here
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 120_000


def test_a_transform_raising_systemexit_fails_the_job_not_the_caller(
    pg: PG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first call (the preflight's sample, in this same process) passes; the chunk's exits
    (tmp_path / "exits.py").write_text(
        "n = [0]\ndef t(df):\n    n[0] += 1\n    if n[0] > 1:\n        raise SystemExit(3)\n"
        "    return df\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _src(pg)
    with pytest.raises(am.JobFailed, match="SystemExit") as failed:
        am.map_query(pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, transform="exits:t")
    assert failed.value.result.workers == 0
    assert pg.scalar("SELECT count(*) FROM dst") == 0
    # the chunk's cached target connection was released, not left idle
    assert not pg.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'arrowmapper' "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state = 'idle' "
        f"AND query ILIKE '%{pg.schema}%'"
    )


CTRL_C = """
import os, signal, sys, threading, time
sys.path.insert(0, {tmp!r})
import arrowmapper as am
if __name__ == "__main__":
    def fire():
        time.sleep(2.0)
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=fire, daemon=True).start()
    t0 = time.monotonic()
    try:
        am.map_query({uri!r}, {src!r}, {uri!r}, "dst", schema={schema!r}, transform="slow:t",
                     batch_size=200, job_id="ctrlc")
    except KeyboardInterrupt:
        print("INTERRUPTED after", round(time.monotonic() - t0, 1))
        sys.exit(130)
    print("FINISHED")
"""


@pytest.mark.fault
def test_ctrl_c_stops_a_job_running_in_this_process(pg: PG, tmp_path: Path) -> None:
    """SIGINT while the chunk streams into ADBC's COPY (the driver cancels the statement; the
    server's 57014 alone would read as transient and be retried): the job stops, its chunk
    is rolled back, and a resume loads every row once."""
    (tmp_path / "slow.py").write_text("import time\ndef t(df):\n    time.sleep(0.3)\n    return df\n")
    _src(pg, 5_000)
    script = tmp_path / "job.py"
    script.write_text(
        CTRL_C.format(tmp=str(tmp_path), uri=pg.uri, src=pg.t("src"), schema=pg.schema)
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 130, done.stdout + done.stderr
    assert "INTERRUPTED" in done.stdout and "FINISHED" not in done.stdout
    assert pg.scalar("SELECT count(*) FROM dst") == 0
    r = am.map_query(
        pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, transform=None, job_id="ctrlc2"
    )
    assert r.success and pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 5_000
