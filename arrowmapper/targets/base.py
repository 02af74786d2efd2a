"""The Target: one ADBC connection to a target table and what the engine does with it --
prepare the table for a mode, write a chunk and its ledger row in ONE transaction
(:class:`~.chunks.ChunkStore`), read a chunk back, swap a staging table in, clean up.

The shared implementation is here; what differs per system is a row of :mod:`.dialects` or a
method a system's module overrides (:mod:`.postgresql`, :mod:`.sqlite`). Open one with
:func:`arrowmapper.targets.open_target`; every Target is a context manager::

    with open_target(endpoint, TableRef(None, "events", endpoint.dialect)) as target:
        target.row_count()

Pitfall: :meth:`_read` (and every catalog lookup built on it) commits. Never call one inside a
chunk's or the swap's transaction: it would commit half of it.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import pyarrow as pa

from ..config import Endpoint
from ..errors import TargetError, redact
from ..sql import derived_name
from .chunks import ChunkStore
from .dialects import TableRef
from .ledger import JOBS, LEDGER
from .session import lit
from .typemap import CatalogColumn, storage_schema


class Target(ChunkStore):
    """One ADBC connection to the target, with the operations the engine needs."""

    # -- what a system's module answers
    @abstractmethod
    def table_exists(self) -> bool:
        """Whether the table exists."""
        raise NotImplementedError

    @abstractmethod
    def arrow_schema(self) -> pa.Schema:
        """The table's columns as the Arrow types batches are cast to."""
        raise NotImplementedError

    @abstractmethod
    def required_columns(self) -> list[str]:
        """Columns a row must be given a value for (NOT NULL, no default, not generated)."""
        raise NotImplementedError

    @abstractmethod
    def unique_keys(self) -> list[tuple[str, ...]]:
        """Column sets with a unique index (primary key first): what ON CONFLICT can use."""
        raise NotImplementedError

    @abstractmethod
    def _same_table(self, stage: TableRef) -> bool:
        """Whether ``stage`` names this very table (inside the swap's transaction)."""
        raise NotImplementedError

    @classmethod
    def connect_copy(cls, endpoint: Endpoint) -> Any:
        """A connection that can relay a binary COPY stream (the COPY fast path)."""
        raise TargetError(f"a {cls.dialect.label} target cannot take a relayed COPY stream")

    def copy_columns(self) -> list[tuple[str, int, int, str]]:
        """``(name, type oid, typmod, declared type)`` of each column (the COPY fast path)."""
        raise TargetError(f"a {self.dialect.label} target cannot take a relayed COPY stream")

    def type_exists(self, sql_type: str) -> bool:
        """Whether a named type (an enum, a domain, ...) exists in the target."""
        return False

    def pg_columns(self) -> list[CatalogColumn]:
        """The target's columns with their exact types (PostgreSQL's catalog)."""
        raise TargetError(f"a {self.dialect.label} target has no PostgreSQL catalog")

    def table_identity(self) -> str | None:
        """What tells this table from one dropped and created again under its name (None
        where the system has no such id: there the committed rows are checked instead)."""
        return None

    def check_can_empty(self, mode: str, in_transaction: bool = False) -> None:
        """Refuse, before any row moves, a ``replace`` or ``truncate`` that could not empty
        this table without touching another (a system that enforces foreign keys checks
        them; ADBC's SQLite connections do not)."""

    def discard_if_unused(self) -> bool:
        """Close the connection and remove the target's database when this run created it
        and it holds nothing but arrowmapper's empty ledger (a SQLite file a refused or
        failed run would otherwise leave behind); True when it was removed. A server's
        database is never removed."""
        return False

    def _referenced(self) -> bool:
        """Whether a foreign key elsewhere points at this table (TRUNCATE would refuse)."""
        return False

    # -- the table
    def schema_exists(self) -> bool:
        """Whether the schema this table is in exists (a system without schemas: always)."""
        if not self.dialect.schemas or not self.ref.schema:
            return True
        return self._has_schema(self.ref.schema)

    def _has_schema(self, schema: str) -> bool:
        """Whether ``schema`` exists (asked only where the dialect has schemas)."""
        raise NotImplementedError

    def create_table(self, schema: pa.Schema) -> pa.Schema:
        """Create the table (never appending) with the storage types of ``schema``."""
        storage = storage_schema(schema, self.dialect.name)
        cur = self.conn.cursor()
        try:
            kwargs = {"db_schema_name": self.ref.schema} if self.ref.schema else {}
            cur.adbc_ingest(self.ref.table, storage.empty_table(), mode="create", **kwargs)
            self.conn.commit()
        except Exception as exc:
            self.rollback()
            raise TargetError(
                f"cannot create target table {self.ref.display}: {redact(str(exc))}"
            ) from exc
        finally:
            cur.close()
        return self.arrow_schema()

    def create_table_sql(self, columns: list[tuple[str, str]], key: tuple[str, ...] = ()) -> None:
        """Create the table with these exact SQL types (and a primary key on ``key``)."""
        parts = [f"{self.q(n)} {t}" for n, t in columns]
        if key:
            parts.append(f"PRIMARY KEY ({', '.join(self.q(k) for k in key)})")
        self._ddl(
            f"CREATE TABLE {self.ref.qualified()} ({', '.join(parts)})",
            f"cannot create target table {self.ref.display}",
        )

    def add_primary_key(self, key: tuple[str, ...]) -> None:
        """Make ``key`` unique in the table (the merge key of a table the job created)."""
        index = self.q(derived_name(self.ref.table, "key", self.dialect.name))
        cols = ", ".join(self.q(k) for k in key)
        self._ddl(
            self.dialect.add_key.format(table=self.ref.qualified(), cols=cols, index=index),
            f"cannot add the merge key ({', '.join(key)}) to {self.ref.display}",
        )

    def _ddl(self, sql: str, failed: str) -> None:
        """Run and commit one statement; when it fails, roll back and raise a terminal
        :class:`TargetError` that says what ``failed``."""
        try:
            self._exec(sql)
            self.conn.commit()
        except Exception as exc:
            self.rollback()
            raise TargetError(f"{failed}: {redact(str(exc))}", transient=False) from exc

    def create_like(self, other: TableRef) -> None:
        """Create this (staging) table with ``other``'s columns and types."""
        self._exec(self.dialect.create_like.format(new=self.ref.qualified(), old=other.qualified()))
        self.conn.commit()

    def _empty_sql(self) -> str:
        if not self.dialect.truncates or self._referenced():
            return f"DELETE FROM {self.ref.qualified()}"
        return f"TRUNCATE {self.ref.qualified()}"

    def truncate_and_register(
        self, job_id: str, plan_json: str, fingerprint: dict[str, str]
    ) -> bool:
        """Claim ``job_id`` and empty the table in one transaction, so a resumed job (which
        finds its registration) never empties the table again, and a run that loses the claim
        to another empties nothing. Returns whether this call claimed the job."""
        try:
            if not self._exec(self._register_sql(job_id, plan_json, fingerprint)):
                self.rollback()
                return False
            self._exec(self._empty_sql())
            self.conn.commit()
            return True
        except Exception as exc:
            self.rollback()
            raise TargetError(
                f"cannot empty {self.ref.display} for mode='truncate': {redact(str(exc))}",
                transient=False,
            ) from exc

    def drop_table(self, quiet: bool = False) -> None:
        """Drop this table (only ever a staging table arrowmapper created)."""
        self.rollback()
        try:
            self._exec(f"DROP TABLE IF EXISTS {self.ref.qualified()}")
            self.conn.commit()
        except Exception:
            self.rollback()
            if not quiet:
                raise

    def swap_in(
        self,
        stage: TableRef,
        columns: list[str],
        existed: bool,
        job_id: str,
        empty_with: str = "truncate",
    ) -> bool:
        """Make the loaded staging table the target and mark ``job_id`` finished, in one
        transaction: a reader sees the old rows or the new ones, never a mix. An existing
        target keeps its definition (indexes, constraints, grants, triggers, dependent views):
        its rows are replaced by the stage's. A new one is the stage, renamed.

        The target is emptied only here, and only after checking, inside the transaction, that
        the stage is another table than the target and holds every row the job's ledger says
        it committed. ``empty_with="delete"`` empties the old rows with DELETE instead of
        TRUNCATE: slower, but a REPEATABLE READ reader whose snapshot predates the swap keeps
        seeing the old rows (after TRUNCATE it sees an empty table). Returns False (and changes
        nothing) when the job was already finished by another run."""
        try:
            if not self._exec(self._finish_sql(job_id)):
                self.rollback()
                return False
            self._check_stage(stage, job_id)
            if existed:
                # a constraint added while the job ran (inside this transaction: a read that
                # ended it would commit the job as finished before anything was swapped)
                self.check_can_empty("replace", in_transaction=True)
                cols = ", ".join(self.q(c) for c in columns)
                if self.dialect.lock_exclusive:
                    self._exec(self.dialect.lock_exclusive.format(table=self.ref.qualified()))
                empty = (
                    f"DELETE FROM {self.ref.qualified()}"
                    if empty_with == "delete"
                    else self._empty_sql()
                )
                self._exec(empty)
                self._exec(
                    f"INSERT INTO {self.ref.qualified()} ({cols}) SELECT {cols} FROM "
                    f"{stage.qualified()}"
                )
                self._exec(f"DROP TABLE {stage.qualified()}")
                # the rows now carry this transaction's id (SQLite: new rowids): every chunk's
                # locator becomes the whole swapped table
                self._exec(
                    f"UPDATE {self.ref.qualified(LEDGER)} SET locator = "
                    f"{self.dialect.swapped_locator} "
                    f"WHERE job_id = {lit(job_id)}"
                )
            else:
                self._exec(f"ALTER TABLE {stage.qualified()} RENAME TO {self.q(self.ref.table)}")
            # the job's rows are in the target now: verify and the ledger name it
            for table in (JOBS, LEDGER):
                self._exec(
                    f"UPDATE {self.ref.qualified(table)} SET target_table = "
                    f"{lit(self.ref.display)} WHERE job_id = {lit(job_id)}"
                )
            self.conn.commit()
            return True
        except Exception as exc:
            self.rollback()
            raise TargetError(
                f"loaded every chunk into {stage.display} but could not swap it into "
                f"{self.ref.display}: {redact(str(exc))}; the old table is untouched, fix the "
                "cause and resume the job to retry the swap",
                transient=False,
            ) from exc

    def _check_stage(self, stage: TableRef, job_id: str) -> None:
        """Refuse a swap that could lose the target: a stage that resolves to the target
        itself, or one that lacks rows the ledger says were committed."""
        if self._same_table(stage):
            raise TargetError(
                f"the staging table {stage.display} is the target {self.ref.display} itself; "
                "refusing to swap (the target is untouched)",
                transient=False,
            )
        held = int(self._exec(f"SELECT COUNT(*) FROM {stage.qualified()}")[0][0])
        want = self._exec(
            f"SELECT COALESCE(SUM(rows), 0) FROM {self.ref.qualified(LEDGER)} "
            f"WHERE job_id = {lit(job_id)}"
        )
        expected = int(want[0][0]) if want else 0
        if held != expected:
            raise TargetError(
                f"the staging table {stage.display} holds {held} rows where job {job_id!r} "
                f"committed {expected}; refusing to swap it in (the target is untouched)",
                transient=False,
            )

    def row_count(self) -> int:
        """The rows the table holds."""
        rows = self._read(f"SELECT COUNT(*) FROM {self.ref.qualified()}")
        return int(rows[0][0])
