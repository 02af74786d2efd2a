"""Drop-in names of the parallel mapper executor arrowmapper replaces.

Code written for that executor runs unchanged after ``from arrowmapper import ...``::

    retry_handler = RetryHandler(RetryConfig(max_retries=3))
    progress_tracker = ProgressTracker(total_chunks=10, callback=print)
    processor = ParallelProcessor(max_workers=4, chunk_size=50000,
                                  retry_handler=retry_handler, progress_tracker=progress_tracker)
    result = processor.process_mapper_job(source_conn=..., source_sql=..., target_conn=...,
                                          target_schema=..., target_table=...)

Like the old executor -- and unlike :func:`arrowmapper.map_query` -- these return a
:class:`ParallelProcessingResult` with ``success=False`` when chunks fail instead of raising.
Bad configuration still raises :class:`ConfigError` before any row moves.

Configuration precedence: explicit arguments > job ``params`` (``enable_parallel``,
``max_workers``, ``chunk_size``, ``min_rows_for_parallel``, ``batch_size``, ``strategy``,
``key``) > ``MAPPER_*`` environment variables > defaults. Below ``min_rows_for_parallel`` rows, or
with parallel disabled, the job runs as one chunk in this process through the same pipeline.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from .api import ProgressArg, prepare, run_prepared
from .config import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MIN_ROWS_FOR_PARALLEL,
    STRATEGIES,
    RetryConfig,
    Settings,
    check_reachable,
    check_table_name,
    parse_bool,
    parse_uri,
    resolve_settings,
)
from .errors import (
    PASS_THROUGH,
    ArrowMapperError,
    ConfigError,
    at_boundary,
    classify,
    printable,
)
from .plan import bare_table
from .run.progress import ProgressSnapshot
from .run.report import ChunkResult, JobResult
from .run.retry import backoff_delay, should_retry
from .sources import SourceProbe

log = logging.getLogger("arrowmapper")


class ChunkingStrategy(StrEnum):
    """How a job is split; the old executor's three names plus arrowmapper's own."""

    OFFSET_LIMIT = "offset"
    KEY_BASED = "key"
    ROWID_BASED = "rowid"  # PostgreSQL: ctid block ranges; SQLite: rowid ranges
    QUANTILE = "quantile"
    CTID = "ctid"
    AUTO = "auto"
    NONE = "none"


@dataclass(frozen=True)
class ChunkConfig:
    """How to chunk: size, strategy and key column (``strategy=None`` lets ``auto`` choose)."""

    chunk_size: int = DEFAULT_CHUNK_SIZE
    strategy: ChunkingStrategy | str | None = None
    key_column: str | None = None


class RetryHandler:
    """Retry policy of a job: exponential backoff with jitter (see :class:`RetryConfig`)."""

    def __init__(self, config: RetryConfig | None = None) -> None:
        if config is not None and not isinstance(config, RetryConfig):
            raise ConfigError(f"RetryHandler takes a RetryConfig, got {type(config).__name__}")
        self.config = config or RetryConfig()

    @property
    def max_retries(self) -> int:
        return self.config.max_retries

    def calculate_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based), jitter included."""
        return backoff_delay(self.config, attempt)

    def is_retryable(self, error: BaseException) -> bool:
        """Whether an error is transient (SQLSTATE 08xxx, 40001, 57P01, timeouts, ...)."""
        return classify(error)[0]

    def should_retry(self, attempt: int, error: BaseException | None = None) -> bool:
        """Whether a chunk that failed ``attempt`` times with ``error`` gets another try."""
        return should_retry(
            self.config, attempt, True if error is None else self.is_retryable(error)
        )


def create_retry_handler(
    max_retries: int = 3,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    backoff_factor: float = 2.0,
    jitter: float = 0.25,
) -> RetryHandler:
    """A :class:`RetryHandler` from plain numbers."""
    return RetryHandler(RetryConfig(max_retries, base_delay, max_delay, backoff_factor, jitter))


class ProgressTracker:
    """Receives a :class:`ProgressSnapshot` a few times a second and passes it to ``callback``.

    ``total_chunks`` is a hint: the real plan's chunk count replaces it once the job starts.
    """

    def __init__(
        self, total_chunks: int = 0, callback: Callable[[ProgressSnapshot], Any] | None = None
    ) -> None:
        self.total_chunks = total_chunks
        self.callback = callback
        self.latest: ProgressSnapshot | None = None

    def update(self, snapshot: ProgressSnapshot) -> None:
        self.total_chunks = snapshot.total_chunks
        self.latest = snapshot
        if self.callback is not None:
            self.callback(snapshot)

    __call__ = update

    def get_snapshot(self) -> ProgressSnapshot | None:
        return self.latest


