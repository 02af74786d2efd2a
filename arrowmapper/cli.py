"""Command line: ``arrowmapper run | plan | verify | demo | bench`` (also ``python -m arrowmapper``).

Exit codes: 0 success, 1 job failed, 2 bad usage or configuration, 3 cannot connect, 130
interrupted (Ctrl-C).
Errors print one line on stderr -- what, why, the fix -- with no traceback unless ``--debug``,
and never a password. Sources and targets may come from ``$ARROWMAPPER_SOURCE`` and
``$ARROWMAPPER_TARGET`` (or ``"env:NAME"`` values in a job file) so passwords stay out of shell
history.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .config import EXECUTORS, MODES
from .errors import (
    ConfigError,
    JobFailed,
    at_boundary,
    exit_code,
    printable,
    redact,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONNECT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
log = logging.getLogger("arrowmapper")

#: job-file keys and their types; flags of the same name (``-`` for ``_``) override them.
JOB_KEYS: dict[str, type] = {
    "source": str,
    "query": str,
    "target": str,
    "table": str,
    "schema": str,
    "transform": str,
    "transform_sql": str,
    "strategy": str,
    "key": str,
    "workers": int,
    "chunk_size": int,
    "batch_size": int,
    "mode": str,
    "swap": str,
    "max_retries": int,
    "job_id": str,
    "resume": bool,
    "verify": bool,
    "snapshot": bool,
    "statement_timeout": float,
    "stall_timeout": float,
    "max_worker_memory": int,
    "executor": str,
    "cluster": str,
}

EXAMPLES = """\
examples:
  export ARROWMAPPER_SOURCE=postgresql://app@db:5432/shop ARROWMAPPER_TARGET=sqlite:///shop.db
  arrowmapper plan --query orders --strategy quantile --key id
  arrowmapper run --query orders --table orders --key id --workers 4 --job-id orders-1
  arrowmapper run job.toml --workers 8          # flags override the job file
  arrowmapper run job.toml --executor dask --cluster tcp://scheduler:8786
  arrowmapper verify --job-id orders-1
  arrowmapper demo
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors exit 2 with one line
        self.print_usage(sys.stderr)
        print(f"arrowmapper: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="arrowmapper",
        description="Copy a SQL query's result into a table, in parallel chunks, exactly once.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def source_args(sp: argparse.ArgumentParser, query_required: bool = True) -> None:
        sp.add_argument("--source", help="source URI (default: $ARROWMAPPER_SOURCE)")
        sp.add_argument("--query", required=query_required, help="SQL query or table name")
        sp.add_argument(
            "--strategy", help="auto|offset|key|quantile|ctid|rowid|none (default auto)"
        )
        sp.add_argument("--key", help="key column for offset/key/quantile")
        sp.add_argument("--chunk-size", type=int, help="rows per chunk (default 50000)")
        sp.add_argument("--workers", type=int, help="worker processes (default: usable CPUs)")

    run = sub.add_parser(
        "run",
        help="copy a query's result into a table",
        description="Copy a query's result into a table. Every option may come "
        "from a TOML job file; flags override it.",
    )
    run.add_argument("job_file", nargs="?", help="TOML job file with the keys of the flags below")
    source_args(run, query_required=False)
    run.add_argument("--target", help="target URI (default: $ARROWMAPPER_TARGET)")
    run.add_argument("--table", help="target table")
    run.add_argument("--schema", help="target schema (PostgreSQL)")
    run.add_argument("--transform-sql", help="Polars SQL over the frame 'self'")
    run.add_argument(
        "--transform", help="'package.module:function' taking and returning a DataFrame"
    )
    run.add_argument(
        "--batch-size",
        type=int,
        help="rows per Arrow batch (default chunk-size / 8, between 8192 and 65536)",
    )
    run.add_argument(
        "--mode",
        choices=MODES,
        help="append (default; creates a missing table), create (refuses an existing one), "
        "replace (load a staging table, swap it in atomically), truncate (empty, then load), "
        "merge (upsert on --key or the primary key)",
    )
    run.add_argument(
        "--swap",
        choices=("truncate", "delete"),
        help="how --mode replace empties an existing table in its swap: truncate (default, "
        "fast; an older REPEATABLE READ snapshot then sees it empty) or delete (slower; such "
        "a snapshot keeps seeing the old rows)",
    )
    run.add_argument("--max-retries", type=int, help="retries per chunk (default 3)")
    run.add_argument("--job-id", help="ledger key; needed to resume")
    run.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="skip the chunks this job already committed",
    )
    run.add_argument(
        "--verify",
        action="store_true",
        default=None,
        help="check each chunk's count and checksum inside its transaction",
    )
    run.add_argument(
        "--snapshot",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read every chunk from one PostgreSQL snapshot (default: on for ctid and offset "
        "plans of a PostgreSQL source, off otherwise)",
    )
    run.add_argument("--statement-timeout", type=float, help="seconds per source query")
    run.add_argument(
        "--stall-timeout",
        type=float,
        help="kill and retry a chunk that makes no progress this many seconds",
    )
    run.add_argument(
        "--max-worker-memory",
        type=int,
        help="MiB of RSS per worker; over it the worker is killed, its chunk split",
    )
    run.add_argument(
        "--executor",
        choices=EXECUTORS,
        help="local (default): a process pool on this machine; dask: a Dask cluster",
    )
    run.add_argument(
        "--cluster",
        help="with --executor dask: the scheduler's address (tcp://host:8786); "
        "without it, a LocalCluster of --workers processes",
    )
    out = run.add_mutually_exclusive_group()
    out.add_argument("--quiet", action="store_true", help="no progress, no summary")
    out.add_argument("--json", action="store_true", help="print the JobResult as JSON on stdout")

    plan = sub.add_parser("plan", help="show the chunk plan and column mapping; moves no data")
    source_args(plan)
    plan.add_argument("--target", help="target URI, to compare with an existing table")
    plan.add_argument("--table", help="target table")
    plan.add_argument("--schema", help="target schema")
    plan.add_argument("--transform", help="'package.module:function'")
    plan.add_argument("--transform-sql", help="Polars SQL over the frame 'self'")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")

    ver = sub.add_parser("verify", help="re-check a finished job: rows per chunk, source vs ledger")
    ver.add_argument("--source", help="source URI (default: $ARROWMAPPER_SOURCE)")
    ver.add_argument("--target", help="target URI (default: $ARROWMAPPER_TARGET)")
    ver.add_argument("--job-id", required=True)
    ver.add_argument("--schema", help="the target schema the job loaded into")
    ver.add_argument("--transform", help="the job's 'package.module:function', if it had one")
    ver.add_argument("--transform-sql", help="the job's Polars SQL transform, if it had one")
    ver.add_argument(
        "--counts-only",
        action="store_true",
        help="compare row counts only (no re-read of the source data)",
    )
    ver.add_argument("--json", action="store_true")

    demo = sub.add_parser("demo", help="SQLite -> Polars -> SQLite with no server, verified")
    demo.add_argument("--rows", type=int, default=1_000_000)
    demo.add_argument("--workers", type=int, default=4)
    demo.add_argument("--dir", help="where to put source.db and target.db (default: a temp dir)")
    demo.add_argument("--quiet", action="store_true")

    bench = sub.add_parser("bench", help="run a benchmark suite from bench/ (a checkout)")
    bench.add_argument("suite", nargs="?", help="suite name, e.g. pg_copy (default: list them)")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the suite")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``arrowmapper`` command.

    Exit codes: 0 done, 1 the job failed, 2 bad usage or configuration, 3 cannot connect, 130
    interrupted (Ctrl-C). The code comes from the error's kind (see
    :func:`arrowmapper.errors.exit_code`), never from its message.
    """
    args = _parser().parse_args(argv)
    if args.debug:
        return _main(args)
    # a connectorx panic prints Rust's report (and, with RUST_BACKTRACE set, its backtrace) on
    # stderr, here and in the workers that inherit this environment: only --debug shows them
    os.environ["RUST_BACKTRACE"] = "0"
    with _RustPanicFilter():
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print(
            "arrowmapper: interrupted; what was committed stays committed: rerun with the same "
            "--job-id and --resume to load the rest",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except BaseException as caught:  # one boundary: connectorx panics are BaseExceptions
        exc = at_boundary(caught, "arrowmapper")
        if exc is not caught:
            exc.__cause__ = printable(caught)
        _error(exc, args.debug)
        if isinstance(exc, JobFailed) and getattr(args, "json", False):
            print(exc.result.to_json())
        return exit_code(exc)


class _RustPanicFilter:
    """Drop the report Rust's panic hook writes on file descriptor 2 (``thread '...' panicked
    at ...``, the panic's debug struct, the backtrace note) while the command runs; the error
    itself is reported once, in the server's words, by the one-line message.

    File descriptor 2 -- what Rust code and the worker processes write to -- becomes a pipe that
    a thread copies to the real stderr, less those lines; Python's ``sys.stderr`` keeps writing
    to the terminal directly (so the progress display still sees one). Does nothing when
    stderr is not this process's own file descriptor 2 (the CLI called in-process)."""

    _HEADER = re.compile(rb"^thread '.*' (\(\d+\) )?panicked at ")
    _NOTE = re.compile(rb"^note: (run with `RUST_BACKTRACE|Some details are omitted)")

    def __init__(self) -> None:
        self.active = False
        self.skip = 0
        self.closing = threading.Event()

    def __enter__(self) -> _RustPanicFilter:
        current: TextIO = sys.stderr
        try:
            if current is not sys.__stderr__ or current.fileno() != 2:
                return self
        except (AttributeError, OSError, ValueError):
            return self
        current.flush()
        self.saved_stderr = current
        self.terminal = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        sys.stderr = open(  # noqa: SIM115 - closed in __exit__
            os.dup(self.terminal),
            "w",
            buffering=1,
            encoding=self.saved_stderr.encoding,
            errors="backslashreplace",
        )
        self.thread = threading.Thread(target=self._pump, args=(read_end,), daemon=True)
        self.thread.start()
        self.active = True
        return self

    def _pump(self, read_end: int) -> None:
        import select

        pending = b""
        try:
            while True:
                ready, _, _ = select.select([read_end], [], [], 0.1)
                if not ready:
                    if self.closing.is_set():
                        break  # nothing left to copy (the resource tracker may hold the pipe)
                    continue
                data = os.read(read_end, 65536)
                if not data:
                    break
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    self._copy(line + b"\n")
        finally:
            if pending:
                self._copy(pending)
            os.close(read_end)

    def _copy(self, line: bytes) -> None:
        if self._HEADER.match(line):
            self.skip = 2  # the panic's message follows on its own line, then maybe a note
            return
        if self.skip == 2:
            self.skip = 1
            return
        if self.skip == 1 and self._NOTE.match(line):
            self.skip = 0
            return
        self.skip = 0
        with contextlib.suppress(OSError):
            os.write(self.terminal, line)

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        # the replacement stays open: logging's handler may still hold it until exit
        sys.stderr = self.saved_stderr
        os.dup2(self.terminal, 2)  # this process writes to the terminal again
        self.closing.set()
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop copying
            self.thread.join(timeout=2)


