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
from collections.abc import Mapping
from typing import Any

from ..config import (
    DEFAULT_MIN_ROWS_FOR_PARALLEL,
    JobConfig,
    RetryConfig,
    Settings,
    check_reachable,
    parse_uri,
    settings_of,
)
from ..config.files import names_files
from ..errors import PASS_THROUGH, ArrowMapperError, ConfigError, at_boundary, printable
from ..plan import bare_table
from ..run.finish import ProgressArg, run_prepared
from ..run.prepare import check_endpoints, prepare_job, target_rules
from ..run.progress import ProgressSnapshot
from ..run.report import ChunkResult, JobResult
from ..sources import SourceProbe, open_source, source_dialect, source_endpoint
from .connections import connection_uri
from .jobs import MapperJob, QueryJob, called_as, method_called_as
from .records import (
    ChunkConfig,
    ChunkingStrategy,
    ParallelProcessingResult,
    ProgressTracker,
    RetryHandler,
    create_progress_callback,
    create_retry_handler,
)

log = logging.getLogger("arrowmapper")


__all__ = [
    "ArrowMapperError",
    "ChunkConfig",
    "ChunkResult",
    "ChunkingStrategy",
    "ParallelProcessingResult",
    "ParallelProcessor",
    "ProgressSnapshot",
    "ProgressTracker",
    "JobResult",
    "RetryConfig",
    "RetryHandler",
    "connection_uri",
    "create_progress_callback",
    "create_retry_handler",
    "execute_query_parallel",
]


# --------------------------------------------------------------------------- the processor


def _strategy_name(strategy: ChunkingStrategy | str | None, dialect: str) -> str:
    if strategy is None:
        return "auto"
    value = strategy.value if isinstance(strategy, ChunkingStrategy) else str(strategy)
    return source_dialect(dialect).rowid if value == "rowid" else value


