"""The same job on the local process pool and on a Dask LocalCluster.

    python bench/bench_executors.py [--rows 1000000] [--workers 2] [--repeat 3]
                                    [--uri postgresql://...] [--write docs/benchmarks.md]

Cases run interleaved (round-robin, ``--repeat`` rounds) on the table of bench_pg_copy.py
(ctid chunks, rows/16 per chunk); the figures are medians with min-max. "running cluster" is a
LocalCluster started once before the runs (what a user with a cluster pays); "started by the
job" includes starting and closing it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_pg_copy import SCHEMA, fresh_target, setup, sql, write_block  # noqa: E402

import arrowmapper as am  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--uri",
        default=os.environ.get("ARROWMAPPER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    ap.add_argument("--write", help="Markdown file to write the table to")
    args = ap.parse_args()
    from distributed import LocalCluster

    uri, rows, n = args.uri, args.rows, args.workers
    setup(uri, rows)
    cluster = LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
    )

    def job(**kw: Any) -> Any:
        return lambda: am.map_query(
            uri,
            f"{SCHEMA}.src",
            uri,
            "dst",
            schema=SCHEMA,
            strategy="ctid",
            workers=n,
            chunk_size=max(1, rows // 16),
            **kw,
        )

    cases = {
        f"local process pool, {n} workers": job(),
        f"Dask, running LocalCluster of {n} processes": job(
            executor="dask", cluster=cluster.scheduler_address
        ),
        f"Dask, LocalCluster of {n} started by the job": job(executor="dask"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for _ in range(args.repeat):
            for name, fn in cases.items():
                fresh_target(uri)
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
                got = sql(uri, f"SELECT COUNT(*) FROM {SCHEMA}.dst")[0][0]
                assert got == rows, f"{name}: {got} rows, expected {rows}"
    finally:
        cluster.close()
        sql(uri, f"DROP SCHEMA {SCHEMA} CASCADE")
    lines = [
        f"| executor | wall s, median of {args.repeat} (min-max) | rows/s |",
        "|---|---:|---:|",
    ]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"| {name} | {med:.2f} ({min(ts):.2f}-{max(ts):.2f}) | {rows / med:,.0f} |")
        print(lines[-1], flush=True)
    header = (
        f"Executors: {rows:,} rows PostgreSQL -> PostgreSQL (the table above), ctid chunks of "
        f"rows/16, {n} workers, runs interleaved; {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, arrowmapper {am.__version__}; run "
        f"{time.strftime('%Y-%m-%d')} with `python bench/bench_executors.py --rows {rows} "
        f"--workers {n} --repeat {args.repeat}`."
    )
    print(header)
    if args.write:
        write_block(Path(args.write), "<!-- bench_executors -->", header, "\n".join(lines))


if __name__ == "__main__":
    main()
