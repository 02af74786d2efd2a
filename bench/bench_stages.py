"""Where a client CPU-second goes: arrowmapper against the bare one-process pipeline
(connectorx -> (Polars) -> ADBC), stage by stage, with py-spy.

    python bench/bench_stages.py [--rows 1000000] [--repeat 3] [--rate 250]
                                 [--uri postgresql://postgres@127.0.0.1:5432/test]
                                 [--write docs/benchmarks.md]

Each case runs in a fresh Python process, ``--repeat`` times plainly (wall time and the
client CPU of its process tree: the medians; each process's main thread's CPU read from
``/proc``) and once more under ``py-spy record --subprocesses --nonblocking`` (the stages).
py-spy samples the threads that run Python; a driver's native work (ADBC's COPY encoder,
Polars, Arrow casts, psycopg) counts to the Python call that made it. connectorx decodes rows
in threads of its own that have no Python frames: their CPU is the tree's minus its main
threads' ("threads without Python"). Each sample goes to the first stage in this order whose files are on its stack:
imports, planning and preflight, ledger, then from the innermost frame outwards transform,
conform, encode and write (ADBC), relay (psycopg COPY), read (connectorx, the calling
thread), coordination. Needs py-spy (``pip install py-spy``); without it only the plain
figures are given.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("ARROWMAPPER_BENCH_SCHEMA", "am_stages")

from bench_pg_copy import write_block  # noqa: E402
from bench_suite import SCHEMA, cx_to_adbc, fresh, make_table, sql  # noqa: E402

MARKER = "<!-- bench_stages -->"

CASES = {
    "bare": "connectorx -> ADBC, one process (the bare pipeline)",
    "bare_t": "connectorx -> Polars -> ADBC, one process (the bare pipeline, a transform)",
    "am_arrow": "arrowmapper, Arrow path, ctid, 2 workers",
    "am_arrow_t": "arrowmapper, Arrow path, ctid, 2 workers, Polars transform",
    "am_copy": "arrowmapper, COPY fast path, ctid, 2 workers",
}

#: stages, each with the file patterns that put a sample in it
FIRST = [  # anywhere on the stack, checked before the innermost-frame rules
    ("imports", re.compile(r"importlib\._bootstrap")),
    ("planning and preflight", re.compile(r"arrowmapper/(run/(prepare|preflight)|plan/)")),
    ("ledger", re.compile(r"arrowmapper/targets/ledger\.py")),
]
INNERMOST = [  # from the innermost frame outwards: the first frame that matches
    ("transform (Polars)", re.compile(r"arrowmapper/transform\.py|polars/|libpolars|_polars")),
    (
        "conform (casts to the target's types)",
        re.compile(r"arrowmapper/targets/(values|typemap)|driver_batch"),
    ),
    ("encode and write (ADBC COPY)", re.compile(r"adbc_driver|arrowmapper/adbc\.py")),
    ("relay (psycopg COPY)", re.compile(r"psycopg|arrowmapper/sources/copyout\.py")),
    ("read (connectorx, calling thread)", re.compile(r"connectorx|arrowmapper/sources/")),
    (
        "coordination",
        re.compile(r"arrowmapper/run/(coordinator|executors|progress|worker)|multiprocessing"),
    ),
]
UNSEEN = "threads without Python (connectorx's readers)"
TRANSFORM = ["label"]  # the transformed column (upper-cased), as the suite's peers do


class MainThreads:
    """CPU of the main thread of this process and of each of its descendants, read from
    ``/proc/<pid>/task/<pid>/stat`` every 50 ms (the last reading of each is kept: a main
    thread lives as long as its process, so at most the last 50 ms are missed)."""

    def __init__(self) -> None:
        import threading

        self.tick = os.sysconf("SC_CLK_TCK")
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self, pid: int) -> float | None:
        try:
            with open(f"/proc/{pid}/task/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime, stime

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            self.sample(me)
            time.sleep(0.05)

    def sample(self, me: Any) -> None:
        import psutil

        try:
            pids = [me.pid] + [c.pid for c in me.children(recursive=True)]
        except psutil.Error:
            pids = [me.pid]
        for pid in pids:
            got = self._read(pid)
            if got is not None:
                self.seen[pid] = max(self.seen.get(pid, 0.0), got)

    def stop(self) -> tuple[float, float]:
        """(this process's main thread, its descendants' main threads) CPU-seconds."""
        import psutil

        self._stop.set()
        self._thread.join()
        self.sample(psutil.Process())
        mine = self.seen.get(os.getpid(), 0.0)
        return mine, sum(v for k, v in self.seen.items() if k != os.getpid())


def child(case: str, uri: str, rows: int) -> None:
    """Run one case in this process; print wall time and the tree's CPU as JSON."""
    import polars as pl

    import arrowmapper as am

    src = f"{SCHEMA}.src"
    fresh(uri)
    threads = MainThreads()
    t0 = time.perf_counter()
    if case.startswith("bare"):
        cx_to_adbc(uri, src, transform=case == "bare_t")()
    else:
        transform = (
            [pl.all().exclude("label"), pl.col("label").str.to_uppercase()]
            if case.endswith("_t")
            else None
        )
        path = "copy" if case == "am_copy" else "arrow"
        r = am.map_query(
            uri,
            src,
            uri,
            "dst",
            schema=SCHEMA,
            strategy="ctid",
            workers=2,
            chunk_size=max(1, rows // 8),
            path=path,
            transform=transform,
        )
        assert r.path == path, r.path_reason
    wall = time.perf_counter() - t0
    main_self, main_kids = threads.stop()
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    own, theirs = me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime
    n = sql(uri, f"SELECT count(*) FROM {SCHEMA}.dst")[0][0]
    assert n == rows, f"copied {n} rows, expected {rows}"
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": own + theirs,
                # the threads that run Python (what py-spy samples) and the others
                # (connectorx's readers, the sampler above)
                "main": main_self + main_kids,
                "others": max(0.0, own - main_self) + max(0.0, theirs - main_kids),
            }
        )
    )