def create_progress_callback(
    logger: logging.Logger | None = None, *, use_print: bool = False, min_interval: float = 1.0
) -> Callable[[ProgressSnapshot], None]:
    """A ready callback: one line per ``min_interval`` seconds (and at the end), logged or printed."""
    target = logger or logging.getLogger("arrowmapper.progress")
    last = [-1.0]

    def callback(s: ProgressSnapshot) -> None:
        if not s.done and last[0] >= 0 and s.elapsed_seconds - last[0] < min_interval:
            return
        last[0] = s.elapsed_seconds
        eta = "-" if s.eta_seconds is None else f"{s.eta_seconds:.0f}s"
        line = (
            f"Progress: {s.progress_percentage:.1f}% ({s.completed_chunks}/{s.total_chunks} "
            f"chunks, {s.failed_chunks} failed, {s.rows_processed:,} rows, "
            f"{s.rows_per_second:,.0f} rows/s, ETA {eta})"
        )
        if use_print:
            print(line, flush=True)
        else:
            target.info(line)

    return callback


@dataclass(frozen=True)
class ParallelProcessingResult:
    """The old executor's result shape, built from a :class:`JobResult` (kept as ``job``)."""

    success: bool
    total_rows: int
    total_chunks: int
    successful_chunks: int
    failed_chunks: int
    chunk_results: list[ChunkResult] = field(default_factory=list)
    duration_seconds: float = 0.0
    rows_per_second: float = 0.0
    errors: list[str] = field(default_factory=list)
    parallel: bool = True
    job: JobResult | None = None
    error: ArrowMapperError | None = None  # why the job could not run (success=False, no job)

    @classmethod
    def failure(cls, error: ArrowMapperError) -> ParallelProcessingResult:
        """The result of a job that failed before or outside its chunks (``errors`` holds the
        message)."""
        return cls(False, 0, 0, 0, 0, errors=[str(error)], parallel=False, error=error)

    @classmethod
    def from_job(cls, job: JobResult, parallel: bool) -> ParallelProcessingResult:
        failed = len(job.failed_chunks)
        return cls(
            success=job.success,
            total_rows=job.rows_written,
            total_chunks=job.chunks,
            successful_chunks=job.chunks - failed,
            failed_chunks=failed,
            chunk_results=list(job.chunk_results),
            duration_seconds=job.elapsed_s,
            rows_per_second=job.rows_per_s,
            errors=job.errors,
            parallel=parallel,
            job=job,
        )


# --------------------------------------------------------------------------- connections

_ACCEPTED = (
    "a URI string (postgresql://, sqlite:///, mysql://), a psycopg 3 or psycopg2 connection, a "
    "sqlite3 connection, or a SQLAlchemy engine or connection"
)


def _pg_uri(
    user: str | None, password: str | None, host: str | None, port: Any, dbname: str | None
) -> str:
    auth = quote(user or "", safe="")
    if password:
        auth += ":" + quote(password, safe="")
    if auth:
        auth += "@"
    if host and host.startswith("/"):
        return f"postgresql://{auth}/{dbname or ''}?host={quote(host, safe='')}&port={port or 5432}"
    return f"postgresql://{auth}{host or 'localhost'}:{port or 5432}/{dbname or ''}"


