"""Files from the command line -- ``plan`` and ``run`` with a path, glob or ``file://`` URI and
no ``--query`` -- and the bytes a file job reads, as the progress board counts them."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import arrowmapper as am
from arrowmapper.run.progress import ProgressSnapshot, RunningChunk, human_bytes
from tests.conftest import PG
from tests.test_cli import run_cli


def _parquet_files(folder: Path, files: int = 3, rows: int = 1_000) -> list[Path]:
    """``files`` Parquet files of ``rows`` rows each, in row groups of 300 rows."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for f in range(files):
        ids = range(f * rows, (f + 1) * rows)
        data = pa.table({"id": pa.array(ids, pa.int64()), "name": [f"n{i}" for i in ids]})
        path = folder / f"part-{f}.parquet"
        pq.write_table(data, path, row_group_size=300)
        out.append(path)
    return out


def _csv(path: Path, rows: int = 2_000) -> Path:
    """A ';'-separated CSV with 'NA' for a missing price (every 10th row)."""
    lines = ["id;price;zip"]
    lines += [f"{i};{'NA' if i % 10 == 0 else f'{i / 4:.2f}'};0{i % 1000:04d}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_plan_and_run_a_parquet_glob_without_query(pg: PG, tmp_path: Path) -> None:
    paths = _parquet_files(tmp_path / "data")
    glob = str(tmp_path / "data" / "*.parquet")
    plan = run_cli("plan", "--source", glob, "--chunk-size", "600")
    assert plan.returncode == 0, plan.stderr
    assert f"3 files in {tmp_path / 'data'}" in plan.stdout
    for path in paths:  # each file by its name in the folder, its size and its parts
        size = path.stat().st_size
        line = next(x for x in plan.stdout.splitlines() if x.startswith(path.name))
        assert "parquet" in line and f"{size:,}" in line and human_bytes(size) in line
        assert "4 row groups" in line and "1,000" in line
    as_json = json.loads(run_cli("plan", "--source", glob, "--json").stdout)
    assert as_json["folder"] == str(tmp_path / "data")
    assert [(f["path"], f["size"], f["rows"]) for f in as_json["files"]] == [
        (p.name, p.stat().st_size, 1_000) for p in paths
    ]
    assert {c["name"] for c in as_json["columns"]} == {"id", "name"}

    run = run_cli(
        "run", "--source", glob, "--target", pg.uri, "--table", "dst", "--schema", pg.schema,
        "--workers", "2", "--chunk-size", "600",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "3,000" in run.stdout
    assert pg.query(f"SELECT count(*), count(DISTINCT id), max(id) FROM {pg.t('dst')}") == [
        (3_000, 3_000, 2_999)
    ]


def test_plan_and_run_a_csv_uri_with_options_and_a_job_file(pg: PG, tmp_path: Path) -> None:
    path = _csv(tmp_path / "prices.txt")
    uri = f"file://{path}?format=csv&delimiter=;&null=NA&column=price=decimal128(12,2)"
    plan = run_cli("plan", "--source", uri, "--target", pg.uri, "--table", "prices")
    assert plan.returncode == 0, plan.stderr
    line = next(x for x in plan.stdout.splitlines() if x.startswith("prices.txt"))
    assert "csv" in line and f"{path.stat().st_size:,}" in line and "whole" in line
    assert "decimal128(12, 2)" in plan.stdout  # the column= option reached the plan

    job = tmp_path / "job.toml"  # a job file without a query, like the flags
    job.write_text(
        f"[job]\nsource = {json.dumps(uri)}\ntarget = {json.dumps(pg.uri)}\n"
        f'table = "prices"\nschema = "{pg.schema}"\nworkers = 2\n'
    )
    run = run_cli("run", str(job), "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["rows_written"] == 2_000
    assert pg.query(
        f"SELECT count(*), count(price), sum(price), min(zip) FROM {pg.t('prices')}"
    ) == [(2_000, 1_800, pytest.approx(sum(i / 4 for i in range(2_000) if i % 10)), "00000")]


def test_a_database_source_still_needs_a_query(pg: PG, tmp_path: Path) -> None:
    plan = run_cli("plan", "--source", pg.uri)
    assert plan.returncode == 2
    assert "the following arguments are required: --query" in plan.stderr
    run = run_cli("run", "--source", pg.uri, "--target", pg.uri, "--table", "t")
    assert run.returncode == 2
    assert "no query: pass --query SQL (or put it in the job file)" in run.stderr
    from_env = run_cli("plan", env={"ARROWMAPPER_SOURCE": str(tmp_path / "*.parquet")})
    assert "required: --query" not in from_env.stderr  # a file source from the environment
    assert "no files match" in from_env.stderr and from_env.returncode == 2


def test_the_final_snapshot_counts_bytes_for_files_and_none_for_a_database(
    pg: PG, tmp_path: Path
) -> None:
    paths = _parquet_files(tmp_path / "data")
    csv = _csv(tmp_path / "p.csv")
    seen: list[ProgressSnapshot] = []
    r = am.map_query(
        str(tmp_path / "data" / "*.parquet"), None, pg.uri, "pq", schema=pg.schema,
        workers=2, chunk_size=600, progress=seen.append,
    )  # fmt: skip
    assert r.success and r.rows_written == 3_000
    total = sum(p.stat().st_size for p in paths)
    # every row group's compressed bytes: most of the files, never more (footers are not read)
    assert 0.5 * total < seen[-1].bytes_read <= total
    seen.clear()
    r = am.map_query(f"file://{csv}?delimiter=;", None, pg.uri, "csv", schema=pg.schema,
                     progress=seen.append)  # fmt: skip
    assert r.success and seen[-1].bytes_read == csv.stat().st_size  # a whole file: its size
    seen.clear()
    r = am.map_query(pg.uri, pg.t("pq"), pg.uri, "copy", schema=pg.schema, progress=seen.append,
                     path="arrow")
    assert r.success and r.rows_written == 3_000
    assert seen[-1].done and seen[-1].bytes_read == 0  # a database read through Arrow
    seen.clear()  # the COPY fast path reads the source's binary COPY stream: its bytes
    r = am.map_query(pg.uri, pg.t("pq"), pg.uri, "copy2", schema=pg.schema, progress=seen.append)
    assert r.success and r.path == "copy" and seen[-1].bytes_read > 3_000


def test_snapshots_keep_their_order_and_the_display_shows_bytes() -> None:
    from rich.console import Console

    from arrowmapper.display import ProgressDisplay, plain_line

    old = ProgressSnapshot(4, 1, 0, 1, 10, 10, 25.0, 1.0, 10.0, 3.0)  # the old positional order
    assert old.bytes_read == 0 and old.running == () and "bytes" not in plain_line(old)
    assert RunningChunk(1, 2, 1, 3, 3, 0.5).bytes_read == 0
    snap = ProgressSnapshot(
        4, 1, 0, 1, 10, 10, 25.0, 1.0, 10.0, 3.0,
        (RunningChunk(2, os.getpid(), 1, 5, 5, 0.5, 3 * 2**20),), 5 * 2**30,
    )  # fmt: skip
    buf = io.StringIO()
    with ProgressDisplay(console=Console(file=buf, force_terminal=True, width=160)) as show:
        show(snap)
    assert "5.0 GiB read" in buf.getvalue() and "3.0 MiB read" in buf.getvalue()
    buf = io.StringIO()
    with ProgressDisplay(console=Console(file=buf, force_terminal=True, width=160)) as show:
        show(old)
    assert " read" not in buf.getvalue()  # a database job: no bytes column
    assert f"bytes {5 * 2**30}" in plain_line(snap)
    assert [human_bytes(n) for n in (0, 1023, 1536, 2**40 * 3)] == [
        "0 B", "1023 B", "1.5 KiB", "3.0 TiB"
    ]  # fmt: skip


def test_part_bytes_for_each_kind_of_part(tmp_path: Path) -> None:
    """A byte range counts its length, a whole file its size, row groups their compressed
    bytes (Parquet) or their rows' share of the file (Arrow IPC)."""
    import pyarrow.ipc as ipc

    from arrowmapper.sources.files.read import part_bytes

    (path,) = _parquet_files(tmp_path, files=1)
    size = path.stat().st_size
    base = {"path": str(path), "size": size, "format": "parquet"}
    assert part_bytes({**base, "format": "csv", "range": [100, 4_196]}) == 4_096
    assert part_bytes(base) == size
    groups = [part_bytes({**base, "rg": [i]}) for i in range(4)]
    assert all(g > 0 for g in groups) and sum(groups) == part_bytes({**base, "rg": [0, 1, 2, 3]})
    assert sum(groups) <= size
    arrow = tmp_path / "t.arrow"
    with ipc.new_file(arrow, pa.schema([("x", pa.int64())])) as out:
        for n in (100, 300):
            out.write_batch(pa.record_batch([pa.array(range(n), pa.int64())], names=["x"]))
    a = {"path": str(arrow), "size": arrow.stat().st_size, "format": "arrow"}
    assert part_bytes({**a, "rg": [1]}) == int(a["size"] * 300 / 400)
