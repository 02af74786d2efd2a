"""The exactly-once write of one chunk, reading a chunk's rows back, and the locators that
find them: a PostgreSQL transaction id (``xid:N``), a SQLite rowid range (``rowid:lo:hi``), or
``none:`` where the rows cannot be told apart.

A chunk's rows and its ledger row ``(job_id, chunk_id, bounds, rows)`` are committed in one
target transaction; a chunk whose ledger row exists is never loaded again, and a second writer of
the same chunk (a retry racing a zombie) finds the ledger row at commit and rolls back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from ..checksum import Checksum, CopyDigest, align
from ..errors import TargetError, VerificationError
from ..sql import session_statements
from .ledger import LEDGER, Written
from .marks import Marks
from .session import lit
from .typemap import WriteLayout

STAGE = "_am_chunk"  # the temporary table a staged chunk is COPYed into


def _fault_point(name: str, chunk_id: int) -> None:
    """Test hook: ``ARROWMAPPER_FAULT=before_commit:3`` SIGKILLs this worker at that exact point
    of chunk 3, once (``ARROWMAPPER_FAULT_MARKER`` names the file that records it). Fault tests
    use it to kill a worker inside the commit window, which no outside timing can hit."""
    spec = os.environ.get("ARROWMAPPER_FAULT")
    if not spec or spec != f"{name}:{chunk_id}":
        return
    marker = os.environ.get("ARROWMAPPER_FAULT_MARKER", "")
    if not marker or os.path.exists(marker):
        return
    with open(marker, "w") as fh:
        fh.write(f"{name}:{chunk_id}:{os.getpid()}")
    os.kill(os.getpid(), signal.SIGKILL)


def _rows(cur: Any, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` on ``cur`` (inside its transaction) and return its rows (none: empty)."""
    cur.execute(sql)
    try:
        return list(cur.fetchall())
    except Exception:
        return []


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


