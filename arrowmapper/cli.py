"""Command line: ``arrowmapper run | plan | verify | jobs | status | clean | demo | bench``
(also ``python -m arrowmapper``).

Exit codes: 0 success, 1 job failed (``verify``: a mismatch), 2 bad usage or configuration,
3 cannot connect, 4 ``verify`` checked nothing because a later job replaced or emptied the
table, 130 interrupted (Ctrl-C).
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
    in_flags,
    printable,
    redact,
)
from .panicfilter import RustPanicFilter

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONNECT = 0, 1, 2, 3
EXIT_SUPERSEDED = 4  # verify: a later job replaced or emptied the table; nothing to compare
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
    ver.add_argument("job_file", nargs="?", help="the TOML job file of the job to verify")
    ver.add_argument("--job-file", dest="job_file_flag", help="the same, as a flag")
    ver.add_argument("--job-id", help="the job (default: the job file's job_id)")
    ver.add_argument("--schema", help="the target schema the job loaded into")
    ver.add_argument("--transform", help="the job's 'package.module:function', if it had one")
    ver.add_argument("--transform-sql", help="the job's Polars SQL transform, if it had one")
    ver.add_argument(
        "--counts-only",
        action="store_true",
        help="compare row counts only (no re-read of the source data)",
    )
    ver.add_argument("--json", action="store_true")

    jobs = sub.add_parser(
        "jobs",
        help="list the jobs in a target's ledger",
        description="List every job in the target's ledger (arrowmapper_jobs and "
        "arrowmapper_ledger in one schema): id, name, table, state, chunks committed of "
        "planned, rows, start and duration. 'running': a run is loading one of its chunks "
        "now (known on PostgreSQL); 'committed, not finished': every chunk committed but the "
        "run stopped before its finish step (resume it to finish); 'unfinished': it failed "
        "or was interrupted (or, on SQLite, may still be running).",
    )
    jobs.add_argument("target_uri", nargs="?", help="target URI (default: $ARROWMAPPER_TARGET)")
    jobs.add_argument("--target", dest="target_flag", help=argparse.SUPPRESS)
    jobs.add_argument("--schema", help="the schema whose ledger to read (PostgreSQL)")
    jobs.add_argument("--table", help="only the jobs that filled this table")
    jobs.add_argument("--json", action="store_true", help="one JSON list on stdout")

    stat = sub.add_parser(
        "status",
        help="one job in detail: chunks committed and missing, rows, how to resume",
    )
    stat.add_argument("job_id", help="the job id")
    stat.add_argument("--target", help="target URI (default: $ARROWMAPPER_TARGET)")
    stat.add_argument("--schema", help="the schema the job loaded into (PostgreSQL)")
    stat.add_argument("--json", action="store_true")

    clean = sub.add_parser(
        "clean",
        help="forget a job: its ledger rows, jobs row and staging table (--rows: its rows)",
        description="Remove a job's ledger rows, its jobs row and any staging table it left "
        "(a replace job), in one transaction. With --rows, also delete the rows an "
        "unfinished append or truncate job loaded (found by the ledger's locators; refused "
        "for a finished job, a merge, or a table changed since). A job a run is loading "
        "now is refused on PostgreSQL; on SQLite make sure it is not running.",
    )
    clean.add_argument("job_id", help="the job id")
    clean.add_argument("--target", help="target URI (default: $ARROWMAPPER_TARGET)")
    clean.add_argument("--schema", help="the schema the job loaded into (PostgreSQL)")
    clean.add_argument(
        "--rows", action="store_true", help="also delete the rows the unfinished job loaded"
    )
    clean.add_argument("--json", action="store_true")

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
    "tables",
    "include_views",
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

    Exit codes: 0 done, 1 the job failed (``verify``: a mismatch), 2 bad usage or
    configuration, 3 cannot connect, 4 ``verify`` compared nothing (a later job replaced or
    emptied the table), 130 interrupted (Ctrl-C). The code comes from the error's kind (see
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
    text = in_flags(" ".join(str(exc).split()), cli_flags())
    print(f"arrowmapper: {redact(text)}", file=sys.stderr)


def cli_flags() -> dict[str, str]:
    """Each API keyword (and job-file key) -> the flag that sets it (``chunk_size`` ->
    ``--chunk-size``), for messages written in the API's words."""
    flags = {key: "--" + key.replace("_", "-") for key in [*file_keys(), *EXTRA_KEYS]}
    for key, (name, _) in file_keys().items():
        flags.setdefault(name, flags[key])
    return flags


