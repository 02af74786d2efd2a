"""The benchmark suite: strategies, peers, scaling, memory, small jobs (medians, interleaved).

    python -m bench [--quick] [--rows N] [--repeat R] [--suites strategies,peers,...]
                    [--uri postgresql://...] [--write docs/benchmarks.md]
    python -m bench --suites files [--files K] [--cache-dir DIR]    # bench/bench_files.py
    arrowmapper bench suite --quick

Data is generated inside PostgreSQL (deterministic: every value is a function of the row
number), each case runs ``--repeat`` times with the cases interleaved round-robin, and the
figures are medians with min-max. The run records versions, server settings and machine facts,
writes its tables between ``<!-- bench_suite -->`` markers of ``--write`` (the ``files`` suite,
not run by default, between ``<!-- bench_files -->`` markers) and PNG plots next to that file
(with matplotlib installed). Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import polars as pl  # noqa: E402
import psycopg  # noqa: E402
from bench_pg_copy import write_block  # noqa: E402

import arrowmapper as am  # noqa: E402
from arrowmapper.config import DEFAULT_CHUNK_SIZE  # noqa: E402
from arrowmapper.errors import redact  # noqa: E402

#: the schema the benchmark works in (dropped at the end); ARROWMAPPER_BENCH_SCHEMA
#: changes it, so that two runs on one server (the tests', a real one) never share it
SCHEMA = os.environ.get("ARROWMAPPER_BENCH_SCHEMA") or "am_suite"
MARKER = "<!-- bench_suite -->"
FILES_MARKER = "<!-- bench_files -->"
SUITES = ("strategies", "peers", "scaling", "memory", "small")  # the default run
EXTRA_SUITES = ("files",)  # only when asked for: bench/bench_files.py


# --------------------------------------------------------------------------- helpers


def sql(uri: str, text: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(uri, autocommit=True) as conn:
        cur = conn.execute(text)
        return cur.fetchall() if cur.description else []


def make_table(uri: str, name: str, rows: int) -> str:
    """The issue's shape: bigint PK, int, numeric(12,2), float8, text 10-40 chars, timestamptz,
    date, bool, jsonb; plus ``k``, an indexed skewed key (90% of rows in the lowest 1% of its
    range)."""
    sql(uri, f"DROP TABLE IF EXISTS {SCHEMA}.{name}")
    sql(
        uri,
        f"""CREATE TABLE {SCHEMA}.{name} AS
        SELECT g::bigint AS id,
               CASE WHEN g % 10 <> 0 THEN g ELSE {rows} + g::bigint * 99 END AS k,
               (g % 1000)::int AS grp,
               ((g % 100000) * 0.37)::numeric(12,2) AS amount,
               (g * 1.25)::float8 AS f,
               left(md5(g::text) || md5((g + 1)::text), 10 + g % 31) AS label,
               TIMESTAMPTZ '2026-01-01 00:00+00' + g * INTERVAL '1 second' AS created,
               DATE '2020-01-01' + (g % 3000) AS day,
               (g % 3 = 0) AS flag,
               jsonb_build_object('g', g, 'tag', 't' || (g % 7)) AS doc
        FROM generate_series(1, {rows}) g""",
    )
    sql(uri, f"ALTER TABLE {SCHEMA}.{name} ADD PRIMARY KEY (id)")
    # a key one chunks by is indexed in practice; without an index every range chunk of a
    # key/quantile plan scans the whole table
    sql(uri, f"CREATE INDEX ON {SCHEMA}.{name} (k)")
    sql(uri, f"VACUUM ANALYZE {SCHEMA}.{name}")
    return f"{SCHEMA}.{name}"


def fresh(uri: str, name: str = "dst", like: str = "src") -> None:
    sql(uri, f"DROP TABLE IF EXISTS {SCHEMA}.{name}")
    sql(uri, f"DELETE FROM {SCHEMA}.arrowmapper_ledger") if _has(
        uri, "arrowmapper_ledger"
    ) else None
    sql(uri, f"CREATE TABLE {SCHEMA}.{name} (LIKE {SCHEMA}.{like})")


def _has(uri: str, table: str) -> bool:
    return bool(sql(uri, f"SELECT to_regclass('{SCHEMA}.{table}') IS NOT NULL")[0][0])


def machine_busy() -> float:
    """CPU-seconds the whole machine (client and server) has been busy, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def cpu_now() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class ServerCPU:
    """CPU-seconds the PostgreSQL server has used, when it runs on this machine and its
    processes can be read: the postmaster's own, its live children's (backends, WAL writer,
    checkpointer...) and those of the children it has reaped (every backend that exited: the
    kernel adds their times to the postmaster's ``children`` times when it waits for them).
    ``read()`` is None where the server is not visible."""

    def __init__(self, uri: str) -> None:
        import psutil

        self.postmaster: Any = None
        try:
            backend = psutil.Process(int(sql(uri, "SELECT pg_backend_pid()")[0][0]))
            self.postmaster = backend.parent()
        except (psutil.Error, ValueError, TypeError):
            self.postmaster = None

    def read(self) -> float | None:
        import psutil

        if self.postmaster is None:
            return None
        try:
            t = self.postmaster.cpu_times()
            total = t.user + t.system + t.children_user + t.children_system
            for child in self.postmaster.children():
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    total += c.user + c.system
        except psutil.Error:
            return None
        return float(total)


