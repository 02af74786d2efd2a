"""The old executor's value objects and helpers: chunking names, retry and progress helpers,
the result shape."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..config import DEFAULT_CHUNK_SIZE, RetryConfig
from ..errors import ArrowMapperError, ConfigError, classify
from ..run.progress import ProgressSnapshot
from ..run.report import ChunkResult, JobResult, PhaseTimes
from ..run.retry import backoff_delay, should_retry


class ChunkingStrategy(StrEnum):
    """How a job is split; the old executor's three names plus arrowmapper's own."""

    OFFSET_LIMIT = "offset"
    KEY_BASED = "key"
    ROWID_BASED = "rowid"  # PostgreSQL: ctid block ranges; SQLite: rowid ranges
    QUANTILE = "quantile"
    CTID = "ctid"
    AUTO = "auto"
    NONE = "none"


class _UnsaidSize(int):
    """The chunk size of a ChunkConfig that says none: 50,000, ranked as a default."""

    __slots__ = ()


_UNSAID_SIZE = _UnsaidSize(DEFAULT_CHUNK_SIZE)


@dataclass(frozen=True)
class ChunkConfig:
    """How to chunk: size, strategy and key column (``strategy=None`` lets ``auto`` choose).

    A ``chunk_size`` left unsaid reads as 50,000 but ranks as a default: job ``params`` and
    ``MAPPER_CHUNK_SIZE`` outrank it; one that is said outranks them (it is an argument).
    """

    chunk_size: int = _UNSAID_SIZE
    strategy: ChunkingStrategy | str | None = None
    key_column: str | None = None

    def __post_init__(self) -> None:
        if self.chunk_size is None:  # the old executor's callers pass None for "unsaid"
            object.__setattr__(self, "chunk_size", _UNSAID_SIZE)

    @property
    def chunk_size_given(self) -> bool:
        """Whether ``chunk_size`` was said (it then outranks params and MAPPER_CHUNK_SIZE)."""
        return not isinstance(self.chunk_size, _UnsaidSize)


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

    @property
    def bytes_read(self) -> int:
        """Arrow buffer bytes the job read (0 when it did not run)."""
        return self.job.bytes_read if self.job is not None else 0

    @property
    def phases(self) -> PhaseTimes:
        """Seconds per phase (:class:`~arrowmapper.run.report.PhaseTimes`; zeros when the job
        did not run)."""
        return self.job.phases if self.job is not None else PhaseTimes()

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