def _dispatch(args: argparse.Namespace) -> int:
    handler = {
        "run": _run,
        "plan": _plan,
        "verify": _verify,
        "jobs": _jobs,
        "status": _status,
        "clean": _clean,
        "demo": _demo,
        "bench": _bench,
    }
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
    if opts.get("tables"):  # several tables: each loads the table of its own name
        for key in ("query", "table"):
            if opts.get(key):
                raise ConfigError(
                    f"--tables loads each table into the table of its name: drop --{key}"
                )
        for key, hint in (
            ("source", "--source URI or $ARROWMAPPER_SOURCE"),
            ("target", "--target URI or $ARROWMAPPER_TARGET"),
        ):
            if not opts.get(key):
                raise ConfigError(f"no {key}: pass {hint} (or put it in the job file)")
        return opts
    for key in TABLES_ONLY:
        if opts.get(key):
            raise ConfigError(f"--{key.replace('_', '-')} goes with --tables")
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
        raise ConfigError("pass either --transform or --transform-sql, not both")
    return opts


#: the options of ``run --tables`` (map_tables) that map_query has not
TABLES_ONLY = ("tables", "include_views", "constraints", "sequences")


def _map_query_options(o: dict[str, Any]) -> dict[str, Any]:
    """Job options (job-file keys) as :func:`arrowmapper.map_query` keywords (and, for
    ``--tables``, :func:`arrowmapper.map_tables`' own)."""
    options = file_keys()
    kwargs: dict[str, Any] = {}
    for key, value in o.items():
        if key in ("source", "query", "target", "table") or key not in options:
            continue
        if key in TABLES_ONLY and not o.get("tables"):
            continue
        name, option = options[key]
        if not option.api and key not in TABLES_ONLY:  # --log-file, --log-json: see _run
            continue
        kwargs[name] = RetryConfig(max_retries=value) if option.kind == "retry" else value
    kwargs["transform"] = o.get("transform") or o.get("transform_sql")
    return kwargs


def _run(args: argparse.Namespace) -> int:
    from . import api
    from .display import ProgressDisplay
    from .run.cursor import named_job_id
    from .run.prepare import new_job_id
    from .run.telemetry import configure_logging, remove_logging

    o = _job_options(args)
    kwargs = _map_query_options(o)
    logs = JobConfig.build({"log_file": o.get("log_file"), "log_json": o.get("log_json")})
    handler = configure_logging(logs.log_file, logs.log_json)
    try:
        if o.get("tables"):
            return _run_tables(args, o, kwargs)
        # the id is chosen here, so that Ctrl-C (or a crash) can still name the job to resume
        if kwargs.get("allow_duplicate") is None:  # a rerun that names no job is refused
            kwargs["allow_duplicate"] = bool(kwargs.get("job_id"))
        if not kwargs.get("job_id") and not kwargs.get("resume"):
            # a recurring job's runs are named after it (the name and the UTC time)
            name = kwargs.get("name")
            kwargs["job_id"] = named_job_id(name) if name else new_job_id()
        job = kwargs.get("job_id")
        # the job's id shows when it starts (a refused run names none)
        display = ProgressDisplay(header=f"job {job}" if job else None) if not args.quiet else None
        if display is None:
            result = api.map_query(o["source"], o["query"], o["target"], o["table"], **kwargs)
        else:
            with display:
                result = api.map_query(
                    o["source"], o["query"], o["target"], o["table"], progress=display, **kwargs
                )
    except KeyboardInterrupt:
        _interrupted(o, kwargs.get("job_id"), not o.get("job_id"))
        return EXIT_INTERRUPTED
    finally:
        remove_logging(handler)
    if args.json:
        print(result.to_json())
    elif not args.quiet:
        print(result.summary())
    return EXIT_OK


def _run_tables(args: argparse.Namespace, o: dict[str, Any], kwargs: dict[str, Any]) -> int:
    """``run --tables``: one line per table and the totals (exit 1 when a table failed)."""
    from . import api
    from .display import ProgressDisplay

    if kwargs.get("allow_duplicate") is None:  # as for one table: a rerun naming no job is refused
        kwargs["allow_duplicate"] = bool(kwargs.get("job_id"))
    if args.quiet:
        tables = api.map_tables(o["source"], o["target"], **kwargs)
    else:
        with ProgressDisplay() as shown:  # one bar for every table's chunks
            tables = api.map_tables(o["source"], o["target"], progress=shown, **kwargs)
    if args.json:
        print(tables.to_json())
    elif not args.quiet:
        print(tables.summary())
    return EXIT_OK if tables.success else EXIT_FAILED


