"""Files -> PostgreSQL: arrowmapper's file sources against psql COPY, DuckDB and Polars.

    python -m bench --suites files [--quick] [--rows N] [--repeat R] [--files K]
                    [--cache-dir DIR] [--write docs/benchmarks.md]
    python bench/bench_files.py [same options]      # the same, --suites files implied
    arrowmapper bench files --quick

The data set (``--rows``, default 1,000,000; generated once per size into ``--cache-dir``,
every value a function of the row number) has a bigint id, an int, a float8, a text of 5-170
characters with commas, doubled quotes and non-ASCII letters, a timestamp and a boolean, and
NULLs in every column but the id. It is written as one Parquet file (row groups of 100,000
rows), as ``--files`` Parquet files of the same rows, as one CSV with a header, and loaded into
a PostgreSQL table for the PostgreSQL -> PostgreSQL comparison.

Every contestant loads the same rows into a fresh table with the same DDL, in a process of its
own (a fresh Python, or psql), so that the peak RSS of its process tree is its own and not the
harness's. The cases run ``--repeat`` times, interleaved round-robin. Wall time runs from the
first load call to the commit: it leaves out the interpreter's start and the contestant's
imports (psql: the whole command). After every run the target's fingerprint (counts, sums, a
hash of the text) is compared with the source table's.

The arrowmapper contestants call ``am.map_query(path_or_glob, None, uri, table, workers=W)``;
an arrowmapper that refuses a file source (a ConfigError or TypeError from a tiny probe) is
reported as skipped, with its message, and the suite runs on. DuckDB loads through its postgres
extension, which the ``duckdb-extension-postgres`` wheel carries (``pip install
'arrowmapper[peers]'``); without it the DuckDB rows say why they did not run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

GEN_VERSION = 1  # bump when the generator changes: the cache keys on it
ROW_GROUP = 100_000
SRC = "files_src"  # the PostgreSQL copy of the data set, in the suite's schema
DST = "dst"
COLUMNS = (
    ("id", "bigint NOT NULL"),
    ("n", "int"),
    ("x", "float8"),
    ("s", "text"),
    ("ts", "timestamp"),
    ("b", "boolean"),
)
DDL = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
DUCKDB_COLUMNS = (
    "{'id': 'BIGINT', 'n': 'INTEGER', 'x': 'DOUBLE', 's': 'VARCHAR', 'ts': 'TIMESTAMP', "
    "'b': 'BOOLEAN'}"
)
# a text with commas, doubled quotes, a semicolon, non-ASCII letters; each row takes a slice
TEXT = (
    'He said "hello, world", then left; prices: 1,234.50 and 9,99 EUR -- "quoted", '
    "'single', a,b,c \"\" naïve café, Grüße, 日本語 end. "
) * 2
CSV_DATETIME = "%Y-%m-%d %H:%M:%S%.6f"


# --------------------------------------------------------------------------- the data set


def arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("n", pa.int32()),
            pa.field("x", pa.float64()),
            pa.field("s", pa.string()),
            pa.field("ts", pa.timestamp("us")),
            pa.field("b", pa.bool_()),
        ]
    )


def polars_schema() -> Any:
    import polars as pl

    return {
        "id": pl.Int64,
        "n": pl.Int32,
        "x": pl.Float64,
        "s": pl.String,
        "ts": pl.Datetime("us"),
        "b": pl.Boolean,
    }


def batch(start: int, end: int) -> Any:
    """Rows ``start`` .. ``end - 1`` (1-based ids) as a Polars frame; deterministic."""
    from datetime import datetime

    import polars as pl

    g = pl.col("g")

    def nulls(every: int, value: pl.Expr) -> pl.Expr:
        return pl.when(g % every == 0).then(None).otherwise(value)

    return pl.select(pl.int_range(start, end, dtype=pl.Int64).alias("g")).select(
        g.alias("id"),
        nulls(97, (g * 7919) % 100_000 - 50_000).cast(pl.Int32).alias("n"),
        nulls(89, g * 1.25 / 3 - 1000).alias("x"),
        nulls(
            101,
            pl.concat_str(
                [
                    pl.lit("r"),
                    g.cast(pl.String),
                    pl.lit(": "),
                    pl.lit(TEXT).str.slice(g % 61, 1 + (g * 7) % 160),
                ]
            ),
        ).alias("s"),
        nulls(103, pl.lit(datetime(2026, 1, 1)) + pl.duration(microseconds=g * 1_000_037)).alias(
            "ts"
        ),
        nulls(107, g % 3 == 0).alias("b"),
    )


def _batches(rows: int, first: int = 1, step: int = ROW_GROUP) -> Any:
    end = first + rows
    for start in range(first, end, step):
        yield batch(start, min(start + step, end))


def _write_parquet(path: Path, rows: int, first: int = 1) -> None:
    import pyarrow.parquet as pq

    schema = arrow_schema()
    with pq.ParquetWriter(path, schema) as writer:
        for df in _batches(rows, first):
            writer.write_table(df.to_arrow().cast(schema), row_group_size=ROW_GROUP)


def _write_csv(path: Path, rows: int) -> None:
    with path.open("wb") as f:
        for i, df in enumerate(_batches(rows)):
            df.write_csv(f, include_header=i == 0, datetime_format=CSV_DATETIME)


class Dataset:
    """One size of the data set in the cache: each file is written once, on first use, under a
    temporary name and then renamed (an interrupted run leaves no half file behind)."""

    def __init__(self, cache: Path, rows: int, nfiles: int) -> None:
        self.rows = rows
        self.nfiles = nfiles
        self.dir = cache / f"v{GEN_VERSION}-{rows}rows"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _made(self, path: Path, write: Callable[[Path], None]) -> Path:
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            if tmp.is_dir():
                shutil.rmtree(tmp)
            write(tmp)
            tmp.rename(path)
        return path

    def cached(self) -> bool:
        """Whether the files the suite loads are there already."""
        names = ("data.parquet", f"parts{self.nfiles}", "data.csv")
        return all((self.dir / name).exists() for name in names)

    def parquet(self) -> Path:
        return self._made(self.dir / "data.parquet", lambda p: _write_parquet(p, self.rows))

    def parquet_dir(self) -> Path:
        """``nfiles`` Parquet files of consecutive rows (the last takes the remainder)."""

        def write(tmp: Path) -> None:
            tmp.mkdir()
            per = -(-self.rows // self.nfiles)
            for i, first in enumerate(range(1, self.rows + 1, per)):
                n = min(per, self.rows + 1 - first)
                _write_parquet(tmp / f"part-{i:04d}.parquet", n, first)

        return self._made(self.dir / f"parts{self.nfiles}", write)

    def parquet_glob(self) -> str:
        return str(self.parquet_dir() / "*.parquet")

    def csv(self) -> Path:
        return self._made(self.dir / "data.csv", lambda p: _write_csv(p, self.rows))

    def tiny(self) -> tuple[Path, Path]:
        """Ten rows as Parquet and CSV: what the arrowmapper probe loads."""
        small = self.dir.parent / f"v{GEN_VERSION}-probe"
        small.mkdir(exist_ok=True)
        pq_path = self._made(small / "probe.parquet", lambda p: _write_parquet(p, 10))
        csv_path = self._made(small / "probe.csv", lambda p: _write_csv(p, 10))
        return pq_path, csv_path


def mib(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir()) / 2**20
    return path.stat().st_size / 2**20


def default_cache() -> Path:
    base = os.environ.get("ARROWMAPPER_BENCH_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "arrowmapper-bench" if base else Path.home() / ".cache/arrowmapper-bench"


# --------------------------------------------------------------------------- the contestants
# Each runs in a fresh process: ``python bench_files.py --child CASE JSON`` prints
# {"wall": seconds} as its last line. ``p`` holds uri, schema, table, path, workers, src, rows.


def _timed(run: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def child_arrowmapper_file(p: dict[str, Any]) -> float:
    import arrowmapper as am

    return _timed(
        lambda: am.map_query(
            p["path"], None, p["uri"], p["table"], schema=p["schema"], workers=p["workers"]
        )
    )


def child_arrowmapper_pg(p: dict[str, Any]) -> float:
    import bench_suite

    run = bench_suite.mapper(
        p["uri"],
        f"{p['schema']}.{p['src']}",
        p["table"],
        strategy="ctid",
        workers=p["workers"],
        chunk_size=max(1, p["rows"] // 8),
    )
    return _timed(run)


def duckdb_extension_file() -> Path | None:
    """The postgres extension the ``duckdb-extension-postgres`` wheel carries for the DuckDB
    installed here (the wheel pins its DuckDB version), or None."""
    from importlib.metadata import PackageNotFoundError, version

    spec = importlib.util.find_spec("duckdb_extension_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        v = version("duckdb")
    except PackageNotFoundError:
        return None
    path = (
        Path(list(spec.submodule_search_locations)[0])
        / f"extensions/v{v}/postgres.duckdb_extension"
    )
    return path if path.is_file() else None


def duckdb_connect(uri: str) -> Any:
    """A DuckDB connection with the postgres extension loaded: from the wheel's file (under the
    name the extension's entry point wants, ``postgres_scanner``), else one already installed
    in DuckDB's own extension directory. Never downloads."""
    import duckdb

    con = duckdb.connect()
    ext = duckdb_extension_file()
    if ext is not None:
        with tempfile.TemporaryDirectory() as tmp:
            link = Path(tmp) / "postgres_scanner.duckdb_extension"
            link.symlink_to(ext)
            con.execute(f"LOAD '{link}'")
    else:
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("LOAD postgres")
    return con


