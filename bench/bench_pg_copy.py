"""1M-row PostgreSQL -> PostgreSQL copy: arrowmapper's COPY fast path and its Arrow path, with
1, 2 and 4 workers, against a binary COPY pipe through psql.

    python bench/bench_pg_copy.py [--rows 1000000] [--uri postgresql://postgres@127.0.0.1:5432/test]
                                  [--repeat 3] [--write docs/benchmarks.md]

Each case copies the same table into a fresh target table; the figure is the best wall time of
``--repeat`` runs, plus the summed CPU time of this process and its children (client CPU) on the
best run. The table is dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import arrowmapper as am  # noqa: E402

#: the schema the benchmark works in (dropped at the end); ARROWMAPPER_BENCH_SCHEMA
#: changes it, so that two runs on one server (the tests', a real one) never share it
SCHEMA = os.environ.get("ARROWMAPPER_BENCH_SCHEMA") or "am_bench"


def sql(uri: str, text: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(uri, autocommit=True) as conn:
        cur = conn.execute(text)
        return cur.fetchall() if cur.description else []


def setup(uri: str, rows: int) -> None:
    sql(uri, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    sql(uri, f"CREATE SCHEMA {SCHEMA}")
    sql(
        uri,
        f"""CREATE TABLE {SCHEMA}.src AS
        SELECT g::bigint AS id, (g % 1000)::int AS grp, md5(g::text) AS label,
               (g * 1.25)::float8 AS amount,
               TIMESTAMPTZ '2026-01-01' + g * INTERVAL '1 second' AS created,
               (g % 3 = 0) AS flag
        FROM generate_series(1, {rows}) g""",
    )
    sql(uri, f"ALTER TABLE {SCHEMA}.src ADD PRIMARY KEY (id)")
    sql(uri, f"VACUUM ANALYZE {SCHEMA}.src")


def fresh_target(uri: str) -> None:
    sql(uri, f"DROP TABLE IF EXISTS {SCHEMA}.dst")
    sql(uri, f"DROP TABLE IF EXISTS {SCHEMA}.arrowmapper_ledger")
    sql(uri, f"DROP TABLE IF EXISTS {SCHEMA}.arrowmapper_jobs")
    sql(uri, f"CREATE TABLE {SCHEMA}.dst (LIKE {SCHEMA}.src)")


def cpu_now() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def psql_pipe(uri: str) -> None:
    out = subprocess.Popen(
        ["psql", uri, "-qc", f"COPY {SCHEMA}.src TO STDOUT (FORMAT binary)"], stdout=subprocess.PIPE
    )
    inp = subprocess.run(
        ["psql", uri, "-qc", f"COPY {SCHEMA}.dst FROM STDIN (FORMAT binary)"],
        stdin=out.stdout,
        check=True,
    )
    out.wait()
    assert inp.returncode == 0 and out.returncode == 0


def check_path(path: str, result: Any) -> Any:
    """The job took the path its case is named for (a silent fallback would mislabel it)."""
    assert result.path == path, f"asked for path={path}, took {result.path}: {result.path_reason}"
    return result


def run_case(uri: str, rows: int, repeat: int, fn: Any, server: Any) -> tuple[float, float, Any]:
    """The best of ``repeat`` runs: (wall, client CPU, server CPU or None)."""
    best: tuple[float, float, Any] = (float("inf"), 0.0, None)
    for _ in range(repeat):
        fresh_target(uri)
        c0, s0, t0 = cpu_now(), server.read(), time.perf_counter()
        fn()
        wall, cpu, s1 = time.perf_counter() - t0, cpu_now() - c0, server.read()
        n = sql(uri, f"SELECT COUNT(*) FROM {SCHEMA}.dst")[0][0]
        assert n == rows, f"copied {n} rows, expected {rows}"
        if wall < best[0]:
            best = (wall, cpu, None if s0 is None or s1 is None else s1 - s0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument(
        "--uri",
        default=os.environ.get("ARROWMAPPER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", help="Markdown file to write the table to")
    args = ap.parse_args()
    uri, rows = args.uri, args.rows
    setup(uri, rows)
    src = f"{SCHEMA}.src"

    def mapper(strategy: str, workers: int, key: str | None = None, path: str = "arrow") -> Any:
        return lambda: check_path(
            path,
            am.map_query(
                uri,
                src,
                uri,
                "dst",
                schema=SCHEMA,
                strategy=strategy,
                key=key,
                workers=workers,
                chunk_size=max(1, rows // 16),
                path=path,
            ),
        )

    cases: list[tuple[str, Any]] = []
    if shutil.which("psql"):
        cases.append(("psql binary COPY pipe (baseline)", lambda: psql_pipe(uri)))
    for path in ("copy", "arrow"):  # the fast path beside the Arrow pipeline
        for w in (1, 2, 4):
            label = f"arrowmapper {path} path, ctid, {w} worker{'s' if w > 1 else ''}"
            cases.append((label, mapper("ctid", w, path=path)))
    # (strategies are compared by bench_suite.py's strategies suite)
    from bench_suite import ServerCPU  # (it imports this module's write_block)

    server = ServerCPU(uri)
    lines = [
        f"| case | wall s (best of {args.repeat}) | x pipe | rows/s | client CPU s "
        "| server CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = None
    for name, fn in cases:
        wall, cpu, srv = run_case(uri, rows, args.repeat, fn, server)
        base = base or wall  # the first case: the pipe, when psql is there
        shown = "-" if srv is None else f"{srv:.2f}"
        line = (
            f"| {name} | {wall:.2f} | {wall / base:.2f} | {rows / wall:,.0f} | {cpu:.2f} "
            f"| {shown} |"
        )
        print(line, flush=True)
        lines.append(line)
    sql(uri, f"DROP SCHEMA {SCHEMA} CASCADE")
    server = sql(uri, "SHOW server_version")[0][0]
    header = (
        f"{rows:,} rows (bigint, int, text md5, float8, timestamptz, bool), PostgreSQL {server} "
        f"on the same machine; {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"arrowmapper {am.__version__}; chunk size rows/16; run {time.strftime('%Y-%m-%d')}."
    )
    table = "\n".join(lines)
    print(header)
    if args.write:
        write_block(Path(args.write), "<!-- bench_pg_copy -->", header, table)


def write_block(path: Path, marker: str, header: str, table: str) -> None:
    """Replace (or append) the block between two ``marker`` lines of a Markdown file."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{marker}\n{header}\n\n{table}\n{marker}"
    if marker in text:
        pre, _, rest = text.partition(marker)
        _, _, post = rest.partition(marker)
        text = pre + block + post
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
