"""Where rows come from: the Source seam and its readers.

Everything outside this package imports from here (``from ..sources import ...``), never from
the modules inside it.
"""

from __future__ import annotations

from .sql import SnapshotReader, SourceProbe, export_snapshot, plan_split, read_arrow
from .sqltypes import (
    SourceColumn,
    SourceLayout,
    decimal_type,
    describe_source,
    numeric_typmod,
    pg_columns_sql,
)

__all__ = [
    "SnapshotReader",
    "SourceColumn",
    "SourceLayout",
    "SourceProbe",
    "decimal_type",
    "describe_source",
    "export_snapshot",
    "numeric_typmod",
    "pg_columns_sql",
    "plan_split",
    "read_arrow",
]
