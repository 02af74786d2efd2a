"""The benchmark script runs end to end (small), so the published figures stay reproducible."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PG

ROOT = Path(__file__).resolve().parents[1]


def run_bench(pg: PG, out_md: Path, *argv: str) -> None:
    """``python <argv> --uri <the test's server> --write out_md`` from the repository root, in
    a schema of the test's own (a real benchmark run on the same server uses the default
    one); it must succeed."""
    done = subprocess.run(
        [sys.executable, *argv, "--uri", pg.uri, "--write", str(out_md)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "ARROWMAPPER_BENCH_SCHEMA": f"{pg.schema}_bench"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_bench_pg_copy_runs_small(pg: PG, tmp_path: Path) -> None:
    out_md = tmp_path / "bench.md"
    run_bench(
        pg,
        out_md,
        str(ROOT / "bench" / "bench_pg_copy.py"),
        "--rows",
        "20000",
        "--repeat",
        "1",
    )
    text = out_md.read_text()
    assert "arrowmapper copy path, ctid, 2 workers" in text and "rows/s" in text
    assert "arrowmapper arrow path, ctid, 2 workers" in text  # the two paths side by side
    assert text.count("<!-- bench_pg_copy -->") == 2


def test_bench_executors_runs_small(pg: PG, tmp_path: Path) -> None:
    out_md = tmp_path / "bench.md"
    run_bench(
        pg,
        out_md,
        str(ROOT / "bench" / "bench_executors.py"),
        "--rows",
        "20000",
        "--repeat",
        "1",
    )
    text = out_md.read_text()
    assert "local process pool" in text and "Dask, running LocalCluster" in text
    assert text.count("<!-- bench_executors -->") == 2


def test_bench_suite_quick_runs_on_tiny_data(pg: PG, tmp_path: Path) -> None:
    """`python -m bench --quick` end to end on tiny data: every suite writes its table, the
    plots are drawn, and the run records versions and server settings. Nothing asserts on
    time."""
    out_md = tmp_path / "docs" / "bench.md"
    run_bench(
        pg,
        out_md,
        "-m",
        "bench",
        "--quick",
        "--rows",
        "2000",
    )
    text = out_md.read_text()
    for section in ("### strategies", "### peers", "### scaling", "### memory", "### small"):
        assert section in text
    assert "binary COPY pipe" in text and "skewed (k)" in text and "cpu-heavy" in text
    # the two paths side by side, each checked to have taken its path; client and server CPU
    assert "COPY fast path (path='copy')" in text and "Arrow path (path='arrow')" in text
    assert "| server CPU s | rows per client CPU-s |" in text
    assert "DuckDB postgres extension" in text or "DuckDB: skipped" in text
    assert "it runs in this process" in text  # the small suite's one-chunk job
    assert "versions: arrowmapper" in text and "synchronous_commit=" in text
    assert text.count("<!-- bench_suite -->") == 2
    for png in ("bench_strategies_skewed.png", "bench_scaling.png", "bench_memory.png"):
        assert (out_md.parent / png).stat().st_size > 1000


def test_bench_files_suite_runs_on_tiny_data(pg: PG, tmp_path: Path) -> None:
    """`python -m bench --suites files` end to end on tiny data: every contestant has a row
    (figures, or skipped with the reason), no contestant loads different rows or fails, the
    memory check is there, and its block is its own (the suite's block is not written)."""
    out_md = tmp_path / "docs" / "bench.md"
    run_bench(
        pg,
        out_md,
        "-m",
        "bench",
        "--suites",
        "files",
        "--quick",
        "--rows",
        "1000",
        "--files",
        "3",
        "--workers",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    text = out_md.read_text()
    assert text.count("<!-- bench_files -->") == 2 and "<!-- bench_suite -->" not in text
    for contestant in (
        "psql \\copy FROM the CSV (baseline)",
        "arrowmapper Parquet, 1 file",
        "arrowmapper Parquet, glob of 3 files",
        "arrowmapper CSV",
        "arrowmapper PostgreSQL -> PostgreSQL",
        "DuckDB read_parquet, 1 file",
        "DuckDB read_csv",
        "Polars read_parquet, 1 file",
        "Polars read_csv",
    ):
        assert f"| {contestant}" in text
    assert "| NO: " not in text and "failed:" not in text
    assert "**Memory.**" in text and "versions: arrowmapper" in text


def test_bench_stages_runs_small(pg: PG, tmp_path: Path) -> None:
    """The stage comparison's plain figures (the profile needs py-spy and takes longer)."""
    out_md = tmp_path / "bench.md"
    run_bench(
        pg,
        out_md,
        str(ROOT / "bench" / "bench_stages.py"),
        "--rows",
        "3000",
        "--repeat",
        "1",
        "--no-profile",
    )
    text = out_md.read_text()
    assert text.count("<!-- bench_stages -->") == 2
    assert "the bare pipeline" in text and "arrowmapper, COPY fast path" in text
    assert "rows per client CPU-s" in text and "Stages: skipped" in text
