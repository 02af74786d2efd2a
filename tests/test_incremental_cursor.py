"""Recurring jobs with a cursor (``name=``, ``cursor=``): each run loads the rows above the mark
its name's last successful run stored, exactly once, and the mark moves with the last chunk."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import arrowmapper as am
from tests.conftest import PG, MariaDB

ROOT = Path(__file__).resolve().parents[1]


def _src(pg: PG, lo: int, hi: int) -> None:
    pg.execute("CREATE TABLE IF NOT EXISTS src (id int PRIMARY KEY, v text, n numeric(30,10))")
    pg.execute(f"INSERT INTO src SELECT g, 'v' || g, g * 1.5 FROM generate_series({lo}, {hi}) g")


def _run(pg: PG, **kw: Any) -> am.JobResult:
    options: dict[str, Any] = {
        "schema": pg.schema,
        "name": "sync",
        "cursor": "id",
        "key": "id",
        "strategy": "key",
        "workers": 2,
        "chunk_size": 300,
        "retry": am.RetryConfig(max_retries=1, base_delay=0.01),
    }
    options.update(kw)
    return am.map_query(pg.uri, f"SELECT * FROM {pg.t('src')}", pg.uri, "dst", **options)


def _mark(pg: PG, name: str = "sync") -> tuple[Any, ...]:
    return pg.query(
        "SELECT mark, mark_type, job_id, run_job FROM arrowmapper_marks WHERE name = %s", (name,)
    )[0]


def test_three_runs_load_each_row_once(pg: PG, inline: None) -> None:
    _src(pg, 1, 1000)
    first = _run(pg)
    assert first.rows_written == 1000 and first.job_id.startswith("sync-")
    assert _mark(pg)[:3] == ("1000", "integer", first.job_id)
    _src(pg, 1001, 1500)
    second = _run(pg)
    assert second.rows_written == 500 and second.job_id != first.job_id
    _src(pg, 1501, 1502)
    pg.execute("INSERT INTO src VALUES (5000, NULL, NULL)")
    third = _run(pg)
    assert third.rows_written == 3
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 1503
    assert _mark(pg)[:3] == ("5000", "integer", third.job_id)
    # nothing new: 0 rows, a note, the mark where it was
    fourth = _run(pg)
    assert fourth.rows_written == 0
    assert any("nothing new" in n for n in fourth.notes)
    assert _mark(pg)[0] == "5000"
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 1503


def test_failed_run_moves_nothing_and_its_resume_moves_the_mark(
    pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    _src(pg, 1, 1000)
    _run(pg)
    _src(pg, 4001, 6500)  # the batch holding id 5777 (past the sample) fails until "fixed"
    with pytest.raises(am.JobFailed) as failed:
        _run(pg, transform="tests.helpers:fail_on_id_until_fixed", batch_size=100)
    job_id = failed.value.result.job_id
    assert _mark(pg)[0] == "1000"  # a failed run moves nothing
    assert pg.scalar("SELECT COUNT(*) FROM dst") < 3500
    # a second run of the name is refused while this one is unfinished
    with pytest.raises(am.ConfigError, match="has not finished"):
        _run(pg, transform="tests.helpers:fail_on_id_until_fixed")
    _src(pg, 7001, 7010)  # arrives after the failed run planned: the next run's
    monkeypatch.setenv("ARROWMAPPER_TEST_FIXED", "1")
    done = _run(pg, transform="tests.helpers:fail_on_id_until_fixed", job_id=job_id, resume=True)
    assert done.success and _mark(pg)[:3] == ("6500", "integer", job_id)
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 3500
    last = _run(pg, transform="tests.helpers:fail_on_id_until_fixed")
    assert last.rows_written == 10
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 3510


@pytest.fixture
def inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small runs as one chunk in this process (no pool to start: fast)."""
    monkeypatch.setenv("MAPPER_MIN_ROWS_FOR_PARALLEL", "1000000")


