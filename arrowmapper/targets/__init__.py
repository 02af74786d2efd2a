"""Where rows go: the Target seam, its dialects, type map and ledger.

Everything outside this package imports from here (``from ..targets import ...``), never from
the modules inside it, so a target's internals can change without touching its callers.

Adding a target system is its own module (a :class:`Target` subclass naming its
:class:`Dialect` row, which goes into :data:`DIALECTS`) plus one line in :data:`TARGETS`.
"""

from __future__ import annotations

from typing import Any

from ..config import Endpoint
from ..errors import ConfigError, TargetError, redact
from .base import Target
from .dialects import DIALECTS, Dialect, TableRef, dialect_of
from .jobs import Cleaned, JobInfo, appended_before, clean_job, job_info, list_jobs
from .ledger import JOBS, LEDGER, Earlier, JobRecord, LedgerEntry, Written
from .postgresql import PostgresTarget
from .session import check_job_id
from .sqlite import SqliteTarget
from .typemap import (
    CatalogColumn,
    TargetColumn,
    WriteLayout,
    conform,
    declared_columns,
    narrowing,
    sql_type_name,
    storage_schema,
    target_layout,
)
from .values import to_float32

#: dialect -> the Target class of that system: the one registration table.
TARGETS: dict[str, type[Target]] = {cls.dialect.name: cls for cls in (PostgresTarget, SqliteTarget)}


def open_target(endpoint: Endpoint, ref: TableRef, conn: Any = None) -> Target:
    """A connected target for ``ref`` on ``endpoint`` (``conn``: share an open connection).

    >>> with open_target(endpoint, TableRef(None, "events", endpoint.dialect)) as t:
    ...     t.row_count()
    """
    cls = TARGETS.get(endpoint.dialect)
    if cls is None:
        raise ConfigError(
            f"target {endpoint.redacted}: only postgresql:// and sqlite:/// targets are "
            f"supported, got {endpoint.dialect}"
        )
    return cls(endpoint, ref, conn=conn)


def open_copy_target(endpoint: Endpoint, ref: TableRef) -> Target:
    """A target for ``ref`` on a connection that can also relay binary COPY streams
    (:meth:`Target.connect_copy`; PostgreSQL: psycopg's): the COPY fast path's chunks."""
    cls = TARGETS.get(endpoint.dialect)
    if cls is None:
        raise ConfigError(f"target {endpoint.redacted}: not a target arrowmapper can write")
    try:
        conn = cls.connect_copy(endpoint)
    except TargetError:
        raise
    except Exception as exc:
        raise TargetError(
            f"cannot connect to the target {endpoint.redacted}: {redact(str(exc))}"
        ) from exc
    return cls(endpoint, ref, conn=conn)


__all__ = [
    "open_copy_target",
    "CatalogColumn",
    "Cleaned",
    "appended_before",
    "JobInfo",
    "clean_job",
    "job_info",
    "list_jobs",
    "DIALECTS",
    "JOBS",
    "LEDGER",
    "TARGETS",
    "Dialect",
    "JobRecord",
    "LedgerEntry",
    "Earlier",
    "TableRef",
    "Target",
    "TargetColumn",
    "WriteLayout",
    "Written",
    "check_job_id",
    "conform",
    "dialect_of",
    "narrowing",
    "open_target",
    "declared_columns",
    "sql_type_name",
    "storage_schema",
    "target_layout",
    "to_float32",
]