def child_duckdb(p: dict[str, Any]) -> float:
    con = duckdb_connect(p["uri"])
    path = str(p["path"]).replace("'", "''")
    if p["format"] == "csv":
        scan = (
            f"read_csv('{path}', header = true, auto_detect = false, delim = ',', "
            f"quote = '\"', escape = '\"', columns = {DUCKDB_COLUMNS})"
        )
    else:
        scan = f"read_parquet('{path}')"
    uri = p["uri"].replace("'", "''")

    def run() -> None:
        con.execute(f"ATTACH '{uri}' AS pg (TYPE postgres)")
        con.execute(
            f"INSERT INTO pg.{p['schema']}.{p['table']} ({', '.join(c for c, _ in COLUMNS)}) "
            f"SELECT id, n, x, s, ts, b FROM {scan}"
        )
        con.execute("DETACH pg")

    return _timed(run)


def child_duckdb_probe(p: dict[str, Any]) -> float:
    con = duckdb_connect(p["uri"])
    uri = p["uri"].replace("'", "''")
    con.execute(f"ATTACH '{uri}' AS pg (TYPE postgres)")
    con.execute("SELECT * FROM postgres_query('pg', 'SELECT 1')").fetchall()
    return 0.0


def child_polars(p: dict[str, Any]) -> float:
    import adbc_driver_postgresql.dbapi as pgdb
    import polars as pl

    def run() -> None:
        if p["format"] == "csv":
            df = pl.read_csv(p["path"], schema=polars_schema())
        else:
            df = pl.read_parquet(p["path"])
        with pgdb.connect(p["uri"]) as conn:
            with conn.cursor() as cur:
                cur.adbc_ingest(
                    p["table"], df.to_arrow(), mode="append", db_schema_name=p["schema"]
                )
            conn.commit()

    return _timed(run)


