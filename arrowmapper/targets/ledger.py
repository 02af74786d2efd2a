"""arrowmapper's own tables in the target: the ledger (one row per committed chunk) and the
jobs table (one row per job: its plan, fingerprint and whether it finished), with their DDL,
the upgrade of an older jobs table, and the typed records read from them.

A chunk's ledger row is written in the chunk's own transaction (see
:meth:`~.base.Target.write_chunk`), so "the ledger has the row" means "the rows are in"::

    entry = target.ledger("job-1")[0]   # LedgerEntry(rows=..., rows_read=..., ...)
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import TargetError, redact
from .session import Connected, lit

LEDGER = "arrowmapper_ledger"
JOBS = "arrowmapper_jobs"


@dataclass(frozen=True)
class Written:
    """What one chunk committed: rows, checksum (with ``verify``) and where its rows are."""

    rows: int
    checksum: str | None
    locator: str
    #: seconds spent reading the chunk back and comparing it (``verify``; 0 without)
    verify_s: float = 0.0


@dataclass(frozen=True)
class JobRecord:
    """A job's registration in the target's jobs table."""

    job_id: str
    target_table: str  # where its chunks load (a replace job's staging table)
    plan: str  # the stored plan (JSON)
    fingerprint: dict[str, str] | None  # what defines the job (None: an older arrowmapper's)
    finished_at: str | None  # set when every chunk committed (and a replace job swapped)


@dataclass(frozen=True)
class Earlier:
    """A chunk an earlier job committed into the same table (incremental runs skip what it
    read): the job, the chunk's ledger identity (``bounds``) and whether that job finished."""

    job_id: str
    bounds: str
    finished: bool


@dataclass(frozen=True)
class LedgerEntry:
    """One committed chunk's ledger row."""

    rows: int  # rows written
    rows_read: int | None  # rows its worker read (None: not recorded)
    checksum: str | None  # of the rows sent (``verify`` jobs)
    locator: str | None  # where its rows are (see Target.locator_predicate)