#: the server whose CPU the suites report beside the client's (set by main; None: not shown)
SERVER: ServerCPU | None = None


def server_cpu() -> float | None:
    return SERVER.read() if SERVER is not None else None


class PeakRSS:
    """Samples the resident memory of a process (default: this one) and all its descendants
    every 20 ms."""

    def __init__(self, pid: int | None = None) -> None:
        import psutil

        self.me = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                tree = [self.me, *self.me.children(recursive=True)]
            except psutil.Error:  # the process (or a child being listed) has just exited
                tree = [self.me]
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def interleaved(
    cases: dict[str, Callable[[], Any]], repeat: int, before: Callable[[str], None]
) -> dict[str, list[dict[str, Any]]]:
    """Run every case ``repeat`` times, round-robin; each run: wall, client CPU, its result."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            before(name)
            c0, b0, s0, t0 = cpu_now(), machine_busy(), server_cpu(), time.perf_counter()
            out = fn()
            wall = time.perf_counter() - t0
            s1 = server_cpu()
            runs[name].append(
                {
                    "wall": wall,
                    "cpu": cpu_now() - c0,
                    "server": None if s0 is None or s1 is None else s1 - s0,
                    "busy": (machine_busy() - b0) / wall,  # cores busy on average
                    "out": out,
                }
            )
    return runs


def med(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def facts(uri: str) -> dict[str, str]:
    import adbc_driver_postgresql
    import connectorx
    import pyarrow

    settings = dict(
        sql(
            uri,
            "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', "
            "'synchronous_commit', 'max_connections', 'max_wal_size', 'server_version')",
        )
    )
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs "
        f"({len(os.sched_getaffinity(0))} usable), {_mem_gib()} GiB",
        "python": platform.python_version(),
        "versions": f"arrowmapper {am.__version__}, connectorx {connectorx.__version__}, "
        f"polars {pl.__version__}, pyarrow {pyarrow.__version__}, "
        f"adbc-driver-postgresql {adbc_driver_postgresql.__version__}",
        "server": "PostgreSQL "
        + ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
        + " (same machine: client and server share the CPUs)",
    }


def _mem_gib() -> str:
    import psutil

    return f"{psutil.virtual_memory().total / 2**30:.0f}"


# --------------------------------------------------------------------------- cases


def mapper(uri: str, src: str, table: str = "dst", **kw: Any) -> Callable[[], am.JobResult]:
    return lambda: am.map_query(uri, src, uri, table, schema=SCHEMA, **kw)


def cx_to_adbc(
    uri: str, src: str, table: str = "dst", transform: bool = False, reader: str = "connectorx"
) -> Callable[[], int]:
    """The plain pipeline in one process: a reader's Arrow stream -> (Polars) -> ADBC ingest.
    ``reader``: connectorx ``arrow_stream``, or the ADBC PostgreSQL driver's own COPY reader."""

    def run() -> int:
        import adbc_driver_postgresql.dbapi as pgdb
        import connectorx as cx
        import pyarrow as pa

        with pgdb.connect(uri) as conn, contextlib.ExitStack() as stack:
            if reader == "adbc":
                source = stack.enter_context(pgdb.connect(uri))
                scur = stack.enter_context(source.cursor())
                scur.execute(f"SELECT * FROM {src}")
                stream: Any = scur.fetch_record_batch()
            else:
                stream = cx.read_sql(
                    uri, f"SELECT * FROM {src}", return_type="arrow_stream", batch_size=65_536
                )
            target = conn.adbc_get_table_schema(table, db_schema_filter=SCHEMA)
            fields = []
            for f in target:
                t = f.type
                if isinstance(t, pa.BaseExtensionType) and not isinstance(t, pa.JsonType):
                    t = pa.decimal128(12, 2)  # numeric(12,2): what the driver takes
                fields.append(pa.field(f.name, t))
            schema = pa.schema(fields)

            def batches() -> Any:
                for batch in stream:
                    if transform:
                        df = pl.from_arrow(batch)
                        assert isinstance(df, pl.DataFrame)
                        batch = df.with_columns(pl.col("label").str.to_uppercase()).to_arrow()
                        batch = batch.to_batches()[0] if batch.num_rows else None
                        if batch is None:
                            continue
                    cols = []
                    for f, col in zip(schema, batch.columns, strict=True):
                        if isinstance(col.type, pa.BaseExtensionType) and not isinstance(
                            f.type, pa.BaseExtensionType
                        ):
                            col = col.storage  # ADBC's numeric arrives as exact text
                        if isinstance(f.type, pa.JsonType):
                            if not isinstance(col.type, pa.JsonType):
                                col = pa.ExtensionArray.from_storage(f.type, col.cast(pa.string()))
                        else:
                            col = col.cast(f.type)
                        cols.append(col)
                    yield pa.RecordBatch.from_arrays(cols, schema=schema)

            with conn.cursor() as cur:
                n = cur.adbc_ingest(
                    table,
                    pa.RecordBatchReader.from_batches(schema, batches()),
                    mode="append",
                    db_schema_name=SCHEMA,
                )
            conn.commit()
        return int(n)

    return run