CHILDREN: dict[str, Callable[[dict[str, Any]], float]] = {
    "arrowmapper_file": child_arrowmapper_file,
    "arrowmapper_pg": child_arrowmapper_pg,
    "duckdb": child_duckdb,
    "duckdb_probe": child_duckdb_probe,
    "polars": child_polars,
}


def child_main(case: str, params: str) -> None:
    wall = CHILDREN[case](json.loads(params))
    print(json.dumps({"wall": wall}), flush=True)


# --------------------------------------------------------------------------- the harness


def _cpu_children() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def run_process(argv: list[str], what: str) -> dict[str, Any]:
    """Run one contestant's process; its wall (its own figure when it prints one), the CPU of its
    tree, the machine's busy cores meanwhile, and its tree's peak RSS."""
    from bench_suite import PeakRSS, machine_busy

    from arrowmapper.errors import redact

    c0, b0, t0 = _cpu_children(), machine_busy(), time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakRSS(proc.pid) as peak:
        out, err = proc.communicate()
    outer = time.perf_counter() - t0
    cpu, busy = _cpu_children() - c0, (machine_busy() - b0) / outer
    if proc.returncode != 0:
        tail = " ".join((err or out).split()[-50:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {redact(tail)}")
    wall = outer
    lines = out.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        wall = float(json.loads(lines[-1])["wall"])
    return {"wall": wall, "outer": outer, "cpu": cpu, "busy": busy, "peak": peak.peak}


def child(case: str, params: dict[str, Any]) -> dict[str, Any]:
    return run_process(
        [sys.executable, str(Path(__file__).resolve()), "--child", case, json.dumps(params)], case
    )


def fingerprint(uri: str, table: str) -> tuple[Any, ...]:
    from bench_suite import sql

    return sql(
        uri,
        "SELECT count(*), sum(id), count(n), sum(n), count(x), sum(x::numeric), count(s), "
        "sum(length(s)), sum(hashtext(s)::bigint), count(ts), sum(extract(epoch FROM ts)), "
        f"count(b), sum(b::int) FROM {table}",
    )[0]


def load_source_table(uri: str, schema: str, csv: Path) -> None:
    """The data set as a PostgreSQL table (COPY of the CSV), with a primary key, analyzed."""
    import psycopg
    from bench_suite import sql

    sql(uri, f"DROP TABLE IF EXISTS {schema}.{SRC}")
    sql(uri, f"CREATE TABLE {schema}.{SRC} ({DDL})")
    with psycopg.connect(uri) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY {schema}.{SRC} FROM STDIN (FORMAT csv, HEADER)") as copy,
            csv.open("rb") as f,
        ):
            while block := f.read(1 << 20):
                copy.write(block)
        conn.commit()
    sql(uri, f"ALTER TABLE {schema}.{SRC} ADD PRIMARY KEY (id)")
    sql(uri, f"VACUUM ANALYZE {schema}.{SRC}")


def fresh_target(uri: str, schema: str) -> None:
    from bench_suite import sql

    sql(uri, f"DROP TABLE IF EXISTS {schema}.{DST}")
    for ledger in ("arrowmapper_ledger", "arrowmapper_jobs"):
        sql(uri, f"DROP TABLE IF EXISTS {schema}.{ledger}")
    sql(uri, f"CREATE TABLE {schema}.{DST} ({DDL})")


def arrowmapper_refuses(uri: str, schema: str, path: Path) -> str | None:
    """Why this arrowmapper refuses ``path`` as a source (ConfigError/TypeError), or None when
    it loads it. Anything else it raises is a real failure and propagates."""
    import arrowmapper as am

    fresh_target(uri, schema)
    try:
        am.map_query(str(path), None, uri, DST, schema=schema, workers=1)
    except (am.ConfigError, TypeError) as exc:
        msg = " ".join(str(exc).replace(str(path), path.name).split())
        return f"arrowmapper refuses a file source ({type(exc).__name__}: {msg})"
    return None


def duckdb_refusal(uri: str) -> str | None:
    """Why the DuckDB contestants cannot run here, or None."""
    if importlib.util.find_spec("duckdb") is None:
        return "not installed (pip install 'arrowmapper[peers]')"
    try:
        child("duckdb_probe", {"uri": uri})
    except RuntimeError as exc:
        hint = (
            ""
            if duckdb_extension_file()
            else "; its postgres extension normally downloads from DuckDB's site: "
            "pip install 'arrowmapper[peers]' brings it as the duckdb-extension-postgres wheel"
        )
        return f"postgres extension not loadable here ({exc}){hint}"
    return None


def suite_files(
    uri: str,
    schema: str,
    rows: int,
    repeat: int,
    workers: int,
    *,
    quick: bool,
    cache: Path,
    nfiles: int,
) -> tuple[str, dict[str, Any]]:
    from bench_suite import interleaved, med

    t0 = time.perf_counter()
    data = Dataset(cache, rows, nfiles)
    cached = data.cached()
    one, many, csv = data.parquet(), data.parquet_dir(), data.csv()
    made = time.perf_counter() - t0
    load_source_table(uri, schema, csv)
    expected = fingerprint(uri, f"{schema}.{SRC}")
    tiny_pq, tiny_csv = data.tiny()
    refused = {
        "parquet": arrowmapper_refuses(uri, schema, tiny_pq),
        "csv": arrowmapper_refuses(uri, schema, tiny_csv),
    }
    no_duckdb = duckdb_refusal(uri)
    base = {"uri": uri, "schema": schema, "table": DST, "workers": workers, "rows": rows}

    # name -> (why it cannot run here or None, how to run it)
    cases: dict[str, tuple[str | None, Callable[[], dict[str, Any]]]] = {}

    def add(name: str, why: str | None, run: Callable[[], dict[str, Any]]) -> None:
        cases[name] = (why, run)

    skip_psql = None if shutil.which("psql") else "no psql on PATH"
    add(
        "psql \\copy FROM the CSV (baseline)",
        skip_psql,
        lambda: run_process(
            [
                "psql",
                uri,
                "-qX",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f"\\copy {schema}.{DST} FROM '{csv}' WITH (FORMAT csv, HEADER)",
            ],
            "psql \\copy",
        ),
    )
    w = f"{workers} workers"
    am_file = "arrowmapper_file"
    add(
        f"arrowmapper Parquet, 1 file, {w}",
        refused["parquet"],
        lambda: child(am_file, {**base, "path": str(one)}),
    )
    add(
        f"arrowmapper Parquet, glob of {nfiles} files, {w}",
        refused["parquet"],
        lambda: child(am_file, {**base, "path": data.parquet_glob()}),
    )
    add(
        f"arrowmapper CSV, {w}",
        refused["csv"],
        lambda: child(am_file, {**base, "path": str(csv)}),
    )
    add(
        f"arrowmapper PostgreSQL -> PostgreSQL (ctid, {w}; same rows)",
        None,
        lambda: child("arrowmapper_pg", {**base, "src": SRC}),
    )
    reads = (
        ("read_parquet, 1 file", "parquet", str(one)),
        (f"read_parquet, glob of {nfiles} files", "parquet", data.parquet_glob()),
        ("read_csv", "csv", str(csv)),
    )
    for peer, why, name in (
        ("duckdb", no_duckdb, "DuckDB {} -> postgres extension"),
        ("polars", None, "Polars {} + ADBC ingest, one process"),
    ):
        for label, fmt, path in reads:
            add(
                name.format(label),
                why,
                lambda peer=peer, fmt=fmt, path=path: child(
                    peer, {**base, "format": fmt, "path": path}
                ),
            )

    def checked(run: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        """The run, then the target's fingerprint; a contestant that fails is reported, not
        raised, so that one broken contestant does not cost the others' figures."""

        def go() -> dict[str, Any]:
            try:
                out = run()
            except RuntimeError as exc:
                return {"error": str(exc)}
            got = fingerprint(uri, f"{schema}.{DST}")
            out["same"] = got == expected
            if not out["same"]:
                out["diff"] = [
                    i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b
                ]
            return out

        return go

    runnable = {n: checked(run) for n, (why, run) in cases.items() if why is None}
    runs = interleaved(runnable, repeat, lambda _n: fresh_target(uri, schema))

    fields = (
        "rows",
        "sum(id)",
        "count(n)",
        "sum(n)",
        "count(x)",
        "sum(x)",
        "count(s)",
        "sum(length(s))",
        "sum(hashtext(s))",
        "count(ts)",
        "sum(epoch(ts))",
        "count(b)",
        "sum(b)",
    )
    base_name = next(iter(cases))
    base_runs = runs.get(base_name, [])
    base_wall = (
        statistics.median([r["out"]["wall"] for r in base_runs])
        if base_runs and all("wall" in r["out"] for r in base_runs)
        else None
    )
    lines = [
        f"`{rows:,}` rows (bigint id, int, float8, text of 5-170 characters with commas, "
        "quotes and non-ASCII letters, timestamp, boolean; NULLs in every column but the id): "
        f"one Parquet file of {mib(one):.1f} MiB (row groups of {ROW_GROUP:,}), {nfiles} "
        f"Parquet files of {mib(many):.1f} MiB in all, a CSV of {mib(csv):.1f} MiB, and the "
        f"same rows in a PostgreSQL table ({schema}.{SRC}, primary key). Each contestant loads "
        "them into a fresh table of the same DDL (no index), in a process of its own; medians "
        f"of {repeat}, interleaved. *wall*: from the first load call to the commit (the "
        "interpreter's start and the imports left out; psql: the whole command). *peak RSS*: "
        "the contestant's whole process tree (workers included; the server's backends not), "
        "sampled every 20 ms. *client CPU*: that tree's CPU time. *cores busy*: the whole "
        "machine's, client and server. *same rows*: the target's fingerprint (counts, sums, a "
        "hash of the text) equals the source table's after every run.",
        "",
        "| contestant | wall s median (min-max) | rows/s | x COPY | peak RSS MiB | client CPU s "
        "| cores busy | same rows |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    plot: dict[str, float] = {}
    failures = []
    for name, (why, _run) in cases.items():
        if why is not None:
            lines.append(f"| {name} | skipped: {why} | - | - | - | - | - | - |")
            continue
        outs = [r["out"] for r in runs[name]]
        errors = [o["error"] for o in outs if "error" in o]
        if errors:
            lines.append(f"| {name} | failed: {errors[0]} | - | - | - | - | - | - |")
            failures.append(name)
            continue
        walls = [o["wall"] for o in outs]
        m = statistics.median(walls)
        ratio = f"{m / base_wall:.2f}" if base_wall else "-"
        peak = statistics.median([o["peak"] for o in outs]) / 2**20
        cpu = statistics.median([o["cpu"] for o in outs])
        busy = statistics.median([o["busy"] for o in outs])
        diffs = sorted({fields[i] for o in outs for i in o.get("diff", [])})
        same = "yes" if all(o["same"] for o in outs) else "NO: " + ", ".join(diffs)
        lines.append(
            f"| {name} | {med(walls)} | {rows / m:,.0f} | {ratio} | {peak:.0f} | {cpu:.2f} | "
            f"{busy:.2f} | {same} |"
        )
        plot[name] = rows / m
    lines += [
        "",
        "The data set came from the cache."
        if cached
        else f"Writing the data set took {made:.1f} s (it is cached for the next run).",
    ]
    versions = _versions()
    if versions:
        lines.append(f"Versions: {versions}.")
    mem_text = memory_check(
        uri, schema, cache, rows, nfiles, workers, refused, sizes=_memory_sizes(rows, quick)
    )
    return "\n".join(lines) + "\n\n" + mem_text, {"rows_per_s": plot, "failures": failures}


def _memory_sizes(rows: int, quick: bool) -> list[int]:
    sizes = [max(10, rows // 5), rows] if quick else [max(10, rows // 5), rows, 5 * rows]
    return sorted(set(sizes))


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("duckdb", "duckdb-extension-postgres", "polars", "adbc-driver-postgresql"):
        with contextlib.suppress(PackageNotFoundError):
            out.append(f"{dist} {version(dist)}")
    psql = shutil.which("psql")
    if psql:
        v = subprocess.run([psql, "--version"], capture_output=True, text=True, check=False)
        out.append(v.stdout.strip())
    return ", ".join(out)


def memory_check(
    uri: str,
    schema: str,
    cache: Path,
    rows: int,
    nfiles: int,
    workers: int,
    refused: dict[str, str | None],
    sizes: list[int],
) -> str:
    """arrowmapper's peak tree RSS against the number of files and the total size (one run
    each, in a fresh process)."""
    lines = [
        "**Memory.** arrowmapper's peak tree RSS (a fresh process running `map_query`, its "
        f"{workers} workers and the resource tracker; one run each) loading one file against "
        f"{nfiles} files of the same rows, and against the total size. Flat is the goal. "
        "Wall includes the interpreter's start.",
        "",
    ]
    jobs: list[tuple[str, int, int, Callable[[], str]]] = []
    for n in sizes:
        ds = Dataset(cache, n, nfiles)
        jobs.append(("Parquet", n, 1, lambda ds=ds: str(ds.parquet())))
        if n == rows:
            jobs.append(("Parquet", n, nfiles, lambda ds=ds: ds.parquet_glob()))
        jobs.append(("CSV", n, 1, lambda ds=ds: str(ds.csv())))
    ran = [j for j in jobs if refused[j[0].lower()] is None]
    skipped = sorted({f"{k}: {refused[k.lower()]}" for k, *_ in jobs if refused[k.lower()]})
    if ran:
        lines += [
            "| source | rows | files | MiB on disk | peak tree RSS MiB | wall s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
    for kind, n, files, where in ran:
        path = where()
        size = mib(Path(path).parent) if "*" in path else mib(Path(path))
        fresh_target(uri, schema)
        params = {"uri": uri, "schema": schema, "table": DST, "workers": workers, "path": path}
        try:
            out = child("arrowmapper_file", params)
        except RuntimeError as exc:
            lines.append(f"| {kind} | {n:,} | {files} | {size:.1f} | failed: {exc} | - |")
            continue
        lines.append(
            f"| {kind} | {n:,} | {files} | {size:.1f} | {out['peak'] / 2**20:.0f} | "
            f"{out['outer']:.2f} |"
        )
    if skipped:
        lines.append(("\n" if ran else "") + "Skipped: " + "; ".join(skipped) + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python bench/bench_files.py [options]``: the suite's ``files`` part (bench_suite.main
    with ``--suites files``); ``--child CASE JSON``: run one contestant (internal)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        child_main(args[1], args[2])
        return
    from bench_suite import main as suite_main

    if not any(a == "--suites" or a.startswith("--suites=") for a in args):
        args = ["--suites", "files", *args]
    suite_main(args)


if __name__ == "__main__":
    main()
