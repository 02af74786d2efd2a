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
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import JobConfig, RetryConfig, file_keys, load_job_file
from .config.files import is_file_source
from .config.jobfile import EXTRA_KEYS
from .errors import (
    ConfigError,
    JobFailed,
    at_boundary,
    exit_code,
    printable,
    redact,
)
from .panicfilter import RustPanicFilter

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONNECT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
log = logging.getLogger("arrowmapper")

EXAMPLES = """\
examples:
  export ARROWMAPPER_SOURCE=postgresql://app@db:5432/shop ARROWMAPPER_TARGET=sqlite:///shop.db
  arrowmapper plan --query orders --strategy quantile --key id
  arrowmapper run --query orders --table orders --key id --workers 4 --job-id orders-1
  arrowmapper run job.toml --workers 8          # flags override the job file
  arrowmapper run job.toml --executor dask --cluster tcp://scheduler:8786
  arrowmapper verify --job-id orders-1
  arrowmapper demo

files (no --query needed: every row is loaded; --query is optional Polars SQL over 'self'):
  arrowmapper plan --source 'data/*.parquet'
  arrowmapper run --source 'data/*.parquet' --table events --workers 4
  arrowmapper run --source 'exports/' --table sales --query 'SELECT * FROM self WHERE qty > 0'
  arrowmapper run --table prices \\
      --source 'file:///data/prices.txt?format=csv&delimiter=;&header=false&null=NA&column=price=decimal128(12,2)'
"""