# the suite table's columns, for a target made in another database (pgcopydb)
SRC_COLUMNS = (
    "id bigint NOT NULL, k bigint, grp int, amount numeric(12,2), f float8, label text, "
    "created timestamptz, day date, flag bool, doc jsonb"
)


def with_password(uri: str) -> str:
    """dlt insists on a password in PostgreSQL credentials; trust auth ignores it."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is not None or "@" not in parts.netloc:
        return uri
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:unused@{host}"))


def sling_binary() -> str | None:
    """``sling`` on PATH, or the binary the ``sling-linux-amd64`` wheel carries."""
    found = shutil.which("sling")
    if found:
        return found
    spec = importlib.util.find_spec("sling_linux_amd64")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "bin" / "sling-linux-amd64"
    return str(path) if path.is_file() else None


def run_tool(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run a peer's command; a failure says which tool and why (its stderr's end, passwords
    removed), not a command line with the URIs in it."""
    proc = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        tail = " ".join(proc.stderr.split()[-60:])
        raise RuntimeError(f"{name} failed (exit {proc.returncode}): {redact(tail)}")


def pgcopydb_copy(uri: str, src: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """pgcopydb copies between databases: ``src`` into the same-named table of a scratch
    database (same columns, no indexes, like the other targets). Returns (run, cleanup)."""
    from urllib.parse import urlsplit, urlunsplit

    db = f"{SCHEMA}_pgcopydb"
    parts = urlsplit(uri)
    target = urlunsplit(parts._replace(path=f"/{db}"))
    admin = urlunsplit(parts._replace(path="/postgres"))
    schema, table = src.split(".")
    sql(admin, f"DROP DATABASE IF EXISTS {db}")
    sql(admin, f"CREATE DATABASE {db}")
    sql(target, f"CREATE SCHEMA {schema}")
    sql(target, f"CREATE TABLE {src} ({SRC_COLUMNS})")
    work = Path(tempfile.mkdtemp(prefix="am_pgcopydb_"))
    filters = work / "filters.ini"
    filters.write_text(f"[include-only-table]\n{schema}.{table}\n")

    def run() -> None:
        sql(target, f"TRUNCATE {src}")
        out = work / "run"
        shutil.rmtree(out, ignore_errors=True)
        run_tool(
            "pgcopydb",
            [
                "pgcopydb",
                "copy",
                "table-data",
                "--source",
                uri,
                "--target",
                target,
                "--filters",
                str(filters),
                "--dir",
                str(out),
            ],
        )

    def cleanup() -> None:
        shutil.rmtree(work, ignore_errors=True)
        sql(admin, f"DROP DATABASE IF EXISTS {db}")

    return run, cleanup


def sling_copy(uri: str, src: str, binary: str, table: str = "dst") -> Callable[[], None]:
    """Sling into the same-DDL table (mode truncate: it keeps the table)."""
    home = tempfile.mkdtemp(prefix="am_sling_")
    sep = "&" if "?" in uri else "?"
    env = {
        **os.environ,
        "AM_SUITE_PG": f"{uri}{sep}sslmode=disable",
        "SLING_HOME_DIR": home,
        "SLING_DISABLE_TELEMETRY": "true",
    }

    def run() -> None:
        run_tool(
            "Sling",
            [
                binary,
                "run",
                "--src-conn",
                "AM_SUITE_PG",
                "--src-stream",
                src,
                "--tgt-conn",
                "AM_SUITE_PG",
                "--tgt-object",
                f"{SCHEMA}.{table}",
                "--mode",
                "truncate",
            ],
            env,
        )

    return run


def dlt_copy(uri: str, src: str, file_format: str | None) -> Callable[[], None]:
    """dlt's sql_table source (connectorx backend) into its own table of a dataset
    (write_disposition=replace); ``file_format`` None is dlt's default load (CSV/insert)."""
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    import dlt
    from dlt.sources.sql_database import sql_table

    schema, table = src.split(".")
    pipes = tempfile.mkdtemp(prefix="am_dlt_")
    name = f"am_suite_{file_format or 'default'}"
    source_uri = uri.replace("postgresql://", "postgresql+psycopg2://", 1)

    def run() -> None:
        pipeline = dlt.pipeline(
            pipeline_name=name,
            destination=dlt.destinations.postgres(credentials=with_password(uri)),
            dataset_name=f"{SCHEMA}_dlt",
            pipelines_dir=pipes,
        )
        resource = sql_table(
            credentials=source_uri, schema=schema, table=table, backend="connectorx"
        )
        if file_format == "parquet":
            pipeline.run(resource, write_disposition="replace", loader_file_format="parquet")
        else:
            pipeline.run(resource, write_disposition="replace")

    return run


def copy_pipe(uri: str, src: str, table: str = "dst") -> Callable[[], None]:
    def run() -> None:
        out = subprocess.Popen(
            ["psql", uri, "-qc", f"COPY {src} TO STDOUT (FORMAT binary)"], stdout=subprocess.PIPE
        )
        subprocess.run(
            ["psql", uri, "-qc", f"COPY {SCHEMA}.{table} FROM STDIN (FORMAT binary)"],
            stdin=out.stdout,
            check=True,
        )
        out.wait()

    return run


def psycopg_executemany(uri: str, src: str, rows: int) -> Callable[[], None]:
    def run() -> None:
        with psycopg.connect(uri) as conn:
            data = conn.execute(f"SELECT * FROM {src} ORDER BY id LIMIT {rows}").fetchall()
            cols = len(data[0]) if data else 0
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {SCHEMA}.dst VALUES ({', '.join(['%s'] * cols)})",
                    [
                        tuple(psycopg.types.json.Jsonb(v) if isinstance(v, dict) else v for v in r)
                        for r in data
                    ],
                )
            conn.commit()

    return run


