"""The operator's command line: jobs, status, clean; the CLI's own words; Ctrl-C; nothing left
behind. Every command runs as a real subprocess against real databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PG

ROOT = Path(__file__).resolve().parents[1]


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arrowmapper", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80", **(env or {})},
        timeout=300,
    )


def _load(pg: PG, job_id: str, *extra: str, query: str = "") -> str:
    out = cli(
        "run", "--source", pg.uri, "--query", query or pg.t("src"), "--target", pg.uri, "--table", "dst",
        "--schema", pg.schema, "--key", "id", "--chunk-size", "500", "--workers", "1",
        "--job-id", job_id, *extra,
    )  # fmt: skip
    return out.stdout + out.stderr + f"\nrc={out.returncode}"


#: the rows of src, but id 1250 fails on the server (division by zero): chunk 2 of 4 fails
#: (past the 1000 rows the planner's sample reads)
FAILING = "SELECT id, CASE WHEN id <> 1250 THEN s ELSE (1 / (id - 1250))::text END AS s FROM {}"
SRC = "CREATE TABLE src AS SELECT g AS id, g::text AS s FROM generate_series(1, 2000) g"


def _half_loaded(pg: PG, job_id: str, *extra: str) -> str:
    """Run a job whose chunk 2 (ids 1001-1500) fails for good: chunks 0, 1 and 3 commit."""
    return _load(pg, job_id, "--max-retries", "0", *extra, query=FAILING.format(pg.t("src")))


def test_jobs_status_and_clean_rows_of_a_failed_job(pg: PG, tmp_path: Path) -> None:
    pg.execute(SRC)
    assert "rc=0" in _load(pg, "done-1")
    failed = _half_loaded(pg, "half-1")
    assert "rc=1" in failed, failed
    # the failure names the CLI's flags, not map_query's keywords
    assert "--job-id half-1 --resume" in failed and "resume=True" not in failed
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 3500

    listed = cli("jobs", pg.uri, "--schema", pg.schema, "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = {j["job_id"]: j for j in json.loads(listed.stdout)}
    assert jobs["done-1"]["state"] == "finished" and jobs["done-1"]["chunks_committed"] == 5, jobs
    half = jobs["half-1"]
    assert half["state"] == "unfinished" and half["rows"] == 1500
    assert (half["chunks_committed"], half["chunks_planned"]) == (3, 4)
    assert half["table"] == f"{pg.schema}.dst" and half["chunks_missing"] == [2]
    text = cli("jobs", pg.uri, "--schema", pg.schema)
    assert "half-1" in text.stdout and "3/4" in text.stdout and "unfinished" in text.stdout

    status = cli("status", "half-1", "--target", pg.uri, "--schema", pg.schema)
    assert status.returncode == 0, status.stderr
    assert "3 of 4 committed; missing: 2" in status.stdout
    assert "--job-id half-1 --resume" in status.stdout and "strategy:  key" in status.stdout

    # a finished job's rows are never deleted
    refused = cli("clean", "done-1", "--target", pg.uri, "--schema", pg.schema, "--rows")
    assert refused.returncode == 2 and "finished" in refused.stderr
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('arrowmapper_ledger')}") == 8

    cleaned = cli("clean", "half-1", "--target", pg.uri, "--schema", pg.schema, "--rows")
    assert cleaned.returncode == 0, cleaned.stderr
    assert "1,500 rows deleted" in cleaned.stdout
    # exactly the finished job's rows are left, each once; its ledger is untouched
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 2000
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 2000
    assert pg.query(f"SELECT DISTINCT job_id FROM {pg.t('arrowmapper_ledger')}") == [("done-1",)]
    assert pg.query(f"SELECT job_id FROM {pg.t('arrowmapper_jobs')}") == [("done-1",)]


def test_clean_refuses_rows_when_the_table_changed(pg: PG, tmp_path: Path) -> None:
    pg.execute(SRC)
    assert "rc=1" in _half_loaded(pg, "half-2")
    import psycopg

    # a live run of the job: a worker holds its missing chunk's ledger row until it commits
    with psycopg.connect(pg.uri) as worker:
        worker.execute(
            f"INSERT INTO {pg.t('arrowmapper_ledger')} (job_id, chunk_id, target_table, rows) "
            "VALUES ('half-2', 2, 'dst', -1)"
        )
        listed = json.loads(cli("jobs", pg.uri, "--schema", pg.schema, "--json").stdout)
        assert listed[0]["state"] == "running", listed
        busy = cli("clean", "half-2", "--target", pg.uri, "--schema", pg.schema)
        assert busy.returncode == 2 and "is running" in busy.stderr, busy.stderr
        worker.rollback()
    listed = json.loads(cli("jobs", pg.uri, "--schema", pg.schema, "--json").stdout)
    assert listed[0]["state"] == "unfinished", listed
    pg.execute(f"UPDATE {pg.t('dst')} SET s = 'x' WHERE id = 5")  # a chunk's row moved on
    refused = cli("clean", "half-2", "--target", pg.uri, "--schema", pg.schema, "--rows")
    assert refused.returncode == 2 and "changed since" in refused.stderr, refused.stderr
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 1500
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('arrowmapper_ledger')}") == 3


def test_clean_rows_is_refused_on_sqlite_rowid_locators(pg: PG, tmp_path: Path) -> None:
    """A rowid range also covers rows updated since and a rowid SQLite reused after a delete:
    clean --rows would delete rows that are not the job's, so it is refused, nothing deleted."""
    import sqlite3

    pg.execute(SRC)
    dst = tmp_path / "dst.db"
    failed = cli(
        "run", "--source", pg.uri, "--query", FAILING.format(pg.t("src")), "--target",
        f"sqlite:///{dst}", "--table", "dst", "--key", "id", "--chunk-size", "500",
        "--workers", "1", "--job-id", "half-s", "--max-retries", "0",
    )  # fmt: skip
    assert failed.returncode == 1, failed.stdout + failed.stderr
    with sqlite3.connect(dst) as db:
        db.execute("UPDATE dst SET s = 'kept by someone' WHERE id = 5")  # not the job's row now
    refused = cli("clean", "half-s", "--target", f"sqlite:///{dst}", "--rows")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "delete its rows by key" in refused.stderr and "without --rows" in refused.stderr
    with sqlite3.connect(dst) as db:
        assert db.execute("SELECT count(*) FROM dst").fetchone() == (1500,)
        assert db.execute("SELECT count(*) FROM arrowmapper_ledger").fetchone() == (3,)
    # without --rows the ledger is forgotten and the rows stay
    cleaned = cli("clean", "half-s", "--target", f"sqlite:///{dst}")
    assert cleaned.returncode == 0, cleaned.stderr
    with sqlite3.connect(dst) as db:
        assert db.execute("SELECT count(*) FROM dst").fetchone() == (1500,)