def connection_uri(conn: object, role: str = "source") -> str:
    """The URI of a connection object, so worker processes can open their own connections."""
    if isinstance(conn, str):
        return conn
    module = type(conn).__module__.split(".")[0]
    if isinstance(conn, sqlite3.Connection):
        rows = conn.execute("PRAGMA database_list").fetchall()
        path = next((r[2] for r in rows if r[1] == "main"), "")
        if not path:
            raise ConfigError(
                f"{role}_conn is an in-memory SQLite connection; worker processes cannot see it: "
                "use a database file"
            )
        return f"sqlite://{path}"
    if module == "psycopg":
        info = conn.info  # type: ignore[attr-defined]
        return _pg_uri(info.user, info.password, info.host, info.port, info.dbname)
    if module == "psycopg2":
        params = conn.get_dsn_parameters()  # type: ignore[attr-defined]
        password = getattr(getattr(conn, "info", None), "password", None)
        return _pg_uri(
            params.get("user"),
            password,
            params.get("host"),
            params.get("port"),
            params.get("dbname"),
        )
    if module == "sqlalchemy":
        engine: Any = getattr(conn, "engine", conn)
        url = engine.url
        backend = url.get_backend_name()
        if backend == "sqlite":
            if not url.database or url.database == ":memory:":
                raise ConfigError(f"{role}_conn is an in-memory SQLite engine: use a database file")
            return f"sqlite://{os.path.abspath(url.database)}"
        if backend in ("postgresql", "mysql", "mariadb", "mssql", "oracle"):
            scheme = {"mariadb": "mysql"}.get(backend, backend)
            return str(url.set(drivername=scheme).render_as_string(hide_password=False))
        raise ConfigError(f"{role}_conn: SQLAlchemy backend {backend!r} is not supported")
    raise ConfigError(f"{role}_conn must be {_ACCEPTED}; got {type(conn).__name__}")


# --------------------------------------------------------------------------- the processor


def _strategy_name(strategy: ChunkingStrategy | str | None, dialect: str) -> str:
    if strategy is None:
        return "auto"
    value = strategy.value if isinstance(strategy, ChunkingStrategy) else str(strategy)
    if value == "rowid" and dialect == "postgresql":
        return "ctid"
    return value


def _estimate_rows(probe: SourceProbe) -> int:
    """PostgreSQL's planner estimate for a plain table, else a count."""
    if probe.dialect == "postgresql" and bare_table(probe.query, "postgresql") is not None:
        try:
            _, est = probe.heap_blocks()
            if est > 0:
                return est
        except Exception:
            pass
    return probe.count()


