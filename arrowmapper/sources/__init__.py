"""Where rows come from: the Source seam and its readers.

Everything outside this package imports from here (``from ..sources import ...``), never from
the modules inside it. :func:`open_source` picks the :class:`Source` for an endpoint from ONE
registration table, :data:`SOURCES`; a new kind of source is its own module plus one line
there (keyed by its URI scheme; :func:`source_endpoint` then accepts that scheme).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..config import Endpoint, parse_uri
from ..config.files import file_spec, is_file_source
from ..errors import ConfigError
from .base import READ, ReadOptions, Source, SourceFacts
from .copyout import COPY_COLUMNS, CopyReader, copy_connect
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


def _lazy(module: str, name: str) -> Callable[[Endpoint], Source]:
    """A registration whose module is imported on first use (a worker starts without it)."""

    def make(endpoint: Endpoint) -> Source:
        cls: Callable[[Endpoint], Source] = getattr(importlib.import_module(module, __name__), name)
        return cls(endpoint)

    return make


#: the registration table: a URI scheme (or a database's dialect) -> the class that reads it
SOURCES: dict[str, Callable[[Endpoint], Source]] = {
    "postgresql": SqlSource,
    "mysql": SqlSource,
    "sqlite": SqlSource,
    "mssql": SqlSource,
    "oracle": SqlSource,
    "other": SqlSource,  # any other connectorx URI
    "arrow": _lazy(".arrowfile", "ArrowFileSource"),
    "file": _lazy(".files", "FileSource"),  # paths, globs, folders, lists, uploads
}


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else ""


def source_endpoint(uri: object) -> Endpoint:
    """The job's source URI parsed: a scheme registered to a source of its own (not SQL's) is
    that source's, its URI kept as given (dialect ``other``); any other is a database URI
    (:func:`~arrowmapper.config.parse_uri`).

    >>> source_endpoint("arrow:///tmp/orders.arrow").path
    '/tmp/orders.arrow'

    Files (a path, glob, folder, ``file://`` URI, a list of them, an upload) are the file
    source's, under their canonical ``file://`` URI (:mod:`arrowmapper.config.files`).
    """
    if is_file_source(uri):
        return Endpoint(uri=file_spec(uri).uri, dialect="file")
    if isinstance(uri, str) and SOURCES.get(_scheme(uri.strip()), SqlSource) is not SqlSource:
        uri = uri.strip()
        return Endpoint(uri=uri, dialect="other", path=uri.split("://", 1)[1])
    return parse_uri(uri, "source")


def open_source(endpoint: Endpoint) -> Source:
    """The :class:`Source` that reads ``endpoint`` (close it, or use it as a context manager).

    >>> with open_source(parse_uri("sqlite:///shop.db")) as src:  # doctest: +SKIP
    ...     layout = src.describe("orders")
    """
    make = SOURCES.get(_scheme(endpoint.uri)) or SOURCES.get(endpoint.dialect)
    if make is None:
        raise ConfigError(
            f"source must be one of {', '.join(sorted(SOURCES))}, got {endpoint.dialect!r} "
            f"({endpoint.redacted})"
        )
    return make(endpoint)


__all__ = [
    "COPY_COLUMNS",
    "CopyReader",
    "copy_connect",
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
    "source_endpoint",
    "source_sql",
    "split_by",
    "split_offset",
    "timeout_statement",
]