def run_child(case: str, uri: str, rows: int, spy: list[str] | None = None) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", case, "--uri", uri, "--rows", str(rows)]
    done = subprocess.run(
        [*(spy or []), *argv], capture_output=True, text=True, check=False, timeout=1800
    )
    if done.returncode != 0:
        raise RuntimeError(f"{case} failed: {done.stderr[-2000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    return dict(json.loads(line))


def classify(frames: list[str]) -> str:
    for stage, pattern in FIRST:
        if any(pattern.search(f) for f in frames):
            return stage
    for frame in reversed(frames):  # innermost first
        for stage, pattern in INNERMOST:
            if pattern.search(frame):
                return stage
    return "other"


def stages(raw: Path) -> Counter[str]:
    """Samples per stage from py-spy's raw output (``stack count`` per line)."""
    out: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out[classify(stack.split(";"))] += int(count)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument(
        "--uri",
        default=os.environ.get("ARROWMAPPER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    ap.add_argument("--write", help="Markdown file to write the tables to")
    ap.add_argument("--no-profile", action="store_true", help="the plain figures only")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.uri, args.rows)
        return
    uri, rows = args.uri, args.rows
    sql(uri, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    sql(uri, f"CREATE SCHEMA {SCHEMA}")
    try:
        make_table(uri, "src", rows)
        plain: dict[str, list[dict[str, Any]]] = {c: [] for c in CASES}
        for _ in range(args.repeat):  # interleaved
            for case in CASES:
                plain[case].append(run_child(case, uri, rows))
        profiled: dict[str, Counter[str]] = {}
        beside = Path(sys.executable).parent / "py-spy"  # installed in this virtualenv
        pyspy = str(beside) if beside.exists() else shutil.which("py-spy")
        if args.no_profile:
            pyspy = None
        if pyspy:
            with tempfile.TemporaryDirectory() as tmp:
                for case in CASES:
                    raw = Path(tmp) / f"{case}.txt"
                    spy = [pyspy, "record", "--subprocesses", "--nonblocking", "--rate"]
                    spy += [str(args.rate), "-f", "raw", "-o", str(raw), "--"]
                    run_child(case, uri, rows, spy)
                    profiled[case] = stages(raw)
    finally:
        sql(uri, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    text = report(rows, args.repeat, plain, profiled, args.rate)
    print(text)
    if args.write:
        header = (
            f"{rows:,} rows of the suite's table (bigint key, int, numeric(12,2), float8, text, "
            f"timestamptz, date, bool, jsonb), PostgreSQL -> PostgreSQL on this machine; run "
            f"{time.strftime('%Y-%m-%d')} with `python bench/bench_stages.py --rows {rows} "
            f"--repeat {args.repeat} --write {args.write}`."
        )
        write_block(Path(args.write), MARKER, header, text)


def report(
    rows: int,
    repeat: int,
    plain: dict[str, list[dict[str, Any]]],
    profiled: dict[str, Counter[str]],
    rate: int,
) -> str:
    per_m = 1_000_000 / rows
    base = {
        False: statistics.median(r["cpu"] for r in plain["bare"]),
        True: statistics.median(r["cpu"] for r in plain["bare_t"]),
    }
    base_wall = {
        False: statistics.median(r["wall"] for r in plain["bare"]),
        True: statistics.median(r["wall"] for r in plain["bare_t"]),
    }
    lines = [
        f"Wall and client CPU: medians of {repeat} plain runs (a fresh process each, its "
        "imports included); *x bare*: against the bare pipeline with the same transform.",
        "",
        "| case | wall s | x bare | client CPU s | CPU-s per 1M rows | x bare | rows per client "
        "CPU-s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case, label in CASES.items():
        wall = statistics.median(r["wall"] for r in plain[case])
        cpu = statistics.median(r["cpu"] for r in plain[case])
        t = case.endswith("_t")
        lines.append(
            f"| {label} | {wall:.2f} | {wall / base_wall[t]:.2f} | {cpu:.2f} | "
            f"{cpu * per_m:.2f} | {cpu / base[t]:.2f} | {rows / cpu:,.0f} |"
        )
    if not profiled:
        lines += ["", "Stages: skipped (--no-profile, or py-spy is not installed: `pip install py-spy`)."]
        return "\n".join(lines)
    names = [s for s, _ in FIRST] + [s for s, _ in INNERMOST] + ["other"]
    lines += [
        "",
        "Client CPU-seconds per stage (medians of the plain runs). The threads that run Python "
        "(each process's main thread) are measured from `/proc` and shared out among the "
        f"stages in the proportions of one run under py-spy ({rate} samples/s, every process "
        "of the tree, without pausing them; a driver's native work counts to the Python call "
        "that made it: ADBC's COPY encoding to the ingest); the other threads' CPU (connectorx's readers, which "
        "decode the rows) is measured the same way and shown on its own.",
        "",
        "| stage | " + " | ".join(CASES[c].split(" (")[0] for c in CASES) + " |",
        "|---|" + "---:|" * len(CASES),
    ]
    main = {c: statistics.median(r["main"] for r in plain[c]) for c in CASES}
    others = {c: statistics.median(r["others"] for r in plain[c]) for c in CASES}
    for name in names:
        row = []
        for case in CASES:
            got = profiled[case]
            share = got.get(name, 0) / max(1, sum(got.values()))
            row.append(f"{share * main[case]:.2f}")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines.append(f"| {UNSEEN} | " + " | ".join(f"{others[c]:.2f}" for c in CASES) + " |")
    lines.append(
        "| **client CPU** | "
        + " | ".join(f"{statistics.median(r['cpu'] for r in plain[c]):.2f}" for c in CASES)
        + " |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