def test_clean_drops_a_replace_jobs_staging_table(pg: PG, tmp_path: Path) -> None:
    pg.execute(SRC)
    pg.execute("CREATE TABLE dst AS SELECT * FROM src WHERE id < 10")
    assert "rc=1" in _half_loaded(pg, "rep-1", "--mode", "replace")
    stages = pg.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "AND table_name LIKE %s",
        (pg.schema, "dst\\_\\_am\\_%"),
    )
    assert len(stages) == 1
    listed = json.loads(cli("jobs", pg.uri, "--schema", pg.schema, "--json").stdout)
    assert listed[0]["table"] == f"{pg.schema}.dst"  # the final table, not the stage
    cleaned = cli("clean", "rep-1", "--target", pg.uri, "--schema", pg.schema)
    assert cleaned.returncode == 0 and "dropped" in cleaned.stdout, cleaned.stderr
    assert not pg.query(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        (pg.schema, stages[0][0]),
    )
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 9  # the old rows, untouched
    # a replace that finishes names its final table, never its stage, in the summary
    done = _load(pg, "rep-2", "--mode", "replace")
    assert "rc=0" in done and f"2,000 rows into {pg.schema}.dst in" in done, done
    assert "__am_" not in done and "5 chunks" in done and "1 worker" in done, done


def test_jobs_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "nope.db"
    out = cli("jobs", f"sqlite:///{db}")
    assert out.returncode == 2 and "does not exist" in out.stderr
    assert not db.exists()


def _under_pty(
    args: list[str], columns: int = 200
) -> tuple[subprocess.Popen[bytes], int, list[bytes]]:
    """Start the CLI on a pseudo-terminal (its own session: a Ctrl-C there reaches it and its
    workers, as a terminal's would); a thread drains the output."""
    import pty
    import threading

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "arrowmapper", *args],
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns)},
        start_new_session=True,
    )
    os.close(slave)
    out: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            out.append(data)

    threading.Thread(target=drain, daemon=True).start()
    return proc, master, out


