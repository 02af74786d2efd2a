"""Command line: ``arrowmapper run | plan | demo`` (also ``python -m arrowmapper``).

Exit codes: 0 success, 1 job failed, 2 bad usage or configuration, 3 cannot connect.
Errors print one line on stderr (no traceback unless ``--debug``) and never a password.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .errors import (
    ArrowMapperError,
    ConfigError,
    JobFailed,
    PlanError,
    SourceError,
    TargetError,
    redact,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONNECT = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arrowmapper", description=__doc__.splitlines()[0] if __doc__ else None
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--source",
            default=os.environ.get("ARROWMAPPER_SOURCE"),
            help="source URI (or $ARROWMAPPER_SOURCE)",
        )
        sp.add_argument("--query", required=True, help="SQL query or table name")
        sp.add_argument("--strategy", default="auto")
        sp.add_argument("--key")
        sp.add_argument("--chunk-size", type=int)
        sp.add_argument("--workers", type=int)

    run = sub.add_parser("run", help="copy a query's result into a table")
    common(run)
    run.add_argument(
        "--target",
        default=os.environ.get("ARROWMAPPER_TARGET"),
        help="target URI (or $ARROWMAPPER_TARGET)",
    )
    run.add_argument("--table", required=True)
    run.add_argument("--schema")
    run.add_argument("--transform-sql", help="Polars SQL over the frame 'self'")
    run.add_argument("--transform", help="'package.module:function'")
    run.add_argument("--mode", default="append")
    run.add_argument("--max-retries", type=int, default=3)
    run.add_argument("--job-id")
    run.add_argument("--resume", action="store_true")
    run.add_argument("--quiet", action="store_true")
    run.add_argument("--json", action="store_true", help="print the JobResult as JSON")

    plan = sub.add_parser("plan", help="show the chunk plan without moving data")
    common(plan)

    demo = sub.add_parser("demo", help="SQLite -> Polars -> SQLite with no server, verified")
    demo.add_argument("--rows", type=int, default=1_000_000)
    demo.add_argument("--workers", type=int, default=4)
    demo.add_argument("--dir", help="where to put source.db and target.db")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``arrowmapper`` command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return _dispatch(args)
    except JobFailed as exc:
        print(f"arrowmapper: {redact(str(exc))}", file=sys.stderr)
        if getattr(args, "json", False):
            print(exc.result.to_json())
        return EXIT_FAILED
    except (ConfigError, PlanError) as exc:
        print(f"arrowmapper: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except (SourceError, TargetError) as exc:
        print(f"arrowmapper: {redact(str(exc))}", file=sys.stderr)
        return EXIT_CONNECT if "cannot connect" in str(exc) else EXIT_FAILED
    except ArrowMapperError as exc:
        if args.debug:
            raise
        print(f"arrowmapper: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED


def _dispatch(args: argparse.Namespace) -> int:
    from . import api
    from .config import RetryConfig
    from .demo import run_demo

    if args.command == "demo":
        return run_demo(rows=args.rows, workers=args.workers, directory=args.dir)
    if not args.source:
        raise ConfigError("no source: pass --source URI or set ARROWMAPPER_SOURCE")
    if args.command == "plan":
        plan = api.plan_query(
            args.source,
            args.query,
            strategy=args.strategy,
            key=args.key,
            chunk_size=args.chunk_size,
            workers=args.workers,
        )
        print(plan.describe())
        return EXIT_OK
    if not args.target:
        raise ConfigError("no target: pass --target URI or set ARROWMAPPER_TARGET")
    if args.transform and args.transform_sql:
        raise ConfigError("pass either --transform or --transform-sql, not both")
    result = api.map_query(
        args.source,
        args.query,
        args.target,
        args.table,
        schema=args.schema,
        transform=args.transform or args.transform_sql,
        strategy=args.strategy,
        key=args.key,
        workers=args.workers,
        chunk_size=args.chunk_size,
        mode=args.mode,
        retry=RetryConfig(max_retries=args.max_retries),
        job_id=args.job_id,
        resume=args.resume,
        progress=not (args.quiet or args.json),
    )
    if args.json:
        print(result.to_json())
    elif not args.quiet:
        print(result.summary())
    return EXIT_OK