class ParallelProcessor:
    """Runs mapper jobs on arrowmapper's process pool (the old executor's entry point)."""

    def __init__(
        self,
        max_workers: int | None = None,
        chunk_size: int | None = None,
        retry_handler: RetryHandler | None = None,
        progress_tracker: ProgressTracker | None = None,
        chunk_config: ChunkConfig | None = None,
    ) -> None:
        if chunk_config is not None and not isinstance(chunk_config, ChunkConfig):
            raise ConfigError(
                f"chunk_config must be a ChunkConfig, got {type(chunk_config).__name__}"
            )
        if retry_handler is not None and not isinstance(retry_handler, RetryHandler):
            raise ConfigError(
                f"retry_handler must be a RetryHandler, got {type(retry_handler).__name__}"
            )
        self.max_workers = max_workers
        self.chunk_size = (
            chunk_size
            if chunk_size is not None
            else (chunk_config.chunk_size if chunk_config else None)
        )
        self.retry_handler = retry_handler or RetryHandler()
        self.progress_tracker = progress_tracker
        self.chunk_config = chunk_config
        resolve_settings({"workers": max_workers, "chunk_size": self.chunk_size})  # validate now

    def settings(self, params: Mapping[str, Any] | None = None) -> Settings:
        """Sizing after precedence: arguments > params > MAPPER_* env > defaults."""
        return resolve_settings(
            {"workers": self.max_workers, "chunk_size": self.chunk_size},
            params,
            defaults={"min_rows_for_parallel": DEFAULT_MIN_ROWS_FOR_PARALLEL},
        )

    def process_mapper_job(
        self,
        source_conn: Any,
        source_sql: str,
        target_conn: Any,
        target_schema: str | None,
        target_table: str,
        transform: Any = None,
        strategy: ChunkingStrategy | str | None = None,
        key: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> ParallelProcessingResult:
        """Copy ``source_sql``'s result into ``target_schema.target_table``.

        Never raises once the configuration is accepted: a failed chunk, an unreachable or
        failing source or target come back as ``success=False`` with the message in
        ``result.errors`` (and the error in ``result.error``). Bad configuration raises
        :class:`ConfigError` (or :class:`PlanError`) before any row moves; Ctrl-C propagates."""
        try:
            return self._process(
                source_conn,
                source_sql,
                target_conn,
                target_schema,
                target_table,
                transform,
                strategy,
                key,
                params,
            )
        except PASS_THROUGH:
            raise
        except BaseException as exc:
            error = at_boundary(exc, "process_mapper_job")
            if error.kind == "config":
                if error is exc:
                    raise
                raise error from printable(exc)
            log.error("mapper job failed: %s", error)
            return ParallelProcessingResult.failure(error)

    def _process(
        self,
        source_conn: Any,
        source_sql: str,
        target_conn: Any,
        target_schema: str | None,
        target_table: str,
        transform: Any,
        strategy: ChunkingStrategy | str | None,
        key: str | None,
        params: Mapping[str, Any] | None,
    ) -> ParallelProcessingResult:
        if params is not None and not isinstance(params, Mapping):
            raise ConfigError(f"params must be a mapping of job parameters, got {params!r}")
        if not isinstance(source_sql, str) or not source_sql.strip():
            raise ConfigError(f"source_sql must be a non-empty SQL query, got {source_sql!r}")
        params = dict(params or {})
        settings = self.settings(params)
        src = parse_uri(connection_uri(source_conn, "source"), "source")
        dst = parse_uri(connection_uri(target_conn, "target"), "target")
        if dst.dialect == "sqlite" and target_schema not in (None, "", "main"):
            log.warning("a SQLite target has no schemas: ignoring target_schema=%r", target_schema)
        schema = None if dst.dialect == "sqlite" else (target_schema or None)
        cc = self.chunk_config
        strategy = strategy or params.get("strategy") or (cc.strategy if cc else None)
        key = key or params.get("key") or (cc.key_column if cc else None)
        named = _strategy_name(strategy, src.dialect)
        if named not in STRATEGIES:  # checked even when the job runs as one chunk
            raise ConfigError(
                f"strategy must be one of {', '.join(STRATEGIES)} (or a ChunkingStrategy); "
                f"got {named!r}"
            )
        parallel = settings.parallel_enabled
        if parallel and settings.min_rows_for_parallel > 0:
            check_reachable(src, "source")  # in seconds, not after connectorx's 30 s of retries
            rows = _estimate_rows(SourceProbe(src, source_sql))
            parallel = rows >= settings.min_rows_for_parallel
            if not parallel:
                log.info(
                    "%d rows < min_rows_for_parallel=%d: one chunk in this process",
                    rows,
                    settings.min_rows_for_parallel,
                )
        check_table_name(target_table)
        # the URIs as given: a ${NAME} password is expanded by each process, never pickled
        prepared = prepare(
            src.template or src.uri,
            source_sql,
            dst.template or dst.uri,
            target_table,
            schema=schema,
            transform=transform,
            strategy=_strategy_name(strategy, src.dialect) if parallel else "none",
            key=key if parallel else None,
            workers=settings.workers,
            chunk_size=settings.chunk_size,
            batch_size=settings.batch_size,
            mode="append",
            retry=self.retry_handler.config,
            job_id=params.get("job_id"),
            resume=parse_bool("params['resume']", params.get("resume", False)),
            params=params,
        )
        spec = prepared.spec if parallel else dataclasses.replace(prepared.spec, in_process=True)
        progress: ProgressArg = self.progress_tracker.update if self.progress_tracker else None
        job = run_prepared(spec, progress)
        return ParallelProcessingResult.from_job(job, parallel)


def execute_query_parallel(
    source_conn: Any,
    source_sql: str,
    target_conn: Any,
    target_schema: str | None,
    target_table: str,
    transform: Any = None,
    strategy: ChunkingStrategy | str | None = None,
    key: str | None = None,
    params: Mapping[str, Any] | None = None,
    max_workers: int | None = None,
    chunk_size: int | None = None,
    max_retries: int | None = None,
    progress_callback: Callable[[ProgressSnapshot], Any] | None = None,
    retry_config: RetryConfig | None = None,
) -> ParallelProcessingResult:
    """One call for generated mapper code: builds a :class:`ParallelProcessor` and runs the job."""
    config = retry_config or RetryConfig()
    if max_retries is not None:
        config = dataclasses.replace(config, max_retries=max_retries)
    tracker = ProgressTracker(0, progress_callback) if progress_callback else None
    processor = ParallelProcessor(max_workers, chunk_size, RetryHandler(config), tracker)
    return processor.process_mapper_job(
        source_conn,
        source_sql,
        target_conn,
        target_schema,
        target_table,
        transform=transform,
        strategy=strategy,
        key=key,
        params=params,
    )