def test_ctrl_c_stops_names_the_job_and_resume_loads_the_rest_once(pg: PG) -> None:
    import signal
    import time

    pg.execute(SRC)
    # each chunk's read sleeps a little: the job is still loading when Ctrl-C comes
    slow = f"SELECT s.id, s.s FROM {pg.t('src')} s, (SELECT pg_sleep(0.4)) z"
    args = [
        "run", "--source", pg.uri, "--query", slow, "--target", pg.uri, "--table", "dst",
        "--schema", pg.schema, "--key", "id", "--chunk-size", "400", "--workers", "1",
        "--job-id", "cc-1",
    ]  # fmt: skip
    proc, master, out = _under_pty(args)
    ledger = pg.t("arrowmapper_ledger")
    try:
        for _ in range(600):  # until two chunks committed (polling the ledger, not a clock)
            if proc.poll() is not None:
                break
            try:
                if pg.scalar(f"SELECT count(*) FROM {ledger} WHERE rows >= 0") >= 2:
                    break
            except Exception:
                pg.execute("SELECT 1")  # the ledger is not there yet
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.2)
        os.close(master)
    text = b"".join(out).decode(errors="replace")
    assert rc == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    committed, rows = pg.query(f"SELECT count(*), coalesce(sum(rows), 0) FROM {ledger}")[0]
    assert f"interrupted: job cc-1: {committed} of " in text, text
    assert f"({rows:,} row" in text and "--job-id cc-1" in text and "--resume" in text, text
    assert 0 < committed < 5
    # what the ledger says is exactly what the table holds
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == rows
    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 2000  # the rest, each row once


def test_a_rerun_that_would_append_the_same_rows_is_refused(pg: PG) -> None:
    pg.execute("CREATE TABLE src AS SELECT g AS id, g::text AS s FROM generate_series(1, 50) g")
    args = [
        "run", "--source", pg.uri, "--query", pg.t("src"), "--target", pg.uri, "--table", "dst",
        "--schema", pg.schema, "--workers", "1",
    ]  # fmt: skip
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    # the summary: the job's id, the counts in words that agree with them
    assert "OK: job am-" in first.stdout and "50 rows into" in first.stdout
    assert "1 chunk," in first.stdout and "1 chunks" not in first.stdout
    # one small chunk runs in the calling process: said so, not "0 workers"
    assert "in this process (no workers)" in first.stdout and "0 workers" not in first.stdout
    job = pg.scalar(f"SELECT job_id FROM {pg.t('arrowmapper_jobs')}")
    again = cli(*args)
    assert again.returncode == 2, again.stdout + again.stderr
    assert f"job '{job}'" in again.stderr and "--allow-duplicate" in again.stderr
    assert "allow_duplicate" not in again.stderr and "Traceback" not in again.stderr
    # refused before anything: no rows, no second job
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 50
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('arrowmapper_jobs')}") == 1
    on_purpose = cli(*args, "--allow-duplicate")
    assert on_purpose.returncode == 0, on_purpose.stderr
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 100
    five = cli(
        *args,
        "--allow-duplicate",
        "--strategy",
        "key",
        "--key",
        "id",
        "--chunk-size",
        "10",
        "--workers",
        "2",
    )
    assert "6 chunks," in five.stdout and "2 workers" in five.stdout, five.stdout
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 150


def test_planning_options_or_spelling_do_not_make_a_rerun_new(pg: PG) -> None:
    """Strategy, key and chunk size only split the work, and ``SELECT * FROM t`` is ``t``: a
    rerun that differs only so would append the same rows again, so it is refused."""
    pg.execute("CREATE TABLE src AS SELECT g AS id, g::text AS s FROM generate_series(1, 50) g")
    base = ["--target", pg.uri, "--table", "dst", "--schema", pg.schema, "--workers", "1"]
    first = cli("run", "--source", pg.uri, "--query", pg.t("src"), *base)
    assert first.returncode == 0, first.stderr
    job = pg.scalar(f"SELECT job_id FROM {pg.t('arrowmapper_jobs')}")
    reruns = [
        ["--query", f"SELECT * FROM {pg.t('src')}"],
        ["--query", pg.t("src"), "--strategy", "key", "--key", "id", "--chunk-size", "20"],
    ]
    for extra in reruns:
        again = cli("run", "--source", pg.uri, *extra, *base)
        assert again.returncode == 2, (extra, again.stdout + again.stderr)
        assert f"job '{job}'" in again.stderr and "--allow-duplicate" in again.stderr
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 50
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('arrowmapper_jobs')}") == 1


