"""Where rows go: the Target seam, its dialects, type map and ledger.

Everything outside this package imports from here (``from ..targets import ...``), never from
the modules inside it, so a target's internals can change without touching its callers.
"""

from __future__ import annotations

from typing import Any

from ..config import Endpoint
from .core import JobRecord, TableRef, Target, check_job_id, conform, sql_type_name, storage_schema
from .typemap import TargetColumn, WriteLayout, narrowing, target_layout, to_float32


def open_target(endpoint: Endpoint, ref: TableRef, conn: Any = None) -> Target:
    """A connected target for ``ref`` on ``endpoint`` (``conn``: share an open connection)."""
    return Target(endpoint, ref, conn=conn)


__all__ = [
    "JobRecord",
    "TableRef",
    "Target",
    "TargetColumn",
    "WriteLayout",
    "check_job_id",
    "conform",
    "narrowing",
    "open_target",
    "sql_type_name",
    "storage_schema",
    "target_layout",
    "to_float32",
]