def _error(exc: BaseException, debug: bool = False) -> None:
    """One line on stderr (the traceback first with ``--debug``), never a password."""
    if debug:
        import traceback

        traceback.print_exception(printable(exc), file=sys.stderr)
    print(f"arrowmapper: {redact(' '.join(str(exc).split()))}", file=sys.stderr)


def _dispatch(args: argparse.Namespace) -> int:
    handler = {"run": _run, "plan": _plan, "verify": _verify, "demo": _demo, "bench": _bench}
    return handler[args.command](args)


# --------------------------------------------------------------------------- run


def _env_value(value: Any, key: str) -> Any:
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(f"{key} = {value!r}: environment variable {name} is not set")
        return os.environ[name]
    return value


def load_job_file(path: str) -> dict[str, Any]:
    """Read a TOML job file (a ``[job]`` table or top-level keys); ``"env:NAME"`` values are read
    from the environment."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"job file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"job file {path} is a directory; pass a TOML file") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"job file {path} is not text (not UTF-8); pass a TOML file such as job.toml"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read job file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"job file {path} is not valid TOML: {exc}") from None
    job = data.get("job", data)
    if not isinstance(job, dict):
        raise ConfigError(f"job file {path}: 'job' must be a table ([job]), got {job!r}")
    unknown = sorted(set(job) - set(JOB_KEYS))
    if unknown:
        raise ConfigError(
            f"job file {path}: unknown keys {', '.join(unknown)}; allowed: {', '.join(JOB_KEYS)}"
        )
    out = {}
    for key, value in job.items():
        value = _env_value(value, key)
        want = JOB_KEYS[key]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"job file {path}: {key} must be a {want.__name__}, got {value!r}")
        out[key] = value
    return out


def _job_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = load_job_file(args.job_file) if args.job_file else {}
    for key in JOB_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    opts.setdefault("source", os.environ.get("ARROWMAPPER_SOURCE"))
    opts.setdefault("target", os.environ.get("ARROWMAPPER_TARGET"))
    for key, hint in (
        ("source", "--source URI or $ARROWMAPPER_SOURCE"),
        ("target", "--target URI or $ARROWMAPPER_TARGET"),
        ("query", "--query SQL"),
        ("table", "--table NAME"),
    ):
        if not opts.get(key):
            raise ConfigError(f"no {key}: pass {hint}" + (" (or put it in the job file)"))
    if opts.get("transform") and opts.get("transform_sql"):
        raise ConfigError("pass either transform or transform_sql, not both")
    return opts


def _run(args: argparse.Namespace) -> int:
    from . import api
    from .config import RetryConfig
    from .display import ProgressDisplay

    o = _job_options(args)
    retry = RetryConfig(max_retries=o["max_retries"]) if "max_retries" in o else None
    display = ProgressDisplay() if not (args.quiet) else None
    kwargs = dict(
        schema=o.get("schema"),
        transform=o.get("transform") or o.get("transform_sql"),
        strategy=o.get("strategy", "auto"),
        key=o.get("key"),
        workers=o.get("workers"),
        chunk_size=o.get("chunk_size"),
        batch_size=o.get("batch_size"),
        mode=o.get("mode", "append"),
        swap=o.get("swap", "truncate"),
        retry=retry,
        job_id=o.get("job_id"),
        resume=bool(o.get("resume", False)),
        verify=bool(o.get("verify", False)),
        snapshot=o.get("snapshot"),
        statement_timeout=o.get("statement_timeout"),
        stall_timeout=o.get("stall_timeout"),
        max_worker_memory=o.get("max_worker_memory"),
        executor=o.get("executor", "local"),
        cluster=o.get("cluster"),
    )
    if display is None:
        result = api.map_query(o["source"], o["query"], o["target"], o["table"], **kwargs)
    else:
        with display:
            result = api.map_query(
                o["source"], o["query"], o["target"], o["table"], progress=display, **kwargs
            )
    if args.json:
        print(result.to_json())
    elif not args.quiet:
        print(result.summary())
    return EXIT_OK


# --------------------------------------------------------------------------- plan, verify


def _need(value: str | None, env: str, flag: str) -> str:
    value = value or os.environ.get(env)
    if not value:
        raise ConfigError(f"no {flag.strip('-')}: pass {flag} URI or set {env}")
    return value


def _plan(args: argparse.Namespace) -> int:
    from . import api

    source = _need(args.source, "ARROWMAPPER_SOURCE", "--source")
    plan = api.plan_query(
        source,
        args.query,
        strategy=args.strategy or "auto",
        key=args.key,
        chunk_size=args.chunk_size,
        workers=args.workers,
    )
    columns = api.describe_columns(
        source,
        args.query,
        args.target,
        args.table,
        schema=args.schema,
        transform=args.transform or args.transform_sql,
    )
    if args.json:
        print(
            json.dumps(
                {"plan": json.loads(plan.to_json()), "columns": [c.__dict__ for c in columns]}
            )
        )
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"strategy: [bold]{plan.strategy}[/bold] — {plan.reason}")
    console.print(f"{len(plan.chunks)} chunks, about {plan.estimated_rows or 0:,} rows")
    chunks = Table("chunk", "predicate", "estimated rows", box=None, pad_edge=False)
    for c in plan.chunks:
        chunks.add_row(str(c.chunk_id), c.predicate, f"{c.estimated_rows or 0:,}")
    console.print(chunks)
    cols = Table(
        "column", "source type", "arrow type", "target type", "path", box=None, pad_edge=False
    )
    for m in columns:
        cols.add_row(
            m.name, m.source_type or "-", m.arrow_type, m.target_type or "-", m.note or "-"
        )
    console.print(cols)
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from . import api

    report = api.verify(
        _need(args.source, "ARROWMAPPER_SOURCE", "--source"),
        _need(args.target, "ARROWMAPPER_TARGET", "--target"),
        args.job_id,
        schema=args.schema,
        transform=args.transform or args.transform_sql,
        checksums=not args.counts_only,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "job_id": report.job_id,
                    "table": report.table,
                    "ok": report.ok,
                    "target_rows": report.target_rows,
                    "ledger_rows": report.ledger_rows,
                    "chunks": [c.__dict__ for c in report.checks],
                }
            )
        )
    else:
        print(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILED


# --------------------------------------------------------------------------- demo, bench


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .display import ProgressDisplay

    if args.quiet:
        return run_demo(rows=args.rows, workers=args.workers, directory=args.dir, progress=None)
    return run_demo(
        rows=args.rows, workers=args.workers, directory=args.dir, progress=ProgressDisplay()
    )


def _bench_dir() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (base / "bench").is_dir() and any((base / "bench").glob("bench_*.py")):
            return base / "bench"
    raise ConfigError(
        "no bench/ directory with bench_*.py here: run from a checkout of arrowmapper"
    )


def _bench(args: argparse.Namespace) -> int:
    bench = _bench_dir()
    suites = {p.stem.removeprefix("bench_"): p for p in sorted(bench.glob("bench_*.py"))}
    if not args.suite:
        for name, path in suites.items():
            doc = (path.read_text().split('"""')[1].strip().splitlines() or [""])[0]
            print(f"{name:12} {doc}")
        return EXIT_OK
    if args.suite not in suites:
        raise ConfigError(f"unknown bench suite {args.suite!r}; one of {', '.join(suites)}")
    done = subprocess.run([sys.executable, str(suites[args.suite]), *args.args], check=False)
    return EXIT_OK if done.returncode == 0 else EXIT_FAILED
