"""Reading the source with connectorx: one query as a stream of Arrow record batches.

Every connectorx call goes through :func:`read_arrow`, which translates driver errors (including
``PanicException``, a ``BaseException``) into :class:`SourceError` with the password removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ..config import Endpoint
from ..errors import PASS_THROUGH, ConfigError, PlanError, SourceError, translate
from .dialects import source_dialect


def timeout_statement(dialect: str, seconds: float | None) -> str | None:
    """The session setting that bounds one query's run time on this kind of source."""
    if not seconds:
        return None
    template = source_dialect(dialect).timeout
    return template.format(ms=max(1, int(seconds * 1000))) if template else None


def read_arrow(
    endpoint: Endpoint, sql: str, batch_size: int = 65_536, statement_timeout: float | None = None
) -> pa.RecordBatchReader:
    """Run ``sql`` on the source and stream the result as Arrow record batches.

    A failure -- when the query starts, or later while rows stream (connectorx then panics, and
    its ``PanicException`` is a ``BaseException``) -- is raised as a :class:`SourceError` with
    the server's message and the kind and transience of the driver's error.
    """
    import connectorx as cx

    kwargs: dict[str, Any] = {}
    session = source_dialect(endpoint.dialect).session
    pre = [session(False)] if session is not None else []
    timeout = timeout_statement(endpoint.dialect, statement_timeout)
    if timeout:
        pre.append(timeout)
    if pre:
        kwargs["pre_execution_query"] = pre
    try:
        reader = cx.read_sql(
            endpoint.uri, sql, return_type="arrow_stream", batch_size=batch_size, **kwargs
        )
    except PASS_THROUGH:
        raise
    except BaseException as exc:  # connectorx panics are BaseExceptions
        raise translate(
            exc, SourceError, f"the source {endpoint.redacted} could not run the query"
        ) from exc
    return pa.RecordBatchReader.from_batches(reader.schema, _translated(reader, endpoint))


def _translated(reader: pa.RecordBatchReader, endpoint: Endpoint) -> Iterator[pa.RecordBatch]:
    """``reader``'s batches; a failure while they stream becomes a :class:`SourceError`."""
    batches = iter(reader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except PASS_THROUGH:
            raise
        except BaseException as exc:  # a panic in the middle of the stream
            raise translate(
                exc,
                SourceError,
                f"the source {endpoint.redacted} failed while sending rows"
                + _failed_column(exc, reader.schema),
            ) from exc
        yield batch


# connectorx names the column of a value it cannot convert only by its index
_CONVERSION = re.compile(r"FromSqlConversionFailure\(\s*(\d+)")


def _failed_column(exc: BaseException, schema: pa.Schema) -> str:
    """`` (column 'x', a value of it could not be converted)`` when the driver's error names a
    column by its index, else nothing."""
    found = _CONVERSION.search(str(exc))
    if found is None or int(found.group(1)) >= len(schema):
        return ""
    name = schema.names[int(found.group(1))]
    return (
        f" (column {name!r}: a value the reader cannot convert to {schema.field(name).type}; "
        "cast the column to text in the query, or fix the value)"
    )


def check_unique_names(schema: pa.Schema) -> None:
    """Refuse a query whose output has two columns of one name (``SELECT id, id``,
    ``SELECT 1, 2``): a table cannot hold them, and which one a chunk wrote would be a guess."""
    seen: set[str] = set()
    for name in schema.names:
        if name in seen:
            alias = f"{name}_2" if name.isidentifier() else "column_2"
            raise ConfigError(
                f"the query returns {schema.names.count(name)} columns named {name!r}; give "
                f"each output column its own name with an alias (e.g. ... AS {alias}) so that "
                "each becomes its own column of the target table"
            )
        seen.add(name)


def rows_of(endpoint: Endpoint, sql: str) -> list[dict[str, Any]]:
    """The rows of a small planning query, as dicts (dates the planner cannot use refused)."""
    table = read_arrow(endpoint, sql).read_all()
    try:
        rows: list[dict[str, Any]] = table.to_pylist()
    except (OverflowError, ValueError) as exc:  # a BC date or year > 9999 has no Python twin
        raise PlanError(
            f"the planner cannot use these key values ({exc}): dates and timestamps outside "
            "the years 1-9999 cannot bound chunks; filter them out, pick another key, or use "
            "strategy='none' (or 'ctid' on a PostgreSQL table)"
        ) from None
    return rows