class Ledger(Connected):
    """The ledger and jobs tables beside a target table (in its schema)."""

    @abstractmethod
    def column_types(self, name: str | None = None) -> dict[str, str]:
        """Column name -> the database's own type name of this table, or of the table ``name``
        beside it (empty when it does not exist)."""
        raise NotImplementedError

    # -- the tables
    def ensure_ledger(self) -> None:
        """Create the ledger and jobs tables where they are missing (and upgrade old ones)."""
        ts = self.dialect.timestamp_column
        stmts = [
            f"CREATE TABLE IF NOT EXISTS {self.ref.qualified(LEDGER)} (job_id TEXT NOT NULL, "
            "chunk_id INTEGER NOT NULL, target_table TEXT NOT NULL, bounds TEXT, "
            f"rows BIGINT NOT NULL, rows_read BIGINT, checksum TEXT, locator TEXT, committed_at {ts}, "
            "PRIMARY KEY (job_id, chunk_id))",
            f"CREATE TABLE IF NOT EXISTS {self.ref.qualified(JOBS)} (job_id TEXT PRIMARY KEY, "
            f"target_table TEXT NOT NULL, plan TEXT NOT NULL, created_at {ts}, "
            "fingerprint TEXT, finished_at TEXT)",
        ]
        for sql in stmts:
            try:
                self._exec(sql)
                self.conn.commit()
            except Exception as exc:  # a concurrent job created it first
                self.rollback()
                if "already exists" not in str(exc) and "duplicate key" not in str(exc):
                    raise TargetError(
                        f"cannot create the ledger table: {redact(str(exc))}"
                    ) from exc
        self._migrate_jobs()

    def _migrate_jobs(self) -> None:
        """Add the columns a jobs table made by an older arrowmapper lacks."""
        have = set(self._job_columns())
        for column in ("fingerprint", "finished_at"):
            if column in have:
                continue
            try:
                self._exec(f"ALTER TABLE {self.ref.qualified(JOBS)} ADD COLUMN {column} TEXT")
                self.conn.commit()
            except Exception as exc:  # a concurrent job added it first
                self.rollback()
                if column not in self._job_columns():
                    raise TargetError(
                        f"cannot upgrade the jobs table: {redact(str(exc))}", transient=False
                    ) from exc

    def _job_columns(self) -> list[str]:
        return list(self.column_types(JOBS))

    # -- jobs
    def has_ledger(self) -> bool:
        """Whether this schema has arrowmapper's jobs table (any job ever ran here)."""
        return bool(self._job_columns())

    def job_record(self, job_id: str) -> JobRecord | None:
        """The stored registration of ``job_id`` in this schema, or None."""
        if not self.has_ledger():
            return None
        self._migrate_jobs()
        rows = self._read(
            f"SELECT target_table, plan, fingerprint, finished_at FROM "
            f"{self.ref.qualified(JOBS)} WHERE job_id = {lit(job_id)}"
        )
        if not rows:
            return None
        table, plan, fingerprint, finished = rows[0]
        return JobRecord(
            job_id,
            str(table),
            str(plan),
            json.loads(fingerprint) if fingerprint else None,
            None if finished is None else str(finished),
        )

    def emptied_by(self, job_id: str) -> str | None:
        """Why the rows ``job_id`` wrote are no longer in its table, or None: a job registered
        after it emptied the table (``truncate``: when it started; ``replace``: when it
        swapped its rows in). Said in words naming that job and when it ran."""
        if not self.has_ledger():
            return None
        self._migrate_jobs()
        rows = self._read(
            f"SELECT job_id, target_table, fingerprint, created_at, finished_at FROM "
            f"{self.ref.qualified(JOBS)} ORDER BY {self.dialect.registered_order}"
        )
        ids = [str(r[0]) for r in rows]
        if job_id not in ids:
            return None
        table = str(rows[ids.index(job_id)][1])
        for other, where, fingerprint, created, finished in rows[ids.index(job_id) + 1 :]:
            mode = (json.loads(fingerprint) if fingerprint else {}).get("mode")
            if str(where) != table or not (
                mode == "truncate" or (mode == "replace" and finished is not None)
            ):
                continue
            when = f"started {created}" if mode == "truncate" else f"finished {finished}"
            verb = "emptied" if mode == "truncate" else "replaced"
            return (
                f"job {other!r} (mode={mode}, {when}) {verb} {table} after this job wrote "
                "into it, so none of this job's rows are there to check; verify "
                f"{other!r} instead"
            )
        return None

    def unregister_job(self, job_id: str) -> None:
        """Forget a job that failed before its first chunk (so its id can be used again)."""
        try:
            self._exec(
                f"DELETE FROM {self.ref.qualified(JOBS)} WHERE job_id = {lit(job_id)} AND NOT "
                f"EXISTS (SELECT 1 FROM {self.ref.qualified(LEDGER)} WHERE job_id = {lit(job_id)})"
            )
            self.conn.commit()
        except Exception:
            self.rollback()

    def set_fingerprint(self, job_id: str, fingerprint: dict[str, str]) -> None:
        """Store what defines ``job_id`` (its settings, the table's identity)."""
        self._exec(
            f"UPDATE {self.ref.qualified(JOBS)} SET fingerprint = "
            f"{lit(json.dumps(fingerprint, sort_keys=True))} WHERE job_id = {lit(job_id)}"
        )
        self.conn.commit()

    def _finish_sql(self, job_id: str) -> str:
        return (
            f"UPDATE {self.ref.qualified(JOBS)} SET finished_at = {self.dialect.now} "
            f"WHERE job_id = {lit(job_id)} AND finished_at IS NULL RETURNING job_id"
        )

    def mark_finished(self, job_id: str) -> None:
        """Record that every chunk of ``job_id`` committed: resuming it is then a no-op."""
        self._exec(self._finish_sql(job_id))
        self.conn.commit()

    def _register_sql(self, job_id: str, plan_json: str, fingerprint: dict[str, str]) -> str:
        return (
            f"INSERT INTO {self.ref.qualified(JOBS)} (job_id, target_table, plan, fingerprint) "
            f"VALUES ({lit(job_id)}, {lit(self.ref.display)}, {lit(plan_json)}, "
            f"{lit(json.dumps(fingerprint, sort_keys=True))}) "
            "ON CONFLICT DO NOTHING RETURNING job_id"
        )

    def register_job(self, job_id: str, plan_json: str, fingerprint: dict[str, str]) -> bool:
        """Claim ``job_id`` for this run: True when this call registered it, False when another
        run (earlier or concurrent) already had. PostgreSQL makes a concurrent claim of the
        same key wait for the first and then find it."""
        rows = self._exec(self._register_sql(job_id, plan_json, fingerprint))
        self.conn.commit()
        return bool(rows)

    # -- chunks
    def ledger(self, job_id: str) -> dict[int, LedgerEntry]:
        """chunk_id -> its :class:`LedgerEntry`, for every chunk ``job_id`` committed."""
        rows = self._read(
            f"SELECT chunk_id, rows, rows_read, checksum, locator FROM "
            f"{self.ref.qualified(LEDGER)} WHERE job_id = {lit(job_id)}"
        )
        return {
            int(c): LedgerEntry(int(w), None if r is None else int(r), s, loc)
            for c, w, r, s, loc in rows
        }

    def earlier(self) -> list[Earlier]:
        """Every chunk any job committed into this table, with its bounds (empty before the
        ledger exists)."""
        if not self.has_ledger():
            return []
        return self._earlier(self._read)

    def admit_incremental(self, job_id: str, admit: Callable[[list[Earlier]], bool]) -> bool:
        """Decide, one registered incremental job at a time, whether ``job_id`` may load what
        it planned: ``admit`` sees every other job's chunks (committed, or planned by a job
        still loading). When it says no, ``job_id``'s registration is forgotten in the same
        transaction. Two runs that planned at once are thus never both refused, and never
        both admitted with the same files: the second to get here sees the first's plan, or
        sees that the first was refused and forgotten."""
        jobs = self.ref.qualified(JOBS)
        try:
            if self.dialect.lock_exclusive:  # taken first: no lock to upgrade, no deadlock
                self._exec(self.dialect.lock_exclusive.format(table=jobs))
            else:  # SQLite: a write takes the database's write lock until the commit
                self._exec(f"UPDATE {jobs} SET plan = plan WHERE job_id = {lit(job_id)}")
            others = [e for e in self._earlier(self._exec) if e.job_id != job_id]
            admitted = admit(others)
            if not admitted:
                self._exec(
                    f"DELETE FROM {jobs} WHERE job_id = {lit(job_id)} AND NOT EXISTS (SELECT 1 "
                    f"FROM {self.ref.qualified(LEDGER)} WHERE job_id = {lit(job_id)})"
                )
            self.conn.commit()
            return admitted
        except BaseException:
            self.rollback()
            raise

    def _earlier(self, run: Callable[[str], list[tuple[Any, ...]]]) -> list[Earlier]:
        rows = run(
            f"SELECT l.job_id, l.bounds, j.finished_at FROM {self.ref.qualified(LEDGER)} l "
            f"LEFT JOIN {self.ref.qualified(JOBS)} j ON j.job_id = l.job_id "
            f"WHERE l.target_table = {lit(self.ref.display)} ORDER BY l.job_id, l.chunk_id"
        )
        out = [Earlier(str(j), str(b or ""), f is not None) for j, b, f in rows]
        # a job still loading holds every chunk of its plan, committed or not
        running = run(
            f"SELECT job_id, plan FROM {self.ref.qualified(JOBS)} WHERE finished_at IS NULL "
            f"AND target_table = {lit(self.ref.display)} ORDER BY job_id"
        )
        for job_id, plan in running:
            try:
                chunks = json.loads(str(plan)).get("chunks", [])
            except ValueError:
                continue
            out.extend(Earlier(str(job_id), str(c.get("bounds") or ""), False) for c in chunks)
        return out

    def committed(self, job_id: str) -> dict[int, int]:
        """chunk_id -> rows for every chunk of ``job_id`` already committed."""
        rows = self._read(
            f"SELECT chunk_id, rows FROM {self.ref.qualified(LEDGER)} WHERE job_id = {lit(job_id)}"
        )
        return {int(c): int(r) for c, r in rows}

    def settled_rows(self, job_id: str, chunk_id: int) -> int | None:
        """The rows ``chunk_id`` committed, or None when it did not -- waiting, first, for a
        commit still in progress. A worker killed during its COMMIT leaves the server to
        finish (or abort) that transaction; a plain read would not see it yet, and a chunk
        split on that reading would load the same rows twice. Claiming the chunk's ledger
        row waits on the dying transaction's lock; the claim is rolled back at once."""
        ledger = self.ref.qualified(LEDGER)
        try:
            claimed = self._exec(
                f"INSERT INTO {ledger} (job_id, chunk_id, target_table, bounds, rows) VALUES "
                f"({lit(job_id)}, {int(chunk_id)}, {lit(self.ref.display)}, '', -1) "
                "ON CONFLICT DO NOTHING RETURNING chunk_id"
            )
        finally:
            self.rollback()
        if claimed:
            return None
        return self.committed(job_id).get(chunk_id)

    def stored_plan(self, job_id: str) -> tuple[str, str] | None:
        """``(target table, plan JSON)`` of ``job_id``, or None."""
        rows = self._read(
            f"SELECT target_table, plan FROM {self.ref.qualified(JOBS)} WHERE job_id = {lit(job_id)}"
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def store_plan(self, job_id: str, plan_json: str) -> None:
        """Register ``job_id`` with its plan (no fingerprint)."""
        self._exec(
            f"INSERT INTO {self.ref.qualified(JOBS)} (job_id, target_table, plan) VALUES "
            f"({lit(job_id)}, {lit(self.ref.display)}, {lit(plan_json)})"
        )
        self.conn.commit()

    def update_plan(self, job_id: str, plan_json: str) -> None:
        """Store a job's changed plan (a chunk was split), so resume finds the halves."""
        self._exec(
            f"UPDATE {self.ref.qualified(JOBS)} SET plan = {lit(plan_json)} "
            f"WHERE job_id = {lit(job_id)}"
        )
        self.conn.commit()

    def _committed_one(self, job_id: str, chunk_id: int) -> set[int]:
        rows = self._read(
            f"SELECT chunk_id FROM {self.ref.qualified(LEDGER)} WHERE job_id = {lit(job_id)} "
            f"AND chunk_id = {int(chunk_id)}"
        )  # _read ends the read transaction before a SQLite writer starts
        return {int(r[0]) for r in rows}
