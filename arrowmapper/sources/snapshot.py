"""Chunks read inside one exported PostgreSQL snapshot, through ADBC."""

from __future__ import annotations

import contextlib
from typing import Any

import pyarrow as pa

from ..config import Endpoint
from ..errors import PASS_THROUGH, SourceError, translate
from .dialects import source_dialect
from .reader import timeout_statement

# --------------------------------------------------------------------------- snapshots
# connectorx runs `pre_execution_query` outside any transaction block, so it cannot join an
# exported snapshot. The ADBC PostgreSQL driver can: BEGIN REPEATABLE READ, SET TRANSACTION
# SNAPSHOT, then the chunk query streamed with fetch_record_batch(), then COMMIT.

SNAPSHOT_DECIMAL = pa.decimal128(38, 18)


def export_snapshot(endpoint: Endpoint) -> tuple[Any, str]:
    """Open a REPEATABLE READ transaction on the source and export its snapshot.

    Returns the connection (keep it open for as long as chunks read from the snapshot) and the
    snapshot id.
    """
    from ..adbc import connect_postgresql

    if not source_dialect(endpoint.dialect).snapshots:
        raise SourceError(f"snapshot=True needs a PostgreSQL source, not {endpoint.dialect}")
    try:
        conn = connect_postgresql(endpoint.uri, autocommit=True)
        cur = conn.cursor()
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        cur.execute("SELECT pg_export_snapshot()")
        snapshot = str(cur.fetchall()[0][0])
        cur.close()
    except Exception as exc:
        raise translate(
            exc, SourceError, f"cannot export a snapshot from {endpoint.redacted}"
        ) from exc
    return conn, snapshot


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """ADBC's extension columns as plain Arrow: numeric as a decimal, others as their storage."""
    arrays, fields = [], []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if isinstance(column.type, pa.BaseExtensionType):
            storage = column.storage
            name = getattr(column.type, "type_name", "")
            if name == "numeric":
                storage = storage.cast(SNAPSHOT_DECIMAL)  # safe: refuses to round
            column = storage
        arrays.append(column)
        fields.append(pa.field(field.name, column.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


class SnapshotReader:
    """Reads queries inside an exported snapshot, through one ADBC connection it keeps."""

    def __init__(self, endpoint: Endpoint) -> None:
        from ..adbc import connect_postgresql

        self.endpoint = endpoint
        self.conn = connect_postgresql(endpoint.uri, autocommit=True)

    def read(self, sql: str, snapshot: str, statement_timeout: float | None = None) -> Any:
        """Yield the query's batches as the snapshot saw the data."""
        cur = self.conn.cursor()
        try:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot.replace(chr(39), '')}'")
            session = source_dialect(self.endpoint.dialect).session
            if session is not None:
                cur.execute(session(True))
            pre = timeout_statement(self.endpoint.dialect, statement_timeout)
            if pre:
                cur.execute(pre.replace("SET ", "SET LOCAL ", 1))
            cur.execute(sql)
            for batch in cur.fetch_record_batch():
                yield _plain(batch)
            cur.execute("COMMIT")
        except PASS_THROUGH:
            with contextlib.suppress(Exception):
                cur.execute("ROLLBACK")
            raise
        except BaseException as exc:
            with contextlib.suppress(Exception):
                cur.execute("ROLLBACK")
            raise translate(
                exc, SourceError, f"the source {self.endpoint.redacted} failed reading the snapshot"
            ) from exc
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