@pytest.mark.fault
def test_worker_killed_in_a_commit_then_the_run_killed_and_resumed(
    pg: PG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker SIGKILLed inside a chunk's commit window (rows, ledger row and maybe the mark in
    one transaction): the chunk is split and reloaded and the mark moves with the last commit.
    Then a whole run (coordinator and workers) is SIGKILLed mid-run: the mark stays, a new run
    of the name is refused, and the resume ends exact and moves the mark."""
    _src(pg, 1, 300)
    _run(pg, workers=1)
    _src(pg, 301, 1500)
    monkeypatch.setenv("ARROWMAPPER_FAULT", "before_commit:3")
    monkeypatch.setenv("ARROWMAPPER_FAULT_MARKER", str(tmp_path / "fault"))
    split = _run(pg)
    assert (tmp_path / "fault").read_text().startswith("before_commit:3:")
    assert split.success and _mark(pg)[:3] == ("1500", "integer", split.job_id)
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 1500
    monkeypatch.delenv("ARROWMAPPER_FAULT")

    _src(pg, 1501, 4000)
    script = textwrap.dedent(f"""
        import arrowmapper as am
        if __name__ == "__main__":
            am.map_query({pg.uri!r}, {"SELECT * FROM " + pg.t("src")!r}, {pg.uri!r}, "dst", schema={pg.schema!r},
                         name="sync", cursor="id", key="id", strategy="key", workers=2,
                         chunk_size=300, batch_size=100, transform="tests.helpers:slow_identity")
    """)
    env = {**os.environ, "ARROWMAPPER_TEST_SLEEP": "0.1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env=env, start_new_session=True
    )
    job_id, deadline = None, time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        job_id = _mark(pg)[3]
        if (
            job_id != split.job_id
            and pg.scalar("SELECT COUNT(*) FROM arrowmapper_ledger WHERE job_id = %s", (job_id,))
            >= 2
        ):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _mark(pg)[0] == "1500"
    with pytest.raises(am.ConfigError, match="has not finished"):
        _run(pg)
    done = _run(pg, job_id=job_id, resume=True, transform="tests.helpers:slow_identity")
    assert done.success and _mark(pg)[:3] == ("4000", "integer", job_id)
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 4000


def test_merge_picks_up_updated_rows(pg: PG, inline: None) -> None:
    pg.execute(
        "CREATE TABLE src (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL);"
        "INSERT INTO src SELECT g, 'a' || g, TIMESTAMPTZ '2026-01-01 00:00:00+00' "
        "+ g * INTERVAL '1 microsecond' FROM generate_series(1, 50) g"
    )
    kw = {"cursor": "updated_at", "mode": "merge", "strategy": "auto"}
    _run(pg, **kw)
    assert _mark(pg)[:2] == ("2026-01-01 00:00:00.00005+00", "timestamptz")
    pg.execute(
        "UPDATE src SET v = 'b' || id, updated_at = TIMESTAMPTZ '2026-01-02 00:00:00.000001+00' "
        "WHERE id IN (3, 40);"
        "INSERT INTO src VALUES (51, 'new', TIMESTAMPTZ '2026-01-02 00:00:00.000001+00')"
    )
    second = _run(pg, **kw)
    assert second.rows_written == 3
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 51
    assert pg.scalar("SELECT v FROM dst WHERE id = 40") == "b40"


def test_timestamp_cursor_exact_at_the_microsecond(pg: PG, inline: None) -> None:
    """A mark one microsecond below a new row's cursor loads exactly it (no float rounding)."""
    pg.execute(
        "CREATE TABLE src (id int, ts timestamp);"
        "INSERT INTO src VALUES (1, '2026-03-01 10:00:00.999998'), "
        "(2, '2026-03-01 10:00:00.999999'), (3, NULL)"
    )
    first = _run(pg, cursor="ts", key=None, strategy="auto")
    assert first.rows_written == 2 and any("NULL 'ts'" in n for n in first.notes)
    assert _mark(pg)[:2] == ("2026-03-01 10:00:00.999999", "timestamp")
    pg.execute(
        "INSERT INTO src VALUES (4, '2026-03-01 10:00:01'), (5, '2026-03-01 10:00:00.999999')"
    )
    second = _run(pg, cursor="ts", key=None, strategy="auto")
    # id 5 has the mark's own value: at or below the mark, it is not new (documented)
    assert second.rows_written == 1
    assert pg.query("SELECT id FROM dst ORDER BY id") == [(1,), (2,), (4,)]