def test_messages_name_the_command_lines_flags(pg: PG, tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    import sqlite3

    with sqlite3.connect(tmp_path / "src.db") as db:
        db.execute("CREATE TABLE t (id INTEGER, s TEXT)")
        db.execute("INSERT INTO t VALUES (1, 'a')")
    base = ["run", "--source", src, "--query", "t", "--target", pg.uri, "--table", "dst"]
    cases = [
        (["--resume"], "--resume needs the --job-id of the job to resume"),
        (["--strategy", "key"], "pass --key column_name"),
        (["--chunk-size", "0"], "--chunk-size must be an integer >= 1"),
    ]
    for extra, words in cases:
        out = cli(*base, "--schema", pg.schema, *extra)
        assert out.returncode == 2, (extra, out.stderr)
        assert words in out.stderr, (extra, out.stderr)
        assert "=True" not in out.stderr and "key=" not in out.stderr, out.stderr
    # a refused option leaves nothing behind: no table, no ledger
    assert not pg.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (pg.schema,)
    )


def test_a_refused_run_creates_no_sqlite_file(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "src.db") as db:
        db.execute("CREATE TABLE t (id INTEGER, s TEXT)")
        db.execute("INSERT INTO t VALUES (1, 'a')")
    src, dst = f"sqlite:///{tmp_path / 'src.db'}", tmp_path / "dst.db"
    cases = [
        ("--source", f"sqlite:///{tmp_path / 'missing.db'}"),  # a bad source URI
        ("--query", "SELEC * FROM t"),  # bad SQL
        ("--mode", "merge"),  # refused after the target was opened
    ]
    for flag, value in cases:
        opts = {"--source": src, "--query": "t", flag: value}
        args = [a for k, v in opts.items() for a in (k, v)]
        out = cli("run", *args, "--target", f"sqlite:///{dst}", "--table", "d")
        assert out.returncode in (1, 2), (flag, value, out.stderr)
        assert not dst.exists(), (flag, value, out.stderr)
        if flag == "--mode":  # the message names the flag to pass
            assert "needs --key (or --merge-key): it becomes the primary key" in out.stderr, (
                out.stderr
            )


def test_output_to_a_pipe_is_never_wrapped(pg: PG) -> None:
    long_name = "a_rather_long_column_name_that_goes_on_" + "x" * 20  # 59: PostgreSQL keeps it
    pg.execute(f"CREATE TABLE src AS SELECT g AS id, g AS {long_name} FROM generate_series(1, 9) g")
    out = cli("plan", "--source", pg.uri, "--query", pg.t("src"), "--key", "id")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # the column's row stays one line, wider than 80 columns, name and types together
    row = [line for line in lines if long_name in line]
    assert len(row) == 1 and "integer" in row[0] and len(row[0]) > 80, out.stdout
    assert "1 chunk, about 9 rows" in out.stdout
    # on a terminal the output fits the terminal's width: 120 columns hold the row whole
    import re
    import time

    proc, master, chunks = _under_pty(
        ["plan", "--source", pg.uri, "--query", pg.t("src"), "--key", "id"], columns=120
    )
    assert proc.wait(timeout=120) == 0
    time.sleep(0.2)
    os.close(master)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    row = [line for line in shown.splitlines() if long_name in line]
    assert len(row) == 1 and "integer" in row[0], shown


