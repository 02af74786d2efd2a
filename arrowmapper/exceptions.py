"""The classes of the error tree drawn in :mod:`arrowmapper.errors` (import them from there).

Each carries the two axes of :data:`ErrorKind` and ``transient`` as data; the classification
of driver errors into them is the table in :mod:`arrowmapper.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .run.report import ChunkResult, JobResult

ErrorKind = Literal[
    "config",  # bad argument, URI, option, job file or target layout: fix the call
    "connect",  # cannot reach or log in to a server (refused, lost, no such database or role)
    "query",  # the server refused the statement (syntax, missing object, privilege)
    "data",  # a value cannot be read, converted or stored (22xxx, 23xxx, type panics)
    "conflict",  # serialization failure, deadlock, lock not available, database is locked
    "timeout",  # the statement was cancelled (statement_timeout, max_execution_time)
    "connection_limit",  # the server has no free connection slot (53300, MySQL 1040)
    "verification",  # what a chunk committed differs from what was read
    "worker",  # a worker process died or was killed by the watchdog
    "failed",  # anything else (a retry is cheap and bounded, a lost job is not)
]


class ArrowMapperError(Exception):
    """Root of every error arrowmapper raises.

    ``kind``, ``transient`` and ``sqlstate`` are None when not given: they are then decided from
    the driver error it was raised from (see :func:`error_info`).

    >>> ArrowMapperError("boom", kind="data").kind
    'data'
    """

    kind: ErrorKind | None = None
    transient: bool | None = None
    sqlstate: str | None = None

    def __init__(
        self,
        message: str = "",
        *,
        transient: bool | None = None,
        kind: ErrorKind | None = None,
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient
        if kind is not None:
            self.kind = kind
        if sqlstate is not None:
            self.sqlstate = sqlstate


class ConfigError(ArrowMapperError):
    """A bad argument, URI, strategy, mode or environment variable."""

    kind = "config"
    transient = False


class PlanError(ArrowMapperError):
    """The chunk plan cannot be built (missing key column, non-unique key, ...)."""

    kind = "config"
    transient = False


class SourceError(ArrowMapperError):
    """The source database cannot be reached or the query cannot be read."""


class TargetError(ArrowMapperError):
    """The target cannot be reached, its table created, or rows written."""


class VerificationError(TargetError):
    """What a chunk committed differs from what its worker read (count or checksum)."""

    kind = "verification"


class ChunkFailed(ArrowMapperError):
    """One chunk failed for good; ``.result`` is its ChunkResult."""

    kind = "failed"

    def __init__(self, message: str, result: ChunkResult | None = None) -> None:
        super().__init__(message, transient=False)
        self.result = result


class JobFailed(ArrowMapperError):
    """Some chunks failed after their retries; ``.result`` is the JobResult."""

    kind = "failed"

    def __init__(self, message: str, result: JobResult) -> None:
        super().__init__(message, transient=False)
        self.result = result


# their public home (tracebacks, pickles, docs) stays arrowmapper.errors, which re-exports them
for _cls in (
    ArrowMapperError,
    ConfigError,
    PlanError,
    SourceError,
    TargetError,
    VerificationError,
    ChunkFailed,
    JobFailed,
):
    _cls.__module__ = "arrowmapper.errors"

__all__ = [
    "ArrowMapperError",
    "ChunkFailed",
    "ConfigError",
    "ErrorKind",
    "JobFailed",
    "PlanError",
    "SourceError",
    "TargetError",
    "VerificationError",
]
