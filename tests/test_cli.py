"""The command line and the embedded demo, run as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PG

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arrowmapper", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_demo_builds_maps_and_verifies(tmp_path: Path) -> None:
    out = run_cli("demo", "--rows", "50000", "--workers", "2", "--dir", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verified: 50,000 rows" in out.stdout and "rows/s" in out.stdout
    assert (tmp_path / "target.db").exists()


def test_plan_and_run_from_the_command_line(pg: PG) -> None:
    pg.execute("CREATE TABLE src AS SELECT g AS id, g::text AS s FROM generate_series(1, 5000) g")
    plan = run_cli(
        "plan",
        "--source",
        pg.uri,
        "--query",
        pg.t("src"),
        "--strategy",
        "key",
        "--key",
        "id",
        "--chunk-size",
        "1000",
    )
    assert plan.returncode == 0, plan.stderr
    assert "strategy: key" in plan.stdout and '"id" >= ' in plan.stdout
    run = run_cli(
        "run",
        "--query",
        pg.t("src"),
        "--table",
        "dst",
        "--schema",
        pg.schema,
        "--key",
        "id",
        "--chunk-size",
        "1000",
        "--json",
        env={"ARROWMAPPER_SOURCE": pg.uri, "ARROWMAPPER_TARGET": pg.uri},
    )
    assert run.returncode == 0, run.stderr
    assert '"rows_written": 5000' in run.stdout
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 5000


def test_cli_errors_are_one_line_with_exit_codes(pg: PG) -> None:
    bad = run_cli("plan", "--source", pg.uri, "--query", "x", "--strategy", "nope")
    assert bad.returncode == 2 and "strategy must be one of" in bad.stderr
    assert "Traceback" not in bad.stderr
    down = run_cli("plan", "--source", "postgresql://u:hunter2@127.0.0.1:1/db", "--query", "t")
    assert down.returncode == 3 and "cannot connect" in down.stderr
    assert "hunter2" not in down.stderr and "Traceback" not in down.stderr


def test_script_without_main_guard_fails_fast_with_a_clear_error(pg: PG, tmp_path: Path) -> None:
    pg.execute("CREATE TABLE src AS SELECT g AS id FROM generate_series(1, 1000) g")
    script = tmp_path / "noguard.py"
    script.write_text(
        "import arrowmapper as am\n"
        f"am.map_query({pg.uri!r}, {pg.t('src')!r}, {pg.uri!r}, 'dst', schema={pg.schema!r},"
        " workers=2, strategy='key', key='id', chunk_size=100)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode != 0
    assert "before doing any work" in out.stderr and "__main__" in out.stderr


def test_job_file_with_env_values_and_flag_overrides(pg: PG, tmp_path: Path) -> None:
    pg.execute("CREATE TABLE src AS SELECT g AS id, g::text AS s FROM generate_series(1, 8000) g")
    job = tmp_path / "job.toml"
    job.write_text(
        "[job]\n"
        'source = "env:AM_TEST_SRC"\n'
        'target = "env:AM_TEST_DST"\n'
        f'query = "{pg.t("src")}"\n'
        'table = "from_file"\n'
        f'schema = "{pg.schema}"\n'
        'strategy = "key"\nkey = "id"\nchunk_size = 4000\nworkers = 2\n'
        'transform_sql = "SELECT id, s, id * 10 AS id10 FROM self"\n'
    )
    env = {"AM_TEST_SRC": pg.uri, "AM_TEST_DST": pg.uri}
    out = run_cli(
        "run",
        str(job),
        "--chunk-size",
        "1000",
        "--json",
        "--verify",
        "--snapshot",
        "--stall-timeout",
        "120",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # stdout holds the JSON and nothing else
    assert result["rows_written"] == 8000 and result["chunks"] >= 8 and result["success"]
    assert result["verified"] and not result["verification_failures"]
    assert pg.scalar("SELECT SUM(id10) FROM from_file") == 10 * 8000 * 8001 // 2

    bad = tmp_path / "bad.toml"
    bad.write_text('sorce = "x"\nquery = "t"\n')
    out = run_cli("run", str(bad))
    assert out.returncode == 2 and "unknown keys sorce" in out.stderr
    missing = tmp_path / "missing.toml"
    missing.write_text('source = "env:AM_NOT_SET_ANYWHERE"\n')
    out = run_cli("run", str(missing))
    assert out.returncode == 2 and "AM_NOT_SET_ANYWHERE is not set" in out.stderr


def test_verify_counts_per_chunk(pg: PG) -> None:
    pg.execute("CREATE TABLE src AS SELECT g AS id FROM generate_series(1, 6000) g")
    env = {"ARROWMAPPER_SOURCE": pg.uri, "ARROWMAPPER_TARGET": pg.uri}
    out = run_cli(
        "run",
        "--query",
        pg.t("src"),
        "--table",
        "dst",
        "--schema",
        pg.schema,
        "--key",
        "id",
        "--strategy",
        "key",
        "--chunk-size",
        "2000",
        "--job-id",
        "v1",
        "--quiet",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    ok = run_cli("verify", "--job-id", "v1", "--schema", pg.schema, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "match the source" in ok.stdout and "6,000 rows" in ok.stdout
    pg.execute("INSERT INTO src VALUES (2500), (2501)")
    changed = run_cli("verify", "--job-id", "v1", "--schema", pg.schema, "--json", env=env)
    assert changed.returncode == 1
    report = json.loads(changed.stdout)
    bad = [c for c in report["chunks"] if c["source_rows"] != c["rows_read"]]
    assert len(bad) == 1 and bad[0]["source_rows"] == bad[0]["rows_read"] + 2
    unknown = run_cli("verify", "--job-id", "nope", "--schema", pg.schema, env=env)
    assert unknown.returncode == 2 and "no job 'nope'" in unknown.stderr


def test_plan_shows_chunks_and_column_mapping(pg: PG) -> None:
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, g::text AS s, now() AS ts FROM generate_series(1, 3000) g"
    )
    pg.execute("CREATE TABLE existing (id bigint, s text, ts timestamptz)")
    new = run_cli(
        "plan",
        "--source",
        pg.uri,
        "--query",
        pg.t("src"),
        "--key",
        "id",
        "--strategy",
        "quantile",
        "--chunk-size",
        "1000",
        "--target",
        pg.uri,
        "--table",
        "fresh",
        "--schema",
        pg.schema,
    )
    assert new.returncode == 0, new.stderr
    assert "strategy: quantile" in new.stdout and "estimated rows" in new.stdout
    assert "timestamp with time zone" in new.stdout and "created" in new.stdout
    old = run_cli(
        "plan",
        "--source",
        pg.uri,
        "--query",
        f"SELECT id::int4 AS id, s FROM {pg.t('src')}",
        "--target",
        pg.uri,
        "--table",
        "existing",
        "--schema",
        pg.schema,
    )
    assert old.returncode == 0, old.stderr
    assert "as is" in old.stdout and "timestamp with time zone" not in old.stdout
    assert "no key given" in old.stdout  # auto explains why it chose one chunk


def test_debug_shows_the_traceback_and_bench_lists_suites(pg: PG) -> None:
    out = run_cli("--debug", "plan", "--source", pg.uri, "--query", "SELECT * FROM nowhere")
    assert out.returncode == 1 and "Traceback" in out.stderr
    suites = run_cli("bench")
    assert suites.returncode == 0 and "pg_copy" in suites.stdout
    unknown = run_cli("bench", "nope")
    assert unknown.returncode == 2 and "unknown bench suite 'nope'" in unknown.stderr


def test_progress_display_renders_on_a_terminal_and_plain_elsewhere() -> None:
    import io

    from rich.console import Console

    from arrowmapper.display import ProgressDisplay
    from arrowmapper.run.progress import ProgressSnapshot, RunningChunk

    snap = ProgressSnapshot(
        10,
        4,
        1,
        2,
        50_000,
        48_000,
        52.5,
        3.0,
        16_000.0,
        2.7,
        (
            RunningChunk(5, os.getpid(), 1, 3000, 2500, 1.5),
            RunningChunk(7, os.getpid(), 2, 900, 800, 0.4),
        ),
    )
    buf = io.StringIO()
    tty = Console(file=buf, force_terminal=True, width=140, color_system=None)
    with ProgressDisplay(console=tty) as show:
        show(snap)
    text = buf.getvalue()
    for part in (
        "52.5%",
        "4/10 chunks, 1 failed",
        "48,000 rows",
        "16,000 rows/s",
        "ETA 00:02",
        f"worker {os.getpid()}",
        "chunk 5",
        "chunk 7 (attempt 2)",
        "RSS",
    ):
        assert part in text, part
    plain = io.StringIO()
    with ProgressDisplay(console=Console(file=plain, force_terminal=False), interval=60) as show:
        show(snap)
        show(snap)  # within the interval: no second line
    assert plain.getvalue().count("progress  52.5%") == 1