def pandas_to_sql(uri: str, src: str, rows: int) -> Callable[[], None]:
    def run() -> None:
        import pandas as pd
        import sqlalchemy as sa
        from sqlalchemy.dialects.postgresql import JSONB

        engine = sa.create_engine(uri.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            df = pd.read_sql(f"SELECT * FROM {src} ORDER BY id LIMIT {rows}", conn)
            df.to_sql(
                "dst",
                conn,
                schema=SCHEMA,
                if_exists="append",
                index=False,
                method="multi",
                chunksize=1000,
                dtype={"doc": JSONB},
            )
        engine.dispose()

    return run


def cpu_heavy(df: pl.DataFrame, rounds: int = 6) -> pl.DataFrame:
    """String work above the I/O cost: regex rewrites, reversal, hashing, per row."""
    label = pl.col("label")
    out = df
    for i in range(rounds):
        out = out.with_columns(
            label.str.replace_all(r"([a-f])(\d)", r"$2$1")
            .str.reverse()
            .str.replace_all(r"[0-4]+", "x")
            .alias("label"),
            (pl.col("grp") + (pl.col("label").hash(seed=i) % 7).cast(pl.Int64)).alias("grp"),
        )
    return out


def cpu_bound(df: pl.DataFrame) -> pl.DataFrame:
    """The same string work, 20 rounds: transform time far above I/O time."""
    return cpu_heavy(df, rounds=20)


# --------------------------------------------------------------------------- suites


def suite_strategies(uri: str, rows: int, repeat: int, workers: int) -> tuple[str, dict[str, Any]]:
    src = make_table(uri, "src", rows)
    chunk = max(1, rows // 16)
    out_lines = [
        f"`{rows:,}` rows, chunk_size rows/16, {workers} workers. Skewed key `k`: 90% of rows in "
        "the lowest 1% of its range. Spread = rows of the largest chunk / median chunk.",
        "",
        "| data | strategy | wall s median (min-max) | rows/s | chunks | spread | first / last chunk s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    plot: dict[str, Any] = {}
    for data, key in (("uniform (id)", "id"), ("skewed (k)", "k")):
        cases = {
            "ctid": mapper(uri, src, strategy="ctid", workers=workers, chunk_size=chunk),
            "key": mapper(uri, src, strategy="key", key=key, workers=workers, chunk_size=chunk),
            "quantile": mapper(
                uri, src, strategy="quantile", key=key, workers=workers, chunk_size=chunk
            ),
            "offset": mapper(
                uri, src, strategy="offset", key=key, workers=workers, chunk_size=chunk
            ),
        }
        runs = interleaved(cases, repeat, lambda _n: fresh(uri))
        for name, rs in runs.items():
            walls = [r["wall"] for r in rs]
            res: am.JobResult = rs[-1]["out"]
            sizes = sorted(c.rows_written for c in res.chunk_results if c.rows_written)
            spread = sizes[-1] / statistics.median(sizes) if sizes else 0.0
            by_id = sorted(res.chunk_results, key=lambda c: c.chunk_id)
            ends = f"{by_id[0].duration_s:.2f} / {by_id[-1].duration_s:.2f}" if by_id else "-"
            out_lines.append(
                f"| {data} | {name} | {med(walls)} | {rows / statistics.median(walls):,.0f} | "
                f"{res.chunks} | {spread:.2f} | {ends} |"
            )
            plot.setdefault(data, {})[name] = statistics.median(walls)
    return "\n".join(out_lines), plot


def _server(runs: list[dict[str, Any]]) -> str:
    """The median server CPU-seconds of some runs ("-" where the server is not visible)."""
    got = [r["server"] for r in runs if r.get("server") is not None]
    return f"{statistics.median(got):.2f}" if got else "-"


def _per_cpu(rows: int, cpu: float) -> str:
    return f"{rows / cpu:,.0f}" if cpu > 0 else "-"


def on_path(path: str, job: Callable[[], am.JobResult]) -> Callable[[], am.JobResult]:
    """``job``, checked to have taken the path its case is named for (a silent fallback to
    the other path would mislabel the figure)."""

    def run() -> am.JobResult:
        r = job()
        if r.path != path:
            raise AssertionError(f"asked for path={path}, took {r.path}: {r.path_reason}")
        return r

    return run


def duckdb_pg_refusal(uri: str) -> str | None:
    """Why DuckDB cannot be a PostgreSQL -> PostgreSQL peer here (None: it can)."""
    from bench_files import duckdb_refusal

    return duckdb_refusal(uri)


def duckdb_copy(uri: str, src: str) -> Callable[[], None]:
    """DuckDB's postgres extension, both ends attached: it reads the source with binary COPY
    and writes the target with COPY, in one process (its own threads)."""
    from bench_files import duckdb_connect

    def run() -> None:
        con = duckdb_connect(uri)
        try:
            con.execute(f"ATTACH '{uri.replace(chr(39), chr(39) * 2)}' AS pg (TYPE postgres)")
            con.execute(f"INSERT INTO pg.{SCHEMA}.dst SELECT * FROM pg.{src}")
            con.execute("DETACH pg")
        finally:
            con.close()

    return run


def suite_peers(
    uri: str, rows: int, repeat: int, workers: int, subset: int
) -> tuple[str, dict[str, Any]]:
    src = make_table(uri, "src", rows)
    chunk = max(1, rows // 8)
    cases: dict[str, Callable[[], Any]] = {}
    notes = []
    if shutil.which("psql"):
        cases["binary COPY pipe through psql"] = copy_pipe(uri, src)
    else:
        notes.append("COPY pipe: skipped, no psql on PATH")
    cases["connectorx -> ADBC, one process, streaming"] = cx_to_adbc(uri, src)
    cases["same, plus a Polars transform per batch"] = cx_to_adbc(uri, src, transform=True)
    cases["ADBC PostgreSQL reader -> ADBC ingest, one process, streaming"] = cx_to_adbc(
        uri, src, reader="adbc"
    )
    for path, label in (("copy", "COPY fast path"), ("arrow", "Arrow path")):
        cases[f"arrowmapper ctid, {workers} workers, {label} (path={path!r})"] = on_path(
            path,
            mapper(uri, src, strategy="ctid", workers=workers, chunk_size=chunk, path=path),
        )
    cases[f"arrowmapper ctid, {workers} workers, Polars transform (Arrow path)"] = on_path(
        "arrow",
        mapper(
            uri,
            src,
            strategy="ctid",
            workers=workers,
            chunk_size=chunk,
            transform=[pl.all().exclude("label"), pl.col("label").str.to_uppercase()],
        ),
    )
    no_duckdb = duckdb_pg_refusal(uri)
    if no_duckdb is None:
        cases["DuckDB postgres extension, INSERT INTO pg.dst SELECT * FROM pg.src"] = duckdb_copy(
            uri, src
        )
    else:
        notes.append(f"DuckDB: skipped, {no_duckdb}")
    cleanup: Callable[[], None] | None = None
    if shutil.which("pgcopydb"):
        cases["pgcopydb copy table-data (its own database as target)"], cleanup = pgcopydb_copy(
            uri, src
        )
    else:
        notes.append("pgcopydb: skipped, not installed (Debian package pgcopydb)")
    sling = sling_binary()
    if sling:
        cases["Sling, mode truncate"] = sling_copy(uri, src, sling)
    else:
        notes.append("Sling: skipped, not installed (pip install sling-linux-amd64)")
    once: dict[str, Callable[[], Any]] = {}
    if importlib.util.find_spec("dlt") is not None:
        cases["dlt, connectorx backend, parquet load (its own table, no PK)"] = dlt_copy(
            uri, src, "parquet"
        )
        once["dlt, connectorx backend, default load (its own table; one run)"] = dlt_copy(
            uri, src, None
        )
    else:
        notes.append("dlt: skipped, not installed (pip install 'dlt[postgres,parquet]')")
    try:
        runs = interleaved(cases, repeat, lambda _n: fresh(uri))
        runs.update(interleaved(once, 1, lambda _n: fresh(uri)))
    finally:
        if cleanup is not None:
            cleanup()
        sql(uri, f"DROP SCHEMA IF EXISTS {SCHEMA}_dlt CASCADE")
    small: dict[str, Callable[[], Any]] = {
        f"psycopg executemany ({subset:,} rows)": psycopg_executemany(uri, src, subset),
    }
    if importlib.util.find_spec("pandas") is not None:
        small[f"pandas read_sql + to_sql(method='multi') ({subset // 10:,} rows)"] = pandas_to_sql(
            uri, src, subset // 10
        )
    else:
        notes.append("pandas: skipped, not installed (pip install 'arrowmapper[bench]')")
    small_runs = interleaved(small, 1, lambda _n: fresh(uri))
    pipe = runs.get("binary COPY pipe through psql")
    base = statistics.median([r["wall"] for r in pipe]) if pipe else None
    lines = [
        f"`{rows:,}` rows of the table above ({SCHEMA}.src), into a table with the same DDL; "
        f"medians of {repeat}, interleaved. *client CPU*: this process and its children "
        "(workers, psql, pgcopydb, sling); *server CPU*: the PostgreSQL server's processes, "
        "exited backends included; *rows per client CPU-s*: what a client moves per second of "
        "its own CPU, the figure that matters when the databases run elsewhere.",
        "",
        "| path | wall s median (min-max) | rows/s | x pipe | client CPU s | server CPU s "
        "| rows per client CPU-s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    plot = {}
    for name, rs in runs.items():
        walls = [r["wall"] for r in rs]
        m = statistics.median(walls)
        ratio = f"{m / base:.2f}" if base else "-"
        cpu = statistics.median([r["cpu"] for r in rs])
        lines.append(
            f"| {name} | {med(walls)} | {rows / m:,.0f} | {ratio} | {cpu:.2f} "
            f"| {_server(rs)} | {_per_cpu(rows, cpu)} |"
        )
        plot[name] = m
    for name, rs in small_runs.items():
        n = int(name.split("(")[-1].split(" ")[0].replace(",", ""))
        w, cpu = rs[0]["wall"], rs[0]["cpu"]
        lines.append(
            f"| {name} | {w:.2f} | {n / w:,.0f} | - | {cpu:.2f} | {_server(rs)} "
            f"| {_per_cpu(n, cpu)} |"
        )
    if notes:
        lines += ["", "Skipped: " + "; ".join(notes) + "."]
    return "\n".join(lines), plot


def suite_scaling(uri: str, rows: int, repeat: int, max_workers: int) -> tuple[str, dict[str, Any]]:
    src = make_table(uri, "src", rows)
    small = make_table(uri, "src_quarter", max(1, rows // 4))
    counts = list(range(1, max_workers + 1))
    kinds = {  # name: (table, rows, transform)
        "identity": (src, rows, None),
        "cpu-heavy": (src, rows, "bench_suite:cpu_heavy"),
        "cpu-bound": (small, max(1, rows // 4), "bench_suite:cpu_bound"),
    }
    cases: dict[str, Callable[[], Any]] = {}
    for w in counts:
        for kind, (table, n, transform) in kinds.items():
            cases[f"{kind}|{w}"] = mapper(
                uri,
                table,
                strategy="ctid",
                workers=w,
                chunk_size=max(1, n // 16),
                transform=transform,
            )
    runs = interleaved(cases, repeat, lambda _n: fresh(uri))
    lines = [
        f"ctid chunks of rows/16. `identity` and `cpu-heavy` copy `{rows:,}` rows; `cpu-heavy` "
        "(`bench_suite:cpu_heavy`: regex rewrites, reversal and hashing of a text column, six "
        "rounds) takes about twice the I/O time. `cpu-bound` (`bench_suite:cpu_bound`, the same "
        f"work in 20 rounds) copies `{max(1, rows // 4):,}` rows with transform time far above "
        "I/O time. *Cores busy*: the whole machine's (client and server) average busy cores "
        "during the run; with one worker it bounds the speed-up two cores can give "
        "(2 / cores busy).",
        "",
        "| workers | identity wall s | speed-up | cpu-heavy wall s | speed-up | cores busy "
        "| cpu-bound wall s | speed-up | cores busy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    plot: dict[str, list[float]] = {kind: [] for kind in kinds}
    for w in counts:
        cells = []
        for kind in kinds:
            rs = runs[f"{kind}|{w}"]
            m = statistics.median([r["wall"] for r in rs])
            one = statistics.median([r["wall"] for r in runs[f"{kind}|1"]])
            cells += [med([r["wall"] for r in rs]), f"{one / m:.2f}x"]
            if kind != "identity":
                cells.append(f"{statistics.median([r['busy'] for r in rs]):.2f}")
            plot[kind].append(m)
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return "\n".join(lines), {"workers": counts, **plot}


def job_in_subprocess(uri: str, src: str, workers: int, chunk: int | None) -> tuple[int, float]:
    """Run one job in a fresh Python process; its tree's peak RSS (bytes) and wall seconds.
    A fresh process measures what a job costs, not what this harness has accumulated (pandas,
    matplotlib, earlier suites' heaps)."""
    script = (
        "import arrowmapper as am\n"
        f"am.map_query({uri!r}, {src!r}, {uri!r}, 'dst', schema={SCHEMA!r}, strategy='ctid', "
        f"workers={workers}" + (f", chunk_size={chunk}" if chunk else "") + ")\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", script])
    with PeakRSS(proc.pid) as peak:
        code = proc.wait()
    wall = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"the memory job exited with {code}")
    return peak.peak, wall


def suite_memory(uri: str, sizes: list[int], workers: int) -> tuple[str, dict[str, Any]]:
    lines = [
        f"Peak RSS of the whole process tree of one job (a fresh Python process running "
        f"`map_query`, its {workers} workers and the resource tracker), sampled every 20 ms, "
        "one run each. The chunk size is held fixed across table sizes (the default, "
        f"{DEFAULT_CHUNK_SIZE:,} rows, and 250,000), so the rows column shows the effect of "
        "table size alone; the batch size follows the chunk (an eighth of it, 8,192-65,536 "
        "rows). Wall includes the interpreter's start.",
        "",
        "| rows | chunk_size | peak tree RSS MiB | wall s |",
        "|---:|---:|---:|---:|",
    ]
    plot: dict[str, list[float]] = {"rows": [], "mib": []}
    for rows in sizes:
        src = make_table(uri, "src", rows)
        for chunk in (None, 250_000):
            fresh(uri)
            peak, wall = job_in_subprocess(uri, src, workers, chunk)
            size = f"{chunk:,}" if chunk else f"{DEFAULT_CHUNK_SIZE:,} (default)"
            lines.append(f"| {rows:,} | {size} | {peak / 2**20:.0f} | {wall:.2f} |")
            if chunk is None:
                plot["rows"].append(rows)
                plot["mib"].append(peak / 2**20)
    return "\n".join(lines), plot


def on_inline(inline: bool, job: Callable[[], am.JobResult]) -> Callable[[], am.JobResult]:
    """``job``, checked to have run in this process (``inline``) or on workers."""

    def run() -> am.JobResult:
        r = job()
        if (r.workers == 0) != inline:
            raise AssertionError(f"expected inline={inline}, ran on {r.workers} workers")
        return r

    return run


def suite_small(uri: str, repeat: int) -> tuple[str, dict[str, Any]]:
    src = make_table(uri, "src", 10_000)
    cases = {
        "10k rows, default options (workers=2; one chunk: it runs in this process)": on_inline(
            True, mapper(uri, src)
        ),
        "10k rows in 2 chunks on 2 workers (spawn included)": on_inline(
            False, mapper(uri, src, strategy="ctid", workers=2, chunk_size=5_000)
        ),
        "10k rows, one chunk on a worker (stall_timeout keeps it on one)": on_inline(
            False, mapper(uri, src, workers=1, stall_timeout=600)
        ),
        "10k rows below min_rows_for_parallel (in-process, drop-in API)": lambda: (
            am.execute_query_parallel(
                uri,
                f"SELECT * FROM {src}",
                uri,
                SCHEMA,
                "dst",
                params={"min_rows_for_parallel": 100_000},
            )
        ),
    }
    runs = interleaved(cases, repeat, lambda _n: fresh(uri))
    lines = [
        "End-to-end latency of tiny jobs (planning, type preflight, table checks, workers).",
        "",
        "| job | wall s median (min-max) |",
        "|---|---:|",
    ]
    for name, rs in runs.items():
        lines.append(f"| {name} | {med([r['wall'] for r in rs])} |")
    return "\n".join(lines), {}


# --------------------------------------------------------------------------- plots and main


def plots(out_dir: Path, results: dict[str, dict[str, Any]]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    if results.get("strategies"):
        data = results["strategies"].get("skewed (k)", {})
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(list(data), list(data.values()), color="#4c72b0")
        ax.set_ylabel("wall s (median)")
        ax.set_title("Strategies on skewed keys")
        fig.tight_layout()
        fig.savefig(out_dir / "bench_strategies_skewed.png", dpi=110)
        plt.close(fig)
        made.append("bench_strategies_skewed.png")
    if results.get("scaling"):
        s = results["scaling"]
        fig, ax = plt.subplots(figsize=(5, 3))
        for kind in ("identity", "cpu-heavy", "cpu-bound"):
            one = s[kind][0]
            ax.plot(s["workers"], [one / m for m in s[kind]], marker="o", label=kind)
        ax.set_xlabel("workers")
        ax.set_ylabel("speed-up vs 1 worker")
        ax.set_title("Scaling")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "bench_scaling.png", dpi=110)
        plt.close(fig)
        made.append("bench_scaling.png")
    if results.get("memory") and results["memory"].get("rows"):
        m = results["memory"]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(m["rows"], m["mib"], marker="o")
        ax.set_xlabel("rows")
        ax.set_ylabel("peak tree RSS MiB")
        ax.set_ylim(bottom=0)
        ax.set_title("Memory versus rows")
        fig.tight_layout()
        fig.savefig(out_dir / "bench_memory.png", dpi=110)
        plt.close(fig)
        made.append("bench_memory.png")
    if results.get("files") and results["files"].get("rows_per_s"):
        speeds = results["files"]["rows_per_s"]
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(speeds) + 1.2))
        names = list(speeds)[::-1]
        ax.barh(names, [speeds[n] / 1000 for n in names], color="#4c72b0")
        ax.set_xlabel("thousand rows/s (median)")
        ax.set_title("Files -> PostgreSQL")
        ax.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "bench_files.png", dpi=110)
        plt.close(fig)
        made.append("bench_files.png")
    return made


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small data, one run: under 2 minutes")
    ap.add_argument("--rows", type=int, help="rows per table (default 1,000,000; quick 30,000)")
    ap.add_argument("--repeat", type=int, help="runs per case (default 3; quick 1)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--peer-rows",
        type=int,
        help="rows for the peers suite (default 5 x --rows: 5,000,000; quick: --rows)",
    )
    ap.add_argument(
        "--suites",
        default=",".join(SUITES),
        help=f"comma-separated, from {', '.join(SUITES + EXTRA_SUITES)} "
        f"(default: {','.join(SUITES)}; files only when named)",
    )
    ap.add_argument(
        "--files", type=int, default=10, help="files suite: Parquet files the rows are split into"
    )
    ap.add_argument(
        "--cache-dir",
        help="files suite: where its data set is written once per size (default "
        "$ARROWMAPPER_BENCH_CACHE, else ~/.cache/arrowmapper-bench)",
    )
    ap.add_argument(
        "--uri",
        default=os.environ.get("ARROWMAPPER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    ap.add_argument("--write", help="Markdown file to write the results to (plots beside it)")
    args = ap.parse_args(argv)
    rows = args.rows or (30_000 if args.quick else 1_000_000)
    repeat = args.repeat or (1 if args.quick else 3)
    wanted = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = set(wanted) - set(SUITES + EXTRA_SUITES)
    if unknown:
        ap.error(
            f"unknown suites {sorted(unknown)}; choose from {', '.join(SUITES + EXTRA_SUITES)}"
        )
    uri = args.uri
    started = time.perf_counter()
    sql(uri, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    sql(uri, f"CREATE SCHEMA {SCHEMA}")
    global SERVER
    SERVER = ServerCPU(uri)
    sections: list[str] = []
    results: dict[str, Any] = {}
    try:
        for name in wanted:
            t0 = time.perf_counter()
            if name == "strategies":
                text, data = suite_strategies(uri, rows, repeat, args.workers)
            elif name == "peers":
                peer_rows = args.peer_rows or (rows if args.quick else 5 * rows)
                text, data = suite_peers(uri, peer_rows, repeat, args.workers, min(rows, 50_000))
            elif name == "scaling":
                text, data = suite_scaling(uri, rows, repeat, 2 if args.quick else 4)
            elif name == "memory":
                sizes = [rows // 5, rows] if args.quick else [rows // 5, rows, 5 * rows]
                text, data = suite_memory(uri, sizes, args.workers)
            elif name == "files":
                from bench_files import default_cache, suite_files

                text, data = suite_files(
                    uri,
                    SCHEMA,
                    rows,
                    repeat,
                    args.workers,
                    quick=args.quick,
                    cache=Path(args.cache_dir) if args.cache_dir else default_cache(),
                    nfiles=args.files,
                )
            else:
                text, data = suite_small(uri, repeat)
            results[name] = data
            sections.append(f"### {name} ({time.perf_counter() - t0:.0f} s)\n\n{text}")
            print(sections[-1], "\n", flush=True)
    finally:
        sql(uri, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    info = facts(uri)
    command = "python -m bench " + " ".join(
        a
        for a in (
            "--quick" if args.quick else "",
            f"--rows {rows}" if args.rows else "",
            f"--repeat {repeat}" if args.repeat else "",
            f"--peer-rows {args.peer_rows}" if args.peer_rows else "",
            f"--suites {args.suites}" if args.suites != ",".join(SUITES) else "",
            f"--files {args.files}" if args.files != 10 and "files" in wanted else "",
            f"--write {args.write}" if args.write else "",
        )
        if a
    )
    header = (
        f"Run {time.strftime('%Y-%m-%d')}, {time.perf_counter() - started:.0f} s in all, with "
        f"`{command.strip()}`.\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items())
    )
    print(header)
    if args.write:
        path = Path(args.write)
        path.parent.mkdir(parents=True, exist_ok=True)
        made = plots(path.parent, results)
        # the files suite has a block of its own: running it alone keeps the others' figures
        for marker, names in ((MARKER, SUITES), (FILES_MARKER, EXTRA_SUITES)):
            mine = [s for n, s in zip(wanted, sections, strict=True) if n in names]
            if not mine:
                continue
            body = "\n\n".join(mine)
            pngs = [m for m in made if (m == "bench_files.png") == (marker == FILES_MARKER)]
            if pngs:
                body += "\n\n" + "\n".join(f"![{m}]({m})" for m in pngs)
            write_block(path, marker, header, body)


if __name__ == "__main__":
    main()