def test_demo_removes_its_temporary_files(tmp_path: Path) -> None:
    out = cli(
        "demo", "--rows", "2000", "--workers", "1", "--quiet",
        env={"TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "temporary files removed" in out.stdout
    assert list(tmp_path.iterdir()) == []


def test_verify_takes_the_job_file(pg: PG, tmp_path: Path) -> None:
    pg.execute("CREATE TABLE src AS SELECT g AS id, g::text AS s FROM generate_series(1, 50) g")
    job = tmp_path / "job.toml"
    job.write_text(
        f'source = "{pg.uri}"\nquery = "{pg.t("src")}"\ntarget = "{pg.uri}"\n'
        f'table = "dst"\nschema = "{pg.schema}"\njob_id = "file-1"\nworkers = 1\n'
    )
    assert cli("run", str(job), "--quiet").returncode == 0
    checked = cli("verify", "--job-file", str(job), "--counts-only")
    assert checked.returncode == 0, checked.stderr
    assert "file-1" in checked.stdout or "50" in checked.stdout, checked.stdout
    pg.execute(f"DELETE FROM {pg.t('dst')} WHERE id = 7")  # verify must now fail
    assert cli("verify", str(job), "--counts-only").returncode == 1
    # a recurring job's name, where the jobs table has that column, is shown
    pg.execute(f"ALTER TABLE {pg.t('arrowmapper_jobs')} ADD COLUMN name TEXT")
    pg.execute(f"UPDATE {pg.t('arrowmapper_jobs')} SET name = 'nightly-dst'")
    listed = cli("jobs", pg.uri, "--schema", pg.schema, "--table", "dst")
    assert "file-1" in listed.stdout and "finished" in listed.stdout, listed.stdout
    assert "nightly-dst" in listed.stdout and "name" in listed.stdout, listed.stdout


def test_a_job_killed_before_its_finish_step_says_resume_to_finish(pg: PG) -> None:
    """Every chunk committed, the coordinator killed before the finish step (finished_at never
    set): jobs and status say so and how to finish it, not 'unfinished 4/4'."""
    import shlex

    pg.execute(SRC)
    assert "rc=0" in _load(pg, "k9")
    pg.execute(f"UPDATE {pg.t('arrowmapper_jobs')} SET finished_at = NULL")  # what kill -9 left
    listed = json.loads(cli("jobs", pg.uri, "--schema", pg.schema, "--json").stdout)
    assert listed[0]["state"] == "committed" and listed[0]["chunks_missing"] == [], listed
    text = cli("jobs", pg.uri, "--schema", pg.schema).stdout
    assert "committed, not finished: resume to finish" in text and "unfinished" not in text
    status = cli("status", "k9", "--target", pg.uri, "--schema", pg.schema)
    assert "only finishes: arrowmapper run" in status.stdout, status.stdout
    assert "clean" not in status.stdout  # its rows are all there: nothing to forget
    command = status.stdout.split("only finishes: ", 1)[1].strip()
    # a source that names a user is "$ARROWMAPPER_SOURCE" in the command (its password, if
    # any, is not in the ledger): the shell expands it
    env = {"ARROWMAPPER_SOURCE": pg.uri, "ARROWMAPPER_TARGET": pg.uri}
    done = cli(*(env.get(w[1:], w) for w in shlex.split(command)[1:]), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        json.loads(cli("jobs", pg.uri, "--schema", pg.schema, "--json").stdout)[0]["state"]
        == "finished"
    )
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 2000  # no row loaded twice


def test_status_resume_command_of_a_cursor_run_resumes_it_and_moves_the_mark(pg: PG) -> None:
    """status prints, for a failed run of a recurring job, a command that runs as printed
    (no ``***`` for the password: the variable that holds the URI), with the name, cursor
    and the name's own query; run, it completes the run and moves the mark, so the next run
    of the name loads only what is new (it used to reload every row)."""
    pg.execute(SRC)
    uri = pg.uri.replace("postgres@", "postgres:S3cr3t@")  # trust auth: any password works
    query = FAILING.format(pg.t("src"))
    args = (
        "run", "--source", uri, "--query", query, "--target", uri, "--table", "dst",
        "--schema", pg.schema, "--name", "nightly", "--cursor", "id", "--key", "id",
        "--chunk-size", "500", "--workers", "1", "--max-retries", "0",
    )  # fmt: skip
    failed = cli(*args)
    assert failed.returncode == 1, failed.stderr
    job_id = pg.scalar("SELECT run_job FROM arrowmapper_marks WHERE name = 'nightly'")
    status = cli("status", job_id, "--target", uri, "--schema", pg.schema, "--json")
    assert status.returncode == 0, status.stderr
    command = json.loads(status.stdout)["resume"]
    assert "***" not in command and "S3cr3t" not in command and "<=" not in command, command
    assert "--name nightly --cursor id" in command and '"$ARROWMAPPER_TARGET"' in command
    pg.execute("DELETE FROM src WHERE id = 1250")  # the cause, fixed
    env = {"ARROWMAPPER_SOURCE": uri, "ARROWMAPPER_TARGET": uri}
    resumed = subprocess.run(
        command.replace("arrowmapper run", f"{sys.executable} -m arrowmapper run", 1),
        shell=True, capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert pg.scalar("SELECT mark FROM arrowmapper_marks WHERE name = 'nightly'") == "2000"
    again = cli(*args, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["rows_written"] == 0, again.stderr
    counts = pg.query(f"SELECT count(*), count(DISTINCT id) FROM {pg.t('dst')}")[0]
    assert counts == (1999, 1999)