SOURCE_HELP = (
    "a database URI, or files: a path, glob or folder (data/*.parquet, exports/), or a "
    "file:// URI with options (file:///data/p.txt?format=csv&delimiter=;&header=false&"
    "null=NA&column=price=decimal128(12,2)); default: $ARROWMAPPER_SOURCE"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors exit 2 with one line
        self.print_usage(sys.stderr)
        print(f"arrowmapper: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="arrowmapper",
        description="Copy a SQL query's result, or files (Parquet, CSV, JSON lines, Arrow), "
        "into a table, in parallel chunks, exactly once.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="copy a query's result, or files, into a table",
        description="Copy a query's result, or files, into a table. Every option may come "
        "from a TOML job file; flags override it. A file source (a path, glob, folder or "
        "file:// URI) needs no --query: every row is loaded.",
    )
    run.add_argument("job_file", nargs="?", help="TOML job file with the keys of the flags below")
    _job_flags(run, list(file_keys()) + list(EXTRA_KEYS))
    out = run.add_mutually_exclusive_group()
    out.add_argument("--quiet", action="store_true", help="no progress, no summary")
    out.add_argument("--json", action="store_true", help="print the JobResult as JSON on stdout")

    plan = sub.add_parser(
        "plan",
        help="show the chunk plan and column mapping; moves no data",
        description="Show the chunk plan and the column mapping; moves no data. --query is "
        "required for a database source; a file source (a path, glob, folder or file:// URI) "
        "needs none, and its plan lists the files too.",
    )
    _job_flags(plan, PLAN_FLAGS)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(usage=plan)

    ver = sub.add_parser("verify", help="re-check a finished job: rows per chunk, source vs ledger")
    ver.add_argument("--source", help="the job's source: " + SOURCE_HELP)
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
    demo.add_argument(
        "--rows", type=int, help="rows to build (default: 1,000,000; --sample-data: 20,000)"
    )
    demo.add_argument("--workers", type=int, default=4)
    demo.add_argument("--dir", help="where to put source.db and target.db (default: a temp dir)")
    demo.add_argument("--quiet", action="store_true")
    demo.add_argument(
        "--sample-data",
        metavar="URI",
        help="instead of the demo, create the docs' sample table <schema>.orders (20,000 rows "
        "or --rows) on this PostgreSQL server, and exit",
    )
    demo.add_argument("--schema", default="shop", help="schema for --sample-data (default: shop)")

    bench = sub.add_parser("bench", help="run a benchmark suite from bench/ (a checkout)")
    bench.add_argument("suite", nargs="?", help="suite name, e.g. pg_copy (default: list them)")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the suite")
    return p


#: the options ``arrowmapper plan`` takes (a plan and a column mapping need no more).
PLAN_FLAGS = (
    "source",
    "query",
    "strategy",
    "key",
    "chunk_size",
    "workers",
    "target",
    "table",
    "schema",
    "transform",
    "transform_sql",
    "mode",
    "path",
)
_FLAG_TYPES: dict[str, type] = {"int": int, "mib": int, "retry": int, "seconds": float}


def _job_flags(
    sp: argparse.ArgumentParser, keys: Sequence[str], required: Sequence[str] = ()
) -> None:
    """One flag per job option (``--chunk-size`` for ``chunk_size``), as JobConfig declares
    it: its help, its type or choices; an option left unsaid stays None (the job file's
    value, or the default, holds)."""
    options = file_keys()
    for key in keys:
        flag = "--" + key.replace("_", "-")
        if key not in options:  # transform_sql
            sp.add_argument(flag, dest=key, help="Polars SQL over the frame 'self'")
            continue
        name, option = options[key]
        help = SOURCE_HELP if key == "source" else option.help
        kw: dict[str, Any] = {"dest": key, "help": help, "required": key in required}
        if option.kind == "bool":
            tristate = JobConfig.__dataclass_fields__[name].default is None
            kw["action"] = argparse.BooleanOptionalAction if tristate else "store_true"
            kw["default"] = None
        elif option.kind == "choice":  # shown, and checked where JobConfig checks them all
            kw["metavar"] = "{" + ",".join(option.choices) + "}"
        elif option.kind in _FLAG_TYPES:
            kw["type"] = _FLAG_TYPES[option.kind]
        sp.add_argument(flag, **kw)


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
    with RustPanicFilter():
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


def _job_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = load_job_file(args.job_file) if args.job_file else {}
    for key in [*file_keys(), *EXTRA_KEYS]:
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    opts.setdefault("source", os.environ.get("ARROWMAPPER_SOURCE"))
    opts.setdefault("target", os.environ.get("ARROWMAPPER_TARGET"))
    files = bool(opts.get("source")) and is_file_source(opts["source"])
    for key, hint in (
        ("source", "--source URI or $ARROWMAPPER_SOURCE"),
        ("target", "--target URI or $ARROWMAPPER_TARGET"),
        ("query", "--query SQL"),
        ("table", "--table NAME"),
    ):
        if key == "query" and files:  # files: no query loads every row
            opts[key] = opts.get(key) or ""
            continue
        if not opts.get(key):
            raise ConfigError(f"no {key}: pass {hint}" + (" (or put it in the job file)"))
    if opts.get("transform") and opts.get("transform_sql"):
        raise ConfigError("pass either transform or transform_sql, not both")
    return opts


def _map_query_options(o: dict[str, Any]) -> dict[str, Any]:
    """Job options (job-file keys) as :func:`arrowmapper.map_query` keywords."""
    options = file_keys()
    kwargs: dict[str, Any] = {}
    for key, value in o.items():
        if key in ("source", "query", "target", "table") or key not in options:
            continue
        name, option = options[key]
        kwargs[name] = RetryConfig(max_retries=value) if option.kind == "retry" else value
    kwargs["transform"] = o.get("transform") or o.get("transform_sql")
    return kwargs


def _run(args: argparse.Namespace) -> int:
    from . import api
    from .display import ProgressDisplay

    o = _job_options(args)
    kwargs = _map_query_options(o)
    display = ProgressDisplay() if not (args.quiet) else None
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
    from .run.progress import human_bytes

    given = args.source or os.environ.get("ARROWMAPPER_SOURCE")
    files = bool(given) and is_file_source(given)
    if not args.query and not files:  # a database source: as argparse said before files
        args.usage.error("the following arguments are required: --query")
    source = _need(args.source, "ARROWMAPPER_SOURCE", "--source")
    query = args.query or ""
    target = args.target or os.environ.get("ARROWMAPPER_TARGET") or None
    plan = api.plan_query(
        source,
        query,
        strategy=args.strategy or "auto",
        key=args.key,
        chunk_size=args.chunk_size,
        workers=args.workers,
        target=target if args.table else None,
        table=args.table,
        schema=args.schema,
        transform=args.transform or args.transform_sql,
        mode=args.mode or "append",
        path=args.path or "auto",
    )
    columns = api.describe_columns(
        source,
        query,
        args.target or os.environ.get("ARROWMAPPER_TARGET") or None,
        args.table,
        schema=args.schema,
        transform=args.transform or args.transform_sql,
    )
    folder, file_rows = "", list[dict[str, Any]]()
    if files:
        from .sources.files import plan_files_table

        folder, file_rows = plan_files_table(plan)
    if args.json:
        out: dict[str, Any] = {
            "plan": json.loads(plan.to_json()),
            "columns": [c.__dict__ for c in columns],
        }
        if files:
            out["folder"] = folder
            out["files"] = [{**row, "size_human": human_bytes(row["size"])} for row in file_rows]
        print(json.dumps(out))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    console.print(f"strategy: [bold]{plan.strategy}[/bold] — {plan.reason}")
    if plan.path is not None:
        console.print(f"path: [bold]{plan.path}[/bold] — {plan.path_reason}", markup=True)
    console.print(f"{len(plan.chunks)} chunks, about {plan.estimated_rows or 0:,} rows")
    if files:
        total = sum(row["size"] for row in file_rows)
        console.print(
            f"{len(file_rows)} file{'s' if len(file_rows) != 1 else ''} in {folder}, "
            f"{total:,} bytes ({human_bytes(total)})",
            markup=False,
        )
        table = Table(box=None, pad_edge=False)
        for name in ("file", "format", "compression", "bytes", "size", "parts", "estimated rows"):
            table.add_column(name, overflow="fold")
        for row in file_rows:
            table.add_row(
                Text(row["path"]),
                row["format"],
                row["compression"] or "-",
                f"{row['size']:,}",
                human_bytes(row["size"]),
                row["parts"],
                "?" if row["rows"] is None else f"{row['rows']:,}",
            )
        _print_whole(console, table)
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


def _print_whole(console: Any, table: Any) -> None:
    """``table`` printed unwrapped when the output is not a terminal (a pipe, a log: its 80
    columns would fold the file names); folded to the terminal's width otherwise."""
    if console.is_terminal:
        console.print(table)
        return
    from rich.measure import Measurement

    wide = Measurement.get(console, console.options.update_width(10_000), table).maximum
    narrow = console.width
    console.width = max(narrow, wide)
    try:
        console.print(table)
    finally:
        console.width = narrow


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
    from .demo import run_demo, sample_data
    from .display import ProgressDisplay

    if args.sample_data:
        print(sample_data(args.sample_data, args.schema, args.rows or 20_000))
        return EXIT_OK
    args.rows = 1_000_000 if args.rows is None else args.rows
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
