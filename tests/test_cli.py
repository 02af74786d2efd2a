"""The command line and the embedded demo, run as real subprocesses."""

from __future__ import annotations

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