def test_changed_definition_and_bad_cursors_are_refused(pg: PG, inline: None) -> None:
    _src(pg, 1, 20)
    _run(pg)
    with pytest.raises(am.ConfigError, match=r"query: was .*reset=True"):
        am.map_query(
            pg.uri,
            f"SELECT id, v FROM {pg.t('src')}",
            pg.uri,
            "dst",
            schema=pg.schema,
            name="sync",
            cursor="id",
        )
    with pytest.raises(am.ConfigError, match="cursor: was 'id', now 'n'"):
        _run(pg, cursor="n")
    with pytest.raises(am.ConfigError, match="'nope' is not a column of the query"):
        _run(pg, name="other", cursor="nope")
    pg.execute("ALTER TABLE src ALTER COLUMN id TYPE text")
    with pytest.raises(am.ConfigError, match="was integer when the mark was stored and is text"):
        _run(pg, key=None, strategy="auto")
    with pytest.raises(am.ConfigError, match="needs a job name"):
        am.map_query(pg.uri, "src", pg.uri, "dst", schema=pg.schema, cursor="id")
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 20
    pg.execute("ALTER TABLE src ALTER COLUMN id TYPE int USING id::int")
    again = _run(pg, reset=True)  # starts over: a full load
    assert again.rows_written == 20 and _mark(pg)[0] == "20"


def test_mariadb_source_into_sqlite(mariadb: MariaDB, tmp_path: Path, inline: None) -> None:
    db = mariadb.uri.rsplit("/", 1)[1]
    mariadb.execute(
        f"CREATE TABLE {db}.ev (id INT PRIMARY KEY, amount DECIMAL(38,10), "
        "at DATETIME(6) NULL);"
        f"INSERT INTO {db}.ev VALUES (1, 12345678901234567890.0000000001, "
        "'2026-01-01 00:00:00.000001'), (2, 1.5, '2026-01-01 00:00:00.000002'), (3, 2, NULL)"
    )
    out = tmp_path / "t.db"

    def run() -> am.JobResult:
        return am.map_query(
            mariadb.uri, "ev", f"sqlite:///{out}", "ev", name="ev-sync", cursor="at"
        )

    assert run().rows_written == 2
    mariadb.execute(
        f"INSERT INTO {db}.ev VALUES (4, 3, '2026-01-01 00:00:00.000003'), "
        "(5, 4, '2026-01-01 00:00:00.000002')"
    )
    assert run().rows_written == 1
    assert run().rows_written == 0
    with sqlite3.connect(out) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM ev ORDER BY id")] == [1, 2, 4]
        mark = conn.execute("SELECT mark, mark_type FROM arrowmapper_marks").fetchone()
    assert mark == ("2026-01-01 00:00:00.000003", "timestamp")


def test_sqlite_source_with_a_text_cursor(tmp_path: Path, inline: None) -> None:
    src, out = tmp_path / "s.db", tmp_path / "t.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE s (k TEXT, v INTEGER)")

    def run() -> am.JobResult:
        return am.map_query(
            f"sqlite:///{src}", "SELECT * FROM s", f"sqlite:///{out}", "t", name="s", cursor="k"
        )

    empty = run()  # no row yet: nothing loaded, no mark stored
    assert empty.rows_written == 0 and any("no row has" in n for n in empty.notes)
    with sqlite3.connect(src) as conn:
        conn.executemany("INSERT INTO s VALUES (?, ?)", [("a", 1), ("b", 2), (None, 9)])
    assert run().rows_written == 2
    with sqlite3.connect(src) as conn:
        conn.executemany("INSERT INTO s VALUES (?, ?)", [("c", 3), ("ab", 4)])
    assert run().rows_written == 1  # "ab" sorts below the mark "b"
    with sqlite3.connect(out) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT k FROM t")) == ["a", "b", "c"]


