"""Where rows come from: the Source seam and its readers.

Everything outside this package imports from here (``from ..sources import ...``), never from
the modules inside it. :func:`open_source` picks the :class:`Source` for an endpoint from ONE
registration table, :data:`SOURCES`; a new kind of source is its own module plus one line
there.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import Endpoint
from ..errors import ConfigError
from .base import READ, ReadOptions, Source, SourceFacts
from .dialects import SourceDialect, source_dialect
from .layout import SourceColumn, SourceLayout
from .probe import SourceProbe
from .reader import check_unique_names, read_arrow, timeout_statement
from .render import (
    SqlRender,
    key_predicate,
    render_literal,
    select_all,
    source_sql,
    split_by,
    split_offset,
)
from .snapshot import SnapshotReader, export_snapshot
from .sql import SqlSource, plan_split
from .sqltypes import decimal_type, describe_source, numeric_typmod, pg_columns_sql

#: the registration table: an endpoint's dialect -> the class that reads it
SOURCES: dict[str, Callable[[Endpoint], Source]] = {
    "postgresql": SqlSource,
    "mysql": SqlSource,
    "sqlite": SqlSource,
    "mssql": SqlSource,
    "oracle": SqlSource,
    "other": SqlSource,  # any other connectorx URI
}


def open_source(endpoint: Endpoint) -> Source:
    """The :class:`Source` that reads ``endpoint`` (close it, or use it as a context manager).

    >>> with open_source(parse_uri("sqlite:///shop.db")) as src:  # doctest: +SKIP
    ...     layout = src.describe("orders")
    """
    make = SOURCES.get(endpoint.dialect)
    if make is None:
        raise ConfigError(
            f"source must be one of {', '.join(sorted(SOURCES))}, got {endpoint.dialect!r} "
            f"({endpoint.redacted})"
        )
    return make(endpoint)


__all__ = [
    "READ",
    "SOURCES",
    "ReadOptions",
    "SnapshotReader",
    "Source",
    "SourceColumn",
    "SourceFacts",
    "SourceDialect",
    "SourceLayout",
    "SourceProbe",
    "SqlRender",
    "SqlSource",
    "check_unique_names",
    "decimal_type",
    "describe_source",
    "export_snapshot",
    "key_predicate",
    "numeric_typmod",
    "open_source",
    "pg_columns_sql",
    "plan_split",
    "read_arrow",
    "render_literal",
    "select_all",
    "source_dialect",
    "source_sql",
    "split_by",
    "split_offset",
    "timeout_statement",
]
