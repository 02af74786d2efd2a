"""A small DB-API-shaped layer over the ADBC driver manager's low-level API.

``adbc_driver_manager.dbapi`` imports ``pyarrow.dataset`` at import time, and that pulls in
pandas (and numpy) whenever pandas is installed: ~0.25 s of CPU and ~70 MiB of resident memory
in every process -- the coordinator and each worker. We use a handful of its calls, so this
module gives them on top of ``AdbcDatabase`` / ``AdbcConnection`` / ``AdbcStatement`` directly.

It also skips the DB-API's ``prepare`` before each new statement (an extra round trip to the
server per statement, and a chunk runs several). Errors are the driver manager's own classes
(``adbc_driver_manager.Error`` and its subclasses, with ``sqlstate``), as with the DB-API.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

import adbc_driver_manager as dm
import pyarrow as pa

_MODES = {
    "append": dm._lib.INGEST_OPTION_MODE_APPEND,
    "create": dm._lib.INGEST_OPTION_MODE_CREATE,
    "replace": dm._lib.INGEST_OPTION_MODE_REPLACE,
}


def _blocking(fn: Any, stmt: Any) -> Any:
    """Run a driver call so that Ctrl-C cancels it (as the DB-API does), and is then a
    :class:`KeyboardInterrupt`: the server answers the cancel with SQLSTATE 57014, which
    alone would read as a transient error and be retried (a chunk run in the calling process
    would go on after Ctrl-C)."""
    call = getattr(dm._lib, "_blocking_call", None)
    if call is None:  # pragma: no cover - older driver managers
        return fn()
    interrupted: list[bool] = []

    def cancel() -> None:  # called by the driver manager on SIGINT only
        interrupted.append(True)
        stmt.cancel()

    try:
        return call(fn, (), {}, cancel)
    except Exception as exc:
        if interrupted:
            raise KeyboardInterrupt from exc
        raise


class _Closing:
    """``with`` support: leaving the block calls ``close()``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Cursor(_Closing):
    """One ADBC statement; the subset of a DB-API cursor arrowmapper uses."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stmt: Any = dm.AdbcStatement(conn.adbc)
        self._reader: pa.RecordBatchReader | None = None

    def _clear(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def execute(self, sql: str) -> Cursor:
        """Run one statement; its rows (if any) wait for a fetch method."""
        self._clear()
        self._stmt.set_sql_query(sql)
        handle, _ = _blocking(self._stmt.execute_query, self._stmt)
        self._reader = pa.RecordBatchReader._import_from_c(handle.address)
        return self

    def _take(self) -> pa.RecordBatchReader:
        if self._reader is None:
            raise RuntimeError("no statement was executed on this cursor")
        reader, self._reader = self._reader, None
        return reader

    def fetch_record_batch(self) -> pa.RecordBatchReader:
        """The result as a stream of record batches."""
        return self._take()

    def fetch_arrow_table(self) -> pa.Table:
        """The whole result as one table."""
        return self._take().read_all()

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The whole result as Python tuples."""
        table = self.fetch_arrow_table()
        columns = [c.to_pylist() for c in table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def fetchone(self) -> tuple[Any, ...] | None:
        """The first row of the result (the rest is discarded)."""
        rows = self.fetchall()
        return rows[0] if rows else None

    def adbc_ingest(
        self,
        table: str,
        data: pa.RecordBatchReader | pa.Table,
        mode: str = "append",
        *,
        db_schema_name: str | None = None,
        temporary: bool = False,
    ) -> int:
        """Bulk-load ``data`` into ``table`` (PostgreSQL: binary COPY). Returns the row count,
        or -1 where the driver cannot tell."""
        self._clear()
        options = {
            dm._lib.INGEST_OPTION_TARGET_TABLE: table,
            dm._lib.INGEST_OPTION_MODE: _MODES[mode],
        }
        if db_schema_name is not None:
            options[dm.StatementOptions.INGEST_TARGET_DB_SCHEMA.value] = db_schema_name
        options[dm.StatementOptions.INGEST_TEMPORARY.value] = "true" if temporary else "false"
        self._stmt.set_options(**options)
        if isinstance(data, pa.Table):
            data = data.to_reader()
        handle = dm.ArrowArrayStreamHandle()
        data._export_to_c(handle.address)
        self._stmt.bind_stream(handle)
        rows = _blocking(self._stmt.execute_update, self._stmt)
        return int(rows)

    def close(self) -> None:
        """Release the result and the statement."""
        self._clear()
        self._stmt.close()


class Connection(_Closing):
    """An ADBC connection with autocommit off (or on), committed and rolled back explicitly.
    It closes its database handle with it unless the handle is ``shared`` (see
    :func:`shared_databases`)."""

    def __init__(self, db: Any, autocommit: bool = False, shared: bool = False) -> None:
        self.db = db
        self._owns_db = not shared
        try:
            self.adbc: Any = dm.AdbcConnection(db)
        except BaseException:
            if self._owns_db:
                db.close()
            raise
        self.autocommit = autocommit
        if not autocommit:
            self.adbc.set_autocommit(False)
        self._closed = False

    def cursor(self) -> Cursor:
        """A new statement on this connection."""
        return Cursor(self)

    def commit(self) -> None:
        """Commit the open transaction (nothing in autocommit mode)."""
        if not self.autocommit:
            self.adbc.commit()

    def rollback(self) -> None:
        """Roll the open transaction back (nothing in autocommit mode)."""
        if not self.autocommit:
            self.adbc.rollback()

    def adbc_get_table_schema(
        self, table: str, *, db_schema_filter: str | None = None
    ) -> pa.Schema:
        """The Arrow schema the driver maps the table's columns to."""
        handle = self.adbc.get_table_schema(None, db_schema_filter, table)
        return pa.Schema._import_from_c(handle.address)

    def close(self) -> None:
        """Close the connection and its database handle."""
        if self._closed:
            return
        self._closed = True
        try:
            self.adbc.close()
        finally:
            if self._owns_db:
                self.db.close()


# A PostgreSQL AdbcDatabase loads the server's whole type catalog when it is created (one more
# login and a pg_type query, ~0.1 s here); its connections then cost a login each. A public
# entry point (map_query, plan_query, verify, ...) opens five or six connections while it
# prepares a job, so within one call, on one thread, every connection to a URI shares one
# database handle. Scoped to the call so that types created between calls are seen.
_local = threading.local()


@contextlib.contextmanager
def shared_databases() -> Iterator[None]:
    """Within this block (on this thread), PostgreSQL connections to the same URI share one
    ADBC database handle; the handles are closed when the outermost block ends."""
    if getattr(_local, "dbs", None) is not None:
        yield
        return
    _local.dbs = {}
    try:
        yield
    finally:
        dbs, _local.dbs = _local.dbs, None
        for db in dbs.values():
            with contextlib.suppress(Exception):
                db.close()


def connect_postgresql(uri: str, autocommit: bool = False) -> Connection:
    """A connection through the ADBC PostgreSQL driver (libpq), named ``arrowmapper`` in
    ``pg_stat_activity`` unless the URI names it. Every caller gets the same URI for the same
    server, so that within :func:`shared_databases` they share one database handle (creating
    one reads the server's type catalog: ~0.1 s)."""
    import adbc_driver_postgresql

    if "application_name=" not in uri:
        sep = "" if uri.endswith(("?", "&")) else "&" if "?" in uri else "?"
        uri += sep + "application_name=arrowmapper"

    dbs: dict[str, Any] | None = getattr(_local, "dbs", None)
    if dbs is None:
        return Connection(adbc_driver_postgresql.connect(uri), autocommit)
    db = dbs.get(uri)
    if db is None:
        db = dbs[uri] = adbc_driver_postgresql.connect(uri)
    return Connection(db, autocommit, shared=True)


def connect_sqlite(path: str, autocommit: bool = False) -> Connection:
    """A connection through the ADBC SQLite driver."""
    import adbc_driver_sqlite

    return Connection(adbc_driver_sqlite.connect(path), autocommit)


__all__ = ["Connection", "Cursor", "connect_postgresql", "connect_sqlite", "shared_databases"]
