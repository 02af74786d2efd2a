"""A chunk's rows as the source server's own binary COPY stream, undecoded (the COPY fast
path: :mod:`arrowmapper.run.copypath`).

``COPY (<the chunk's SELECT>) TO STDOUT (FORMAT binary)`` through psycopg 3's copy API, inside
a transaction of its own -- REPEATABLE READ with ``SET TRANSACTION SNAPSHOT`` when the job
reads from an exported snapshot, so a relayed chunk sees exactly what an Arrow-read one would.
The blocks are handed on as they arrive; nothing here looks inside them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from ..config import Endpoint
from ..errors import PASS_THROUGH, SourceError, translate
from .reader import timeout_statement
from .render import source_sql

#: the bytes a relayed block gathers before it is handed on (rows arrive one message each)
BLOCK = 256 * 1024
BLOCK_S = 0.25

#: the catalog query of a relation's columns as the COPY fast path compares them
COPY_COLUMNS = (
    "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, "
    "format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = {rel} "
    "AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum"
)


def copy_connect(uri: str, autocommit: bool = True) -> Any:
    """A psycopg connection, UTF-8 on the wire: both ends of a relay must use the same client
    encoding, since binary text is sent in it."""
    import psycopg

    kwargs: dict[str, Any] = {"client_encoding": "UTF8"}
    if "application_name=" not in uri:
        kwargs["application_name"] = "arrowmapper"
    return psycopg.connect(uri, autocommit=autocommit, **kwargs)


def copy_columns(endpoint: Endpoint, query: str) -> list[tuple[str, int, int, str]]:
    """``(name, type oid, typmod, declared type)`` of each result column of ``query``, through
    a temporary view that is rolled back."""
    conn = copy_connect(endpoint.uri, autocommit=False)
    try:
        view = f"SELECT * FROM {source_sql(query, endpoint.dialect)}"
        conn.execute(f"CREATE TEMP VIEW _am_copy_describe AS {view}")
        rel = "'pg_temp._am_copy_describe'::regclass"
        rows = conn.execute(COPY_COLUMNS.format(rel=rel)).fetchall()
        conn.rollback()
        return [(str(n), int(o), int(m), str(t)) for n, o, m, t in rows]
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _copy_out(conn: Any, statement: str, rows: list[int]) -> Iterator[bytes]:
    """Run ``COPY ... TO STDOUT`` on ``conn`` and yield its stream in blocks; ``rows[0]`` is
    the COPY's row count once it ended.

    The server sends one message per row. psycopg's ``Copy`` iterator costs ~1.7 us of Python
    per message (a generator round trip each); reading them straight from libpq through
    psycopg's ``pgconn`` costs less than half of that (1M rows: ~1 client CPU-s less), and the
    blocks are handed on every :data:`BLOCK` bytes or :data:`BLOCK_S` seconds (a slow stream
    still shows progress)."""
    import psycopg
    from psycopg import pq

    pgconn = conn.pgconn
    encoding = conn.info.encoding

    def failed(result: Any) -> Exception:
        return psycopg.errors.error_from_result(result, encoding=encoding)

    pgconn.send_query(statement.encode(encoding))
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        while pgconn.get_result() is not None:  # leave the connection with nothing pending
            pass
        if result is not None and result.status == pq.ExecStatus.FATAL_ERROR:
            raise failed(result)
        raise psycopg.OperationalError("the source did not start a COPY TO STDOUT")
    buf, since = bytearray(), time.monotonic()
    while True:
        n, data = pgconn.get_copy_data(0)  # blocks until a row (or the end) arrives
        if n < 0:  # -1: the COPY ended; -2: it failed (the result says why)
            break
        buf += data
        if len(buf) >= BLOCK or time.monotonic() - since >= BLOCK_S:
            yield bytes(buf)
            buf.clear()
            since = time.monotonic()
    ended = pgconn.get_result()
    while pgconn.get_result() is not None:
        pass
    if ended is None or ended.status != pq.ExecStatus.COMMAND_OK:
        if ended is not None and ended.status == pq.ExecStatus.FATAL_ERROR:
            raise failed(ended)
        raise psycopg.OperationalError(pgconn.error_message.decode(encoding, "replace"))
    if buf:
        yield bytes(buf)
    rows[0] = int(ended.command_tuples or 0)


class CopyReader:
    """Streams chunk queries out of a PostgreSQL source as binary COPY, one connection per
    chunk (as the Arrow path's reads), closed when the chunk's stream ends or fails."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.conn: Any = None

    def blocks(
        self,
        sql: str,
        snapshot: str | None,
        statement_timeout: float | None,
        rows: list[int],
    ) -> Iterator[bytes]:
        """Yield the binary COPY stream of ``sql`` in blocks of about :data:`BLOCK` bytes; ``rows[0]`` is set to the
        COPY's row count once the stream ended. A failure is a :class:`SourceError` with the
        server's kind and transience; the connection is then closed."""
        try:
            if self.conn is None or self.conn.closed:
                self.conn = copy_connect(self.endpoint.uri)
            cur = self.conn.cursor()
            if snapshot:
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot.replace(chr(39), '')}'")
            else:
                cur.execute("BEGIN")
            pre = timeout_statement(self.endpoint.dialect, statement_timeout)
            if pre:
                cur.execute(pre.replace("SET ", "SET LOCAL ", 1))
            # the server sends one message per row: hand them on in blocks of about BLOCK
            # bytes (or what came in BLOCK_S seconds: a slow stream still shows progress), so
            # the target's COPY and the progress counters are called per block, not per row
            yield from _copy_out(self.conn, f"COPY ({sql}) TO STDOUT (FORMAT binary)", rows)
            cur.execute("COMMIT")
            # not kept between chunks: an idle worker holding a source connection too would
            # take the slots a connection-limited role needs for the chunks still running
            # (the Arrow path also opens one source connection per chunk)
            self.close()
        except PASS_THROUGH:
            self.close()  # a stream left half-read cannot be reused
            raise
        except BaseException as exc:
            self.close()
            raise translate(
                exc, SourceError, f"the source {self.endpoint.redacted} failed copying out"
            ) from exc

    def close(self) -> None:
        """Close the connection (a second call does nothing)."""
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