def test_the_last_chunk_commit_moves_the_mark_before_the_job_finishes(pg: PG) -> None:
    """The mark moves inside the commit of the run's last chunk, not in the finishing step: a
    coordinator that dies after that commit leaves the mark where its rows are."""
    from arrowmapper.config import JobConfig
    from arrowmapper.run.coordinator import Coordinator
    from arrowmapper.run.prepare import prepare_job

    _src(pg, 1, 900)
    c = JobConfig.build(
        {
            "source": pg.uri,
            "query": f"SELECT * FROM {pg.t('src')}",
            "target": pg.uri,
            "table": "dst",
            "schema": pg.schema,
            "name": "sync",
            "cursor": "id",
            "key": "id",
            "strategy": "key",
            "workers": 2,
            "chunk_size": 300,
        }
    )
    spec = prepare_job(c).spec
    assert len(spec.plan.chunks) >= 3
    result = Coordinator(spec, None).run()  # run_prepared without its finishing step
    assert result.success
    assert (
        pg.scalar("SELECT finished_at FROM arrowmapper_jobs WHERE job_id = %s", (spec.job_id,))
        is None
    )
    assert _mark(pg)[:3] == ("900", "integer", spec.job_id)
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 900


def test_two_last_chunks_committing_at_once_move_the_mark_once(pg: PG) -> None:
    """Chunks 0 and 1 of a two-chunk run commit at once: the first to check (holding the job's
    row) sees only itself; the second waits for that lock, then sees both and moves the mark.
    Without the lock both could check before either commits, and neither would move it."""
    import threading

    from arrowmapper.config import parse_uri
    from arrowmapper.targets import TableRef, open_target
    from arrowmapper.targets.marks import RunClaim

    dst = parse_uri(pg.uri, "target")
    ref = TableRef(pg.schema, "dst", "postgresql")
    a, b = open_target(dst, ref), open_target(dst, ref)
    try:
        a.ensure_ledger()
        a.ensure_marks()
        plan = '{"chunks": [{"chunk_id": 0}, {"chunk_id": 1}]}'
        assert a.register_job("run-1", plan, {})
        d = {"source": "s", "query": "q", "target_table": ref.display, "cursor_column": "id"}
        a.claim_run(RunClaim("n", "run-1", d, None, None, "42", "integer"))
        with pytest.raises(am.ConfigError, match="has not finished"):
            b.claim_run(RunClaim("n", "run-2", d, None, None, "43", "integer"))
        ledger = ref.qualified("arrowmapper_ledger")

        def chunk(t: Any, cid: int) -> bool:
            t._exec(
                f"INSERT INTO {ledger} (job_id, chunk_id, target_table, rows) "
                f"VALUES ('run-1', {cid}, 'dst', 1)"
            )
            return bool(t.complete_run("run-1", "n", t._exec))

        assert not chunk(a, 0)  # holds the job's row until it commits
        moved: list[bool] = []
        second = threading.Thread(target=lambda: moved.append(chunk(b, 1)))
        second.start()
        time.sleep(0.5)  # let it reach the lock (were it not there: check and miss chunk 0)
        a.conn.commit()
        second.join(30)
        b.conn.commit()
        assert moved == [True]
        assert _mark(pg, "n")[:3] == ("42", "integer", "run-1")
    finally:
        a.close()
        b.close()


def test_name_cursor_and_reset_are_options_of_every_layer() -> None:
    """Declared once: arguments, job params, MAPPER_* and their checks (no database)."""
    from arrowmapper.config import JobConfig

    c = JobConfig.build(
        {"mode": "merge"}, {"name": "orders-sync", "cursor": "updated_at", "reset_mark": "true"}
    )
    assert (c.name, c.cursor, c.reset) == ("orders-sync", "updated_at", True)
    env = {"MAPPER_NAME": "nightly", "MAPPER_CURSOR": "id"}
    assert (JobConfig.build(env=env).name, JobConfig.build(env=env).cursor) == ("nightly", "id")
    assert JobConfig.build(env={**env, "MAPPER_CURSOR_LAG": "2.5"}).cursor_lag == 2.5
    assert JobConfig.build({}, {"name": "n", "cursor": "id", "cursor_lag": "30"}).cursor_lag == 30
    for bad, words in [
        ({"cursor": "id"}, "needs a job name"),
        ({"name": "n", "cursor": "id", "mode": "replace"}, "use mode='append' or 'merge'"),
        ({"name": "n", "reset": True}, "pass name and cursor"),
        ({"name": "n", "cursor_lag": 5}, "cursor_lag= holds back"),
        ({"name": "n", "cursor": "id", "cursor_lag": -1}, "seconds > 0"),
        ({"name": "n", "cursor": "id", "reset": True, "resume": True, "job_id": "j"}, "one of"),
        ({"name": "two words", "cursor": "id"}, "name must be"),
        ({"name": "n", "cursor": "id", "incremental": True}, "incremental=True is for file"),
    ]:
        with pytest.raises(am.ConfigError, match=words):
            JobConfig.build(bad, env={})