def _interrupted(o: dict[str, Any], job_id: str | None, add_id: bool) -> None:
    """After Ctrl-C: the job, what it committed (from the ledger) and the command that
    loads the rest -- this very command line, with ``--job-id`` and ``--resume``."""
    import shlex

    from .config import parse_uri
    from .run.prepare import table_ref
    from .targets import LEDGER, job_info, open_target

    done = "no chunk committed"
    try:
        dst = parse_uri(o["target"], "target")
        if job_id and not (dst.rules.file and not Path(dst.path or "").is_file()):
            with open_target(dst, table_ref(dst, o.get("schema"), LEDGER)) as target:
                job = job_info(target, job_id)
            done = f"{job.committed} of {_n(job.planned, 'chunk')} committed ({_n(job.rows, 'row')})"
    except ConfigError:
        pass  # interrupted before the job was registered: nothing of it is in the target
    except Exception as exc:  # the ledger could not be read: say so, never hide the id
        done = f"what was committed is unknown ({redact(str(exc))})"
    argv = sys.argv[1:]
    words = []
    for i, a in enumerate(argv):  # a URI with a password: the variable that holds it
        flag = argv[i - 1] if i else ""
        if redact(a) != a and flag in ("--source", "--target"):
            words.append(f'"$ARROWMAPPER_{flag[2:].upper()}"')
        else:
            words.append(shlex.quote(redact(a)))
    if add_id and job_id:
        words += ["--job-id", shlex.quote(job_id)]
    if "--resume" not in argv:
        words.append("--resume")
    print(
        f"arrowmapper: interrupted: job {job_id or '?'}: {done}; what was committed stays "
        f"committed. Load the rest with: arrowmapper {' '.join(words)}",
        file=sys.stderr,
    )


# --------------------------------------------------------------------------- plan, verify


def _need(value: str | None, env: str, flag: str) -> str:
    value = value or os.environ.get(env)
    if not value:
        raise ConfigError(f"no {flag.strip('-')}: pass {flag} URI or set {env}")
    return value


def _plan(args: argparse.Namespace) -> int:
    from . import api
    from .run.progress import human_bytes

    if args.tables:
        return _plan_tables(args)
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
    from rich.table import Table
    from rich.text import Text

    from .display import console as make_console

    console = make_console()
    console.print(f"strategy: [bold]{plan.strategy}[/bold] — {plan.reason}")
    if plan.path is not None:
        console.print(f"path: [bold]{plan.path}[/bold] — {plan.path_reason}", markup=True)
    console.print(f"{_n(len(plan.chunks), 'chunk')}, about {_n(plan.estimated_rows or 0, 'row')}")
    for note in plan.notes:
        console.print(f"note: {note}", markup=False)
    if files:
        total = sum(row["size"] for row in file_rows)
        console.print(
            f"{_n(len(file_rows), 'file')} in {folder}, "
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
    _print_whole(console, chunks)
    cols = Table(
        "column", "source type", "arrow type", "target type", "path", box=None, pad_edge=False
    )
    for m in columns:
        cols.add_row(
            m.name, m.source_type or "-", m.arrow_type, m.target_type or "-", m.note or "-"
        )
    _print_whole(console, cols)
    return EXIT_OK


def _plan_tables(args: argparse.Namespace) -> int:
    """``plan --tables``: each table's plan (strategy, chunks, estimated rows)."""
    from . import api

    if args.query or args.table:
        raise ConfigError("--tables plans each table by its name: drop --query and --table")
    plans = api.plan_tables(
        _need(args.source, "ARROWMAPPER_SOURCE", "--source"),
        args.tables,
        include_views=bool(args.include_views),
        strategy=args.strategy or "auto",
        key=args.key,
        chunk_size=args.chunk_size,
        workers=args.workers,
    )
    if args.json:
        print(json.dumps({t: json.loads(p.to_json()) for t, p in plans.items()}))
        return EXIT_OK
    total = 0
    for table, plan in plans.items():
        rows = plan.estimated_rows or 0
        total += rows
        print(
            f"{table}: {plan.strategy} ({plan.reason}); {len(plan.chunks)} chunks, "
            f"about {rows:,} rows"
        )
    print(
        f"{len(plans)} tables, {sum(len(p.chunks) for p in plans.values())} chunks, about {total:,} rows"
    )
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

    path = args.job_file or args.job_file_flag
    o: dict[str, Any] = load_job_file(path) if path else {}
    job_id = args.job_id or o.get("job_id")
    if not job_id:
        raise ConfigError(
            "no job to verify: pass --job-id ID, or --job-file FILE with a job_id in it"
        )
    report = api.verify(
        _need(args.source or o.get("source"), "ARROWMAPPER_SOURCE", "--source"),
        _need(args.target or o.get("target"), "ARROWMAPPER_TARGET", "--target"),
        job_id,
        schema=args.schema or o.get("schema"),
        transform=args.transform or args.transform_sql or o.get("transform")
        or o.get("transform_sql"),
        checksums=not args.counts_only,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "job_id": report.job_id,
                    "table": report.table,
                    "ok": report.ok,
                    "state": report.state,
                    "superseded": report.superseded,
                    "target_rows": report.target_rows,
                    "ledger_rows": report.ledger_rows,
                    "chunks": [c.__dict__ for c in report.checks],
                }
            )
        )
    else:
        print(report.summary())
    if report.superseded:
        return EXIT_SUPERSEDED
    return EXIT_OK if report.ok else EXIT_FAILED