class ChunkStore(Marks):
    """Chunks in and out of the target table; a system's module supplies the locators."""

    def untracked(self, layout: WriteLayout | None = None) -> bool:
        """Whether a chunk's rows cannot be found again by their locator (then it is
        ``none:``). Reads the catalog and ends that read's transaction: never call it inside a
        chunk's transaction (write_chunk asks before it starts)."""
        return False

    def driver_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` as the driver is given it (after checksums: they see the values)."""
        return batch

    @abstractmethod
    def _locator_start(self, cur: Any) -> str:
        """Inside the chunk's transaction, before its rows: what the locator starts from."""
        raise NotImplementedError

    @abstractmethod
    def _locator_end(self, cur: Any, start: str) -> str:
        """Inside the chunk's transaction, after its rows: the chunk's locator."""
        raise NotImplementedError

    @abstractmethod
    def _held(self, locators: list[str]) -> dict[str, int]:
        """locator -> the rows this table holds under it (absent: none)."""
        raise NotImplementedError

    def missing_chunks(self, job_id: str) -> list[tuple[int, int, int]]:
        """``(chunk_id, rows the ledger says, rows the table holds)`` for every committed chunk
        of ``job_id`` whose rows are no longer all in this table (emptied, deleted, or a table
        of the same name created again). Chunks merged into a table are not counted: a later
        upsert may have moved their rows."""
        entries = self.ledger(job_id)
        want: dict[str, tuple[int, int]] = {}
        for cid, entry in entries.items():
            if entry.locator and not entry.locator.startswith("none:") and entry.rows > 0:
                want[entry.locator] = (cid, entry.rows)
        if not want:
            return []
        held = self._held(list(want))
        return sorted(
            (cid, rows, held.get(loc, 0))
            for loc, (cid, rows) in want.items()
            if held.get(loc, 0) != rows
        )

    # -- the exactly-once write
    def write_chunk(
        self,
        job_id: str,
        chunk_id: int,
        bounds: str,
        batches: Iterable[pa.RecordBatch],
        rows_read: Callable[[], int] | None = None,
        verify: bool = False,
        layout: WriteLayout | None = None,
        mark_name: str | None = None,
    ) -> Written | None:
        """Ingest ``batches`` and the chunk's ledger row in one transaction.

        The ledger row goes in first: on PostgreSQL its key makes a second writer of the same
        chunk wait and then find it; on SQLite it takes the write lock, so the rowid range the
        chunk gets is its own. With ``verify``, the rows are read back inside the transaction
        and compared (count and order-independent checksum) with what was sent; a mismatch
        rolls everything back and raises a transient :class:`VerificationError`.

        ``mark_name``: the job is a run of that recurring job (``cursor=``); the commit that
        completes the job's chunks moves the name's mark in the same transaction
        (:meth:`~.marks.Marks.complete_run`).

        Returns None when the chunk was already committed (by an earlier attempt, an earlier
        run, or a zombie worker): then nothing is written.
        """
        # before the chunk's transaction: the lookup reads (and ends its own transaction)
        untracked = self.untracked(layout)
        if chunk_id in self._committed_one(job_id, chunk_id):
            return None
        counted = [0]
        raised: list[BaseException] = []
        digest = Checksum() if verify else None
        sent: list[pa.Schema] = []

        def counting() -> Iterable[pa.RecordBatch]:
            try:
                for batch in batches:
                    counted[0] += batch.num_rows
                    if digest is not None:
                        digest.add(batch)
                    if not sent:
                        sent.append(batch.schema)
                    yield self.driver_batch(batch)
            except BaseException as exc:  # the driver would swallow the original error
                raised.append(exc)
                raise

        def load(cur: Any) -> int:
            stream = iter(counting())
            first = next(stream, None)  # an empty chunk writes only its ledger row
            if first is not None:
                reader = pa.RecordBatchReader.from_batches(first.schema, _chain(first, stream))
                kwargs = {"db_schema_name": self.ref.schema} if self.ref.schema else {}
                try:
                    if layout is not None and layout.needs_stage:
                        self._ingest_staged(cur, reader, layout, first.schema.names)
                    else:
                        cur.adbc_ingest(self.ref.table, reader, mode="append", **kwargs)
                except BaseException as exc:
                    # the batches' own error, not the driver's account of it; but Ctrl-C
                    # (which also ends the batches) stays Ctrl-C
                    if raised and not isinstance(exc, KeyboardInterrupt):
                        raise raised[0] from None
                    raise
            return counted[0]

        def check(cur: Any, locator: str) -> str | None:
            if digest is None:
                return None
            staged = set(layout.staged) if layout is not None else set()
            session = layout.session if layout is not None else ()
            self._check_written(cur, chunk_id, locator, sent, digest, staged, session)
            return digest.digest

        return self._exactly_once(
            job_id, chunk_id, bounds, untracked, load, check, rows_read, verify, mark_name
        )

    def relay_chunk(
        self,
        job_id: str,
        chunk_id: int,
        bounds: str,
        blocks: Iterable[memoryview | bytes],
        columns: list[str],
        rows_read: Callable[[], int],
        verify: bool = False,
        on_bytes: Callable[[int], None] | None = None,
        mark_name: str | None = None,
    ) -> Written | None:
        """The COPY fast path's write: relay a source's binary COPY stream of the chunk
        undecoded into ``COPY table (columns) FROM STDIN (FORMAT binary)``, inside the same
        exactly-once transaction as :meth:`write_chunk` (this target's connection must be
        psycopg's: :meth:`connect_copy`). ``rows_read`` is asked after the stream ended (the
        source COPY's row count); a count that differs from what the target's COPY took fails
        the chunk. With ``verify``, each tuple of the stream is hashed as sent (its framing
        parsed, no value decoded) and compared with the chunk's rows COPYed back out of the
        target inside the transaction; the ledger keeps no checksum for such a chunk (it
        would not compare with ``am.verify``'s reader checksums).

        Returns None when the chunk was already committed (then nothing is written)."""
        if self.untracked():
            raise TargetError(f"{self.ref.display}: a relayed chunk needs locatable rows")
        if chunk_id in self._committed_one(job_id, chunk_id):
            return None
        cols = ", ".join(self.q(c) for c in columns)
        sent = CopyDigest() if verify else None

        def load(cur: Any) -> int:
            with cur.copy(f"COPY {self.ref.qualified()} ({cols}) FROM STDIN (FORMAT binary)") as out:
                for block in blocks:
                    out.write(block)
                    if on_bytes is not None:
                        on_bytes(len(block))
                    if sent is not None:
                        sent.feed(block)
            written = int(cur.rowcount)
            read = int(rows_read())
            if read != written:
                raise TargetError(
                    f"chunk {chunk_id}: the source COPY sent {read} rows where the target "
                    f"COPY took {written}; rolled back, to be retried",
                    transient=True,
                )
            return written

        def check(cur: Any, locator: str) -> str | None:
            if sent is None:
                return None
            back = CopyDigest()
            where = self.locator_predicate(locator)
            with cur.copy(
                f"COPY (SELECT {cols} FROM {self.ref.qualified()} WHERE {where}) "
                "TO STDOUT (FORMAT binary)"
            ) as copy:
                for block in copy:
                    back.feed(block)
            if (back.rows, back.digest) != (sent.rows, sent.digest) or not back.done:
                raise VerificationError(
                    f"chunk {chunk_id}: the target holds {back.rows} rows (copy checksum "
                    f"{back.digest}) where {sent.rows} were relayed (copy checksum "
                    f"{sent.digest}); rolled back, to be retried",
                    transient=True,
                )
            return None

        return self._exactly_once(
            job_id, chunk_id, bounds, False, load, check, rows_read, verify, mark_name
        )

    def _exactly_once(
        self,
        job_id: str,
        chunk_id: int,
        bounds: str,
        untracked: bool,
        load: Callable[[Any], int],
        check: Callable[[Any, str], str | None],
        rows_read: Callable[[], int] | None,
        verified: bool = False,
        mark_name: str | None = None,
    ) -> Written | None:
        """The chunk's transaction: its ledger row first, then ``load`` (the rows; returns how
        many), its locator, ``check`` (verify: raises on a mismatch, returns the checksum to
        keep; ``verified``: it reads back, and its seconds are the chunk's verify time), the
        ledger row completed, a recurring run's mark moved when this commit completes the run
        (``mark_name``), commit. None when the ledger row existed."""
        ledger = self.ref.qualified(LEDGER)
        key = f"job_id = {lit(job_id)} AND chunk_id = {int(chunk_id)}"
        cur = self.conn.cursor()
        try:
            cur.execute(
                f"INSERT INTO {ledger} (job_id, chunk_id, target_table, bounds, rows) VALUES "
                f"({lit(job_id)}, {int(chunk_id)}, {lit(self.ref.display)}, {lit(bounds)}, -1) "
                "ON CONFLICT DO NOTHING RETURNING chunk_id"
            )
            if not cur.fetchall():
                self.conn.rollback()
                return None
            start = "" if untracked else self._locator_start(cur)
            rows = load(cur)
            locator = "none:" if untracked else self._locator_end(cur, start)
            checking = time.perf_counter()
            checksum = check(cur, locator)
            verify_s = time.perf_counter() - checking if verified else 0.0
            read = int(rows_read()) if rows_read is not None else None
            cur.execute(
                f"UPDATE {ledger} SET rows = {rows}, "
                f"rows_read = {'NULL' if read is None else read}, "
                f"checksum = {'NULL' if checksum is None else lit(checksum)}, "
                f"locator = {lit(locator)} WHERE {key}"
            )
            if mark_name:
                self.complete_run(job_id, mark_name, lambda sql: _rows(cur, sql))
            _fault_point("before_commit", chunk_id)
            self.conn.commit()
            _fault_point("after_commit", chunk_id)
            return Written(rows, checksum, locator, verify_s)
        except BaseException:
            self.rollback()
            raise
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def _ingest_staged(
        self, cur: Any, reader: pa.RecordBatchReader, layout: WriteLayout, names: list[str]
    ) -> None:
        """COPY the chunk into a temporary table, then move it into the target with the
        server's casts (exact text -> interval, numeric, ...) and, for ``merge``, an upsert:
        all inside the chunk's transaction."""
        d, q = self.dialect, self.q
        cur.adbc_ingest(STAGE, reader, mode="replace", temporary=True)
        types = {c.name: c.sql_type for c in layout.columns if c.sql_type}
        cols = ", ".join(q(c) for c in names)
        exprs = ", ".join(
            f"{q(c)}::{types[c]}" if c in types and d.server_casts else q(c) for c in names
        )
        for setting in session_statements(layout.session) if d.server_casts else []:
            cur.execute(setting)  # parse the text as the source rendered it
        tmp = f"{d.temp_schema}.{STAGE}"
        sql = f"INSERT INTO {self.ref.qualified()} ({cols}) SELECT {exprs} FROM {tmp}"
        if layout.merge_key:
            keys = ", ".join(q(k) for k in layout.merge_key)
            rest = [c for c in names if c not in layout.merge_key]
            sql += d.upsert_where
            action = (
                "UPDATE SET " + ", ".join(f"{q(c)} = excluded.{q(c)}" for c in rest)
                if rest
                else "NOTHING"
            )
            sql += f" ON CONFLICT ({keys}) DO {action}"
        cur.execute(sql)

    @staticmethod
    def locator_predicate(locator: str) -> str:
        """The WHERE clause that selects the rows a chunk committed."""
        kind, _, rest = locator.partition(":")
        if kind == "xid":
            return f"xmin = '{int(rest)}'::xid"
        if kind == "rowid":
            lo, _, hi = rest.partition(":")
            return f"rowid BETWEEN {int(lo)} AND {int(hi)}"
        if kind == "none":
            raise TargetError(
                "the rows of this chunk cannot be told apart in the SQLite target (a merge, a "
                "table WITHOUT ROWID, or an INTEGER PRIMARY KEY the job fills), so they cannot "
                "be checked one chunk at a time; verify needs a PostgreSQL target there",
                transient=False,
            )
        raise TargetError(f"unknown chunk locator {locator!r}")

    def read_rows(
        self,
        locator: str,
        columns: list[str],
        cur: Any = None,
        as_text: set[str] | None = None,
        session: tuple[tuple[str, str], ...] = (),
    ) -> pa.Table:
        """The rows a chunk committed (or, inside its transaction, is committing); columns in
        ``as_text`` are read as their text (what a staged cast was given), rendered under the
        source's ``session`` settings so that it compares with the source's text."""
        own = cur is None
        cur = cur or self.conn.cursor()
        casts, q = self.dialect.server_casts, self.q
        try:
            if as_text and casts:
                for setting in session_statements(session):
                    cur.execute(setting)
            cols = (
                ", ".join(
                    f"{q(c)}::text AS {q(c)}" if as_text and c in as_text and casts else q(c)
                    for c in columns
                )
                or "1"
            )
            cur.execute(
                f"SELECT {cols} FROM {self.ref.qualified()} WHERE {self.locator_predicate(locator)}"
            )
            table: pa.Table = cur.fetch_arrow_table()
            return table
        finally:
            if own:
                cur.close()
                self.conn.commit()

    def _check_written(
        self,
        cur: Any,
        chunk_id: int,
        locator: str,
        sent: list[pa.Schema],
        digest: Checksum,
        as_text: set[str] | None = None,
        session: tuple[tuple[str, str], ...] = (),
    ) -> None:
        names = sent[0].names if sent else []
        back = self.read_rows(locator, names, cur, as_text, session)
        found = Checksum()
        if sent and back.num_rows:
            found.add(align(back, sent[0]))
        if back.num_rows != digest.rows or found.digest != digest.digest:
            raise VerificationError(
                f"chunk {chunk_id}: the target holds {back.num_rows} rows (checksum "
                f"{found.digest}) where {digest.rows} were sent (checksum {digest.digest}); "
                "rolled back, to be retried",
                transient=True,
            )