def _failing(pg: PG, **kw: Any) -> am.JobResult:
    """A run of ``sync`` whose query fails on the server at id 1150 (past the planner's sample) until that row is gone
    (the query, and so the name's definition, stays the same)."""
    query = (
        "SELECT id, CASE WHEN id <> 1150 THEN v ELSE (1 / (id - 1150))::text END AS v, n "
        f"FROM {pg.t('src')}"
    )
    options: dict[str, Any] = {"schema": pg.schema, "name": "sync", "cursor": "id", "key": "id"}
    options.update(kw, retry=am.RetryConfig(max_retries=0))
    return am.map_query(pg.uri, query, pg.uri, "dst", **options)


def test_a_resume_without_name_and_cursor_still_moves_the_mark(pg: PG, inline: None) -> None:
    """A run of a name resumed with only job_id and resume (the name and cursor left out)
    completes the run and moves the name's mark, so the next run loads only what is new; a
    resume naming another name or cursor is refused."""
    _src(pg, 1, 100)
    _failing(pg)
    _src(pg, 101, 1200)
    with pytest.raises(am.JobFailed) as failed:
        _failing(pg)
    job_id = failed.value.result.job_id
    with pytest.raises(am.ConfigError, match="is a run of the job name 'sync', not 'other'"):
        _failing(pg, job_id=job_id, resume=True, name="other")
    with pytest.raises(am.ConfigError, match="with cursor 'id', not 'v'"):
        _failing(pg, job_id=job_id, resume=True, cursor="v")
    pg.execute("DELETE FROM src WHERE id = 1150")  # the cause, fixed
    done = _failing(pg, job_id=job_id, resume=True, name=None, cursor=None)
    assert done.success and _mark(pg)[:3] == ("1200", "integer", job_id)
    _src(pg, 1201, 1210)
    assert _failing(pg).rows_written == 10
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 1209


def test_a_resume_with_the_bounded_query_moves_the_mark(pg: PG, inline: None) -> None:
    """The form older ``status`` printed: the run's bounded query, no name or cursor."""
    _src(pg, 1, 1200)
    with pytest.raises(am.JobFailed) as failed:
        _failing(pg)
    job_id = failed.value.result.job_id
    bounded = pg.scalar("SELECT fingerprint FROM arrowmapper_jobs WHERE job_id = %s", (job_id,))
    query = json.loads(bounded)["query"]
    assert "<=" in query
    pg.execute("DELETE FROM src WHERE id = 1150")
    done = am.map_query(
        pg.uri, query, pg.uri, "dst", schema=pg.schema, key="id", job_id=job_id, resume=True
    )
    assert done.success and _mark(pg)[:3] == ("1200", "integer", job_id)
    _src(pg, 1201, 1210)
    assert _failing(pg).rows_written == 10
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 1209


def test_a_dropped_target_table_refuses_the_next_run(pg: PG, inline: None) -> None:
    """The mark stands for rows in one table: dropped (or dropped and created again), the
    next run is refused rather than loading only the rows above the mark; reset loads all."""
    _src(pg, 1, 300)
    _run(pg)
    pg.execute("DROP TABLE dst")
    with pytest.raises(am.ConfigError, match="dropped or recreated"):
        _run(pg)
    pg.execute("CREATE TABLE dst (id int PRIMARY KEY, v text, n numeric(30,10))")
    with pytest.raises(am.ConfigError, match="dropped or recreated"):
        _run(pg)
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 0
    assert _run(pg, reset=True).rows_written == 300
    _src(pg, 301, 305)
    assert _run(pg).rows_written == 5
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 305