# --------------------------------------------------------------------------- jobs, status, clean


def _ledger_target(uri: str | None, schema: str | None) -> Any:
    """The target whose ledger (in ``schema``) the jobs commands read; a SQLite file that
    does not exist is an error, never created."""
    from .config import check_reachable, parse_uri
    from .run.prepare import table_ref
    from .targets import LEDGER, open_target

    dst = parse_uri(_need(uri, "ARROWMAPPER_TARGET", "--target"), "target")
    if dst.rules.file and not (dst.path and Path(dst.path).is_file()):
        raise ConfigError(f"target SQLite file {dst.path} does not exist; check the path")
    check_reachable(dst, "target")
    return open_target(dst, table_ref(dst, schema, LEDGER))


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


def _jobs(args: argparse.Namespace) -> int:
    from datetime import UTC

    from rich.table import Table

    from .display import console
    from .targets import list_jobs

    with _ledger_target(args.target_uri or args.target_flag, args.schema) as target:
        jobs = list_jobs(target, args.table)
    if args.json:
        print(json.dumps([j.to_dict() for j in jobs]))
        return EXIT_OK
    out = console()
    if not jobs:
        out.print("no jobs in this target's ledger", markup=False)
        return EXIT_OK
    named = any(j.name for j in jobs)
    table = Table(box=None, pad_edge=False)
    heads = ["job id", *(["name"] if named else []), "table", "state", "chunks", "rows"]
    for head in [*heads, "started (UTC)", "duration"]:
        table.add_column(head, no_wrap=True)
    for j in jobs:
        started = j.started.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if j.started else "-"
        table.add_row(
            j.job_id,
            *([j.name or "-"] if named else []),
            j.table,
            _STATE_WORDS.get(j.state, j.state),
            f"{j.committed}/{j.planned}",
            f"{j.rows:,}",
            started,
            _ago(j.duration_s),
        )
    _print_whole(out, table)
    return EXIT_OK


#: how the jobs table and status name a state whose one word would mislead
_STATE_WORDS = {"committed": "committed, not finished: resume to finish"}


def _uri_word(uri: str, env: str) -> str:
    """``uri`` as a word of a command meant to be run: itself when it holds no password,
    else ``"$ARROWMAPPER_SOURCE"`` / ``"$ARROWMAPPER_TARGET"`` (never a ``***`` placeholder,
    which would run and fail, nor the password)."""
    import shlex

    from .redact import redact as hide

    return shlex.quote(uri) if hide(uri) == uri else f'"${env}"'