def _estimate_rows(probe: SourceProbe) -> int:
    """The planner's estimate for a plain table where the source keeps one, else a count."""
    if source_dialect(probe.dialect).estimates and bare_table(probe.query, probe.dialect):
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
        self.chunk_size = chunk_size
        if chunk_size is None and chunk_config is not None and chunk_config.chunk_size_given:
            self.chunk_size = chunk_config.chunk_size
        self.retry_handler = retry_handler or RetryHandler()
        self.progress_tracker = progress_tracker
        self.chunk_config = chunk_config
        self.config()  # bad sizes are refused now

    def config(
        self, params: Mapping[str, Any] | None = None, dialect: str = "other", **arguments: Any
    ) -> JobConfig:
        """The job's options after precedence: arguments (this processor's and ``arguments``)
        > ``params`` > MAPPER_* env > defaults (a ChunkConfig's strategy and key rank with the
        defaults). A strategy in any layer may be a :class:`ChunkingStrategy`; ``rowid`` on a
        PostgreSQL source (``dialect``) means ctid ranges."""
        cc = self.chunk_config
        params = dict(params or {})
        for layer in (params, arguments):
            for name in ("strategy", "key"):  # the old executor read "" as "not given"
                if layer.get(name) == "":
                    layer[name] = None
            if layer.get("strategy") is not None:
                layer["strategy"] = _strategy_name(layer["strategy"], dialect)
        defaults = {
            "min_rows_for_parallel": DEFAULT_MIN_ROWS_FOR_PARALLEL,
            "strategy": _strategy_name(cc.strategy, dialect) if cc and cc.strategy else None,
            "key": (cc.key_column or None) if cc else None,
        }
        own = {"workers": self.max_workers, "chunk_size": self.chunk_size}
        return JobConfig.build({**own, **arguments}, params, defaults=defaults)

    def settings(self, params: Mapping[str, Any] | None = None) -> Settings:
        """Sizing after precedence: arguments > params > MAPPER_* env > defaults."""
        return settings_of(self.config(params))

    @method_called_as(MapperJob)
    def process_mapper_job(self, job: MapperJob) -> ParallelProcessingResult:
        """``process_mapper_job(source_conn, source_sql, target_conn, target_schema,
        target_table, transform=None, strategy=None, key=None, params=None)``: copy
        ``source_sql``'s result into ``target_schema.target_table`` (the arguments are
        :class:`~arrowmapper.compat.jobs.MapperJob`'s fields). See :meth:`run`."""
        return self.run(job)

    def run(self, job: MapperJob) -> ParallelProcessingResult:
        """Run ``job``. Never raises once the configuration is accepted: a failed chunk, an
        unreachable or failing source or target come back as ``success=False`` with the message in
        ``result.errors`` (and the error in ``result.error``). Bad configuration raises
        :class:`ConfigError` (or :class:`PlanError`) before any row moves; Ctrl-C propagates."""
        from ..adbc import shared_databases

        try:
            with shared_databases():  # one type-catalog read per server, not per connection
                return self._process(job)
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

    def _process(self, job: MapperJob) -> ParallelProcessingResult:
        source_conn, source_sql, target_conn = job.source_conn, job.source_sql, job.target_conn
        target_schema, target_table, params = job.target_schema, job.target_table, job.params
        if params is not None and not isinstance(params, Mapping):
            raise ConfigError(f"params must be a mapping of job parameters, got {params!r}")
        files = names_files(source_conn)  # files are a source as a connection is
        if files and source_sql is not None and not isinstance(source_sql, str):
            raise ConfigError(
                f"source_sql over files is optional Polars SQL (FROM self), got {source_sql!r}"
            )
        if not files and (not isinstance(source_sql, str) or not source_sql.strip()):
            raise ConfigError(f"source_sql must be a non-empty SQL query, got {source_sql!r}")
        src = (
            source_endpoint(source_conn)
            if files
            else parse_uri(connection_uri(source_conn, "source"), "source")
        )
        dst = parse_uri(connection_uri(target_conn, "target"), "target")
        schemas = target_rules(dst).schemas
        if not schemas and target_schema not in (None, "", "main"):
            log.warning("a SQLite target has no schemas: ignoring target_schema=%r", target_schema)
        c = self.config(
            params,
            src.dialect,
            # the URIs as given: a ${NAME} password is expanded by each process, never pickled
            source=src.template or src.uri,
            query=source_sql or "",
            target=dst.template or dst.uri,
            table=target_table,
            schema=(target_schema or None) if schemas else None,
            transform=job.transform,
            strategy=job.strategy,
            key=job.key,
            retry=self.retry_handler.config,
        )
        endpoints = check_endpoints(c)  # a reserved table name, ... before counting rows
        parallel = c.parallel_enabled
        if parallel and c.min_rows_for_parallel > 0:
            check_reachable(src, "source")  # in seconds, not after connectorx's 30 s of retries
            if files:
                with open_source(src) as reader:
                    query = source_sql or ""
                    rows = reader.probe(query, reader.describe(query)).count()
            else:
                rows = _estimate_rows(SourceProbe(src, source_sql or ""))
            parallel = rows >= c.min_rows_for_parallel
            if not parallel:
                log.info(
                    "%d rows < min_rows_for_parallel=%d: one chunk in this process",
                    rows,
                    c.min_rows_for_parallel,
                )
        if not parallel:
            c = c.with_(strategy="none", key=None)
        prepared = prepare_job(c, endpoints)
        spec = prepared.spec if parallel else dataclasses.replace(prepared.spec, in_process=True)
        progress: ProgressArg = self.progress_tracker.update if self.progress_tracker else None
        return ParallelProcessingResult.from_job(run_prepared(spec, progress), parallel)


@called_as(QueryJob)
def execute_query_parallel(call: QueryJob) -> ParallelProcessingResult:
    """``execute_query_parallel(source_conn, source_sql, target_conn, target_schema,
    target_table, transform=None, strategy=None, key=None, params=None, max_workers=None,
    chunk_size=None, max_retries=None, progress_callback=None, retry_config=None)``: one call
    for generated mapper code; builds a :class:`ParallelProcessor` and runs the job (the
    arguments are :class:`~arrowmapper.compat.jobs.QueryJob`'s fields)."""
    config = call.retry_config or RetryConfig()
    if call.max_retries is not None:
        config = dataclasses.replace(config, max_retries=call.max_retries)
    callback = call.progress_callback
    tracker = ProgressTracker(0, callback) if callback else None
    processor = ParallelProcessor(call.max_workers, call.chunk_size, RetryHandler(config), tracker)
    return processor.run(call.job)