def test_cursor_lag_leaves_a_late_committing_row_for_the_next_run(pg: PG, inline: None) -> None:
    """A sequence cursor: a writer takes id 101 and commits after id 102 committed. Without a
    lag the run sets the mark to 102 and 101 is never loaded; with cursor_lag the mark stays
    below the writers still in flight and the next run loads 101."""
    import psycopg

    pg.execute("CREATE TABLE src (id bigserial PRIMARY KEY, v text, n numeric(30,10))")
    pg.execute("INSERT INTO src (v) SELECT 'v' || g FROM generate_series(1, 100) g")
    first = _run(pg, cursor_lag=5)
    assert first.rows_written == 95 and _mark(pg)[0] == "95"
    assert any("cursor_lag 5" in n and "above 95" in n for n in first.notes), first.notes
    with psycopg.connect(pg.uri) as slow:  # takes id 101, commits late
        slow.execute(f"INSERT INTO {pg.t('src')} (v) VALUES ('slow')")
        pg.execute("INSERT INTO src (v) VALUES ('fast')")  # id 102, committed
        assert _run(pg, cursor_lag=5).rows_written == 2  # 96, 97: 101 is not visible yet
        slow.commit()
    pg.execute("INSERT INTO src (v) SELECT 'w' || g FROM generate_series(1, 10) g")  # to 112
    assert _run(pg, cursor_lag=5).rows_written == 10  # 98 ... 107, 101 among them
    assert pg.scalar("SELECT count(*) FROM dst WHERE v = 'slow'") == 1
    # a text cursor has no distance to hold back
    with pytest.raises(am.ConfigError, match="a text cursor has none"):
        _run(pg, name="t", cursor="v", cursor_lag=5)


def test_cursor_lag_on_a_timestamp_cursor_holds_back_seconds(pg: PG, inline: None) -> None:
    pg.execute("CREATE TABLE src (id int PRIMARY KEY, at timestamptz)")
    pg.execute(
        "INSERT INTO src SELECT g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 s' "
        "FROM generate_series(1, 100) g"
    )
    result = _run(pg, cursor="at", cursor_lag=30)
    assert result.rows_written == 70
    assert pg.scalar("SELECT max(id) FROM dst") == 70
    assert _run(pg, cursor="at").rows_written == 30


def test_mariadb_text_cursor_under_a_folding_collation_is_named_in_the_notes(
    mariadb: MariaDB, tmp_path: Path, inline: None
) -> None:
    """A case-insensitive (or PAD SPACE) collation makes 'B' and 'b ' equal to the mark 'b':
    they are never loaded. The run says so in its notes, naming the collation and the fix;
    with a NO PAD binary collation in the query, no note and every later value loads."""
    db = mariadb.uri.rsplit("/", 1)[1]
    mariadb.execute(
        f"CREATE TABLE {db}.tc (id INT PRIMARY KEY, "
        "c VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci);"
        f"INSERT INTO {db}.tc VALUES (1, 'a'), (2, 'b')"
    )
    out = f"sqlite:///{tmp_path / 't.db'}"
    folded = am.map_query(mariadb.uri, "tc", out, "tc", name="ci", cursor="c")
    assert any("collation utf8mb4_general_ci" in n and "nopad" in n for n in folded.notes)
    exact_query = "SELECT id, c COLLATE utf8mb4_nopad_bin AS c FROM tc"
    exact = am.map_query(mariadb.uri, exact_query, out, "tc2", name="bin", cursor="c")
    assert exact.rows_written == 2 and not any("collation" in n for n in exact.notes)
    mariadb.execute(f"INSERT INTO {db}.tc VALUES (3, 'B'), (4, 'b ')")
    again = am.map_query(mariadb.uri, exact_query, out, "tc2", name="bin", cursor="c")
    assert again.rows_written == 1  # 'b ' > 'b' with NO PAD; 'B' < 'b' in binary order