def resume_command(
    job: Any, target: str, schema: str | None, run: Any = None
) -> tuple[str, list[str]]:
    """The command that resumes ``job``, and notes on what it needs. The source is the one
    the fingerprint shows (without its password): one that named a user is
    ``"$ARROWMAPPER_SOURCE"``, as is a target with a password ``"$ARROWMAPPER_TARGET"``. A run
    of a recurring job (``run``: its marks row) is resumed with its name, cursor and the
    name's own query (not the run's bounded one), as it was started."""
    import shlex

    fp = job.fingerprint or {}
    notes: list[str] = []
    words = ["arrowmapper", "run"]
    source = fp.get("source")
    if source:
        if "@" in source.partition("://")[2].partition("/")[0]:
            words += ["--source", '"$ARROWMAPPER_SOURCE"']
            notes.append(f"$ARROWMAPPER_SOURCE: the job's source {source} with its password")
        else:
            words += ["--source", shlex.quote(source)]
    query = run.definition["query"] if run is not None else fp.get("query")
    if query:
        words += ["--query", shlex.quote(query)]
    target_word = _uri_word(target, "ARROWMAPPER_TARGET")
    if target_word.startswith('"'):
        notes.append("$ARROWMAPPER_TARGET: the target URI with its password")
    words += ["--target", target_word, "--table", shlex.quote(job.table.rpartition(".")[2])]
    if schema:
        words += ["--schema", shlex.quote(schema)]
    name = run.name if run is not None else job.name
    if name:
        words += ["--name", shlex.quote(name)]
    if run is not None:
        words += ["--cursor", shlex.quote(run.definition["cursor_column"])]
    for key in ("key", "strategy", "mode"):
        if fp.get(key) and not (key == "mode" and fp[key] == "append"):
            words += ["--" + key, shlex.quote(fp[key])]
    words += ["--job-id", shlex.quote(job.job_id), "--resume"]
    text = " ".join(words)
    if fp.get("transform", "identity") not in ("identity", "none", ""):  # stored as a hash
        text += "  # and the job's --transform"
    return text, notes


def _status(args: argparse.Namespace) -> int:
    from .targets import job_info

    target_uri = _need(args.target, "ARROWMAPPER_TARGET", "--target")
    with _ledger_target(target_uri, args.schema) as target:
        job = job_info(target, args.job_id)
        run = None if job.finished else target.run_owner(job.job_id)
    resume, needs = (
        (None, []) if job.finished else resume_command(job, target_uri, args.schema, run)
    )
    if args.json:
        print(json.dumps({**job.to_dict(), "resume": resume, "resume_needs": needs}))
        return EXIT_OK
    lines = [
        f"job {job.job_id}" + (f" ({job.name})" if job.name else ""),
        f"  table:     {job.table}" + (f" (loading {job.load_table})" if job.staged else ""),
        f"  state:     {_STATE_WORDS.get(job.state, job.state)}",
        f"  strategy:  {job.strategy or '-'}" + (f", mode {job.mode}" if job.mode else ""),
        f"  chunks:    {job.committed} of {job.planned} committed"
        + (f"; missing: {_ids(job.missing)}" if job.missing else ""),
        f"  rows:      {job.rows:,}",
        f"  started:   {job.started.isoformat() if job.started else '-'}",
        f"  duration:  {_ago(job.duration_s)}",
    ]
    if resume and job.state == "committed":
        lines.append(
            "  finish:    every chunk is committed; the run stopped before its finish step "
            "(a replace job's swap, marking the job finished). Resuming loads no rows, it "
            f"only finishes: {resume}"
        )
    elif resume:
        lines.append(f"  resume:    {resume}")
        lines.extend(f"             ({n})" for n in needs)
        lines.append(f"  or forget: arrowmapper clean {job.job_id} --target ... --rows")
    print("\n".join(lines))
    return EXIT_OK


def _ids(ids: Sequence[int], most: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _clean(args: argparse.Namespace) -> int:
    from .targets import clean_job, job_info

    with _ledger_target(args.target, args.schema) as target:
        job = job_info(target, args.job_id)
        done = clean_job(target, job, delete_rows=args.rows)
    if args.json:
        print(json.dumps(done.__dict__))
        return EXIT_OK
    print(
        f"job {done.job_id} cleaned: {_n(done.ledger_rows, 'ledger row')} removed"
        + (f", staging table {done.stage_dropped} dropped" if done.stage_dropped else "")
        + (
            f", {_n(done.rows_deleted, 'row')} deleted from {job.table}"
            if done.rows_deleted is not None
            else ""
        )
    )
    if not job.finished and not args.rows and job.rows and not job.staged:
        print(
            f"note: the {_n(job.rows, 'row')} it loaded stay in {job.table}; a new job "
            "would load them again (clean --rows deletes them)",
            file=sys.stderr,
        )
    return EXIT_OK


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


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
