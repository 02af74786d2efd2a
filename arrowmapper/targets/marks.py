"""The high-water marks of recurring jobs (``name=`` and ``cursor=``): the table
``arrowmapper_marks`` beside the target table, one row per job name.

A row holds the name's definition (source, query, target table, cursor column), its mark (the
cursor's value as the source's exact text, and the cursor's kind) with the job that moved it,
and the run in progress (``run_job`` with the bounds it loads, ``run_from`` exclusive and
``run_to`` inclusive). A run is claimed under a lock on the row (:meth:`Marks.claim_run`), so
two runs of one name never load at once; the mark moves in the transaction of the chunk
commit that completes the run's set of chunks (:meth:`Marks.complete_run`, called inside the
chunk's transaction with the job's row locked), so a run that failed moves nothing and a mark
is never ahead of the rows it stands for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, TargetError, redact
from .ledger import JOBS, LEDGER, Ledger
from .session import lit

MARKS = "arrowmapper_marks"

#: the definition of a name, in the order a refusal names what changed
DEFINITION = ("source", "query", "target_table", "cursor_column")


@dataclass(frozen=True)
class MarkRecord:
    """A name's row in the marks table."""

    name: str
    definition: dict[str, str]  # source, query, target_table, cursor_column
    mark: str | None  # the cursor's highest loaded value, as the source's text (None: none)
    mark_type: str | None  # the cursor's kind when the mark was stored
    job_id: str | None  # the run that moved the mark
    moved_at: str | None
    run_job: str | None  # the run claimed last (finished when it is ``job_id``)
    run_from: str | None  # its bounds: cursor > run_from (None: no lower bound)
    run_to: str | None  # cursor <= run_to (None: nothing to load)
    run_type: str | None


@dataclass(frozen=True)
class RunClaim:
    """What a run of ``name`` asks to load, checked against the row under its lock."""

    name: str
    job_id: str
    definition: dict[str, str]
    planned_mark: str | None  # the mark the run planned from (None: none)
    run_from: str | None
    run_to: str | None
    run_type: str
    reset: bool = False


_COLUMNS = (
    "name, source, query, target_table, cursor_column, mark, mark_type, job_id, moved_at, "
    "run_job, run_from, run_to, run_type"
)


class Marks(Ledger):
    """The marks table beside a target table (in its schema)."""

    def ensure_marks(self) -> None:
        """Create the marks table where it is missing."""
        sql = (
            f"CREATE TABLE IF NOT EXISTS {self.ref.qualified(MARKS)} (name TEXT PRIMARY KEY, "
            "source TEXT NOT NULL, query TEXT NOT NULL, target_table TEXT NOT NULL, "
            "cursor_column TEXT NOT NULL, mark TEXT, mark_type TEXT, job_id TEXT, "
            "moved_at TEXT, run_job TEXT, run_from TEXT, run_to TEXT, run_type TEXT)"
        )
        try:
            self._exec(sql)
            self.conn.commit()
        except Exception as exc:  # a concurrent job created it first
            self.rollback()
            if not self.column_types(MARKS):
                raise TargetError(
                    f"cannot create the marks table: {redact(str(exc))}", transient=False
                ) from exc

    def mark_record(self, name: str) -> MarkRecord | None:
        """The row of ``name`` in the marks table, or None (no mark: a full load)."""
        if not self.column_types(MARKS):
            return None
        rows = self._read(self._select(name))
        return _record(rows[0]) if rows else None

    def run_owner(self, job_id: str) -> MarkRecord | None:
        """The row of the name whose last claimed run is ``job_id`` (None: the job is not a
        run of a recurring job), so that resuming it moves that name's mark whichever
        options the resume was given."""
        if not self.column_types(MARKS):
            return None
        rows = self._read(
            f"SELECT {_COLUMNS} FROM {self.ref.qualified(MARKS)} WHERE run_job = {lit(job_id)}"
        )
        return _record(rows[0]) if rows else None

    def _select(self, name: str, lock: bool = False) -> str:
        suffix = self.dialect.row_lock if lock else ""
        return (
            f"SELECT {_COLUMNS} FROM {self.ref.qualified(MARKS)} WHERE name = {lit(name)}{suffix}"
        )

    def job_ids(self, prefix: str) -> set[str]:
        """The ids of the registered jobs that start with ``prefix``."""
        if not self.has_ledger():
            return set()
        rows = self._read(f"SELECT job_id FROM {self.ref.qualified(JOBS)}")
        return {str(r[0]) for r in rows if str(r[0]).startswith(prefix)}

    def unfinished_run(
        self, rec: MarkRecord, run: Callable[[str], list[tuple[Any, ...]]] | None = None
    ) -> bool:
        """Whether the run last claimed for ``rec``'s name is still registered and unfinished
        (its mark not moved, its job not finished): a second run would race it on the mark."""
        if rec.run_job is None or rec.run_job == rec.job_id:
            return False
        rows = (run or self._read)(
            f"SELECT 1 FROM {self.ref.qualified(JOBS)} WHERE job_id = {lit(rec.run_job)} "
            "AND finished_at IS NULL"
        )
        return bool(rows)

    def claim_run(self, claim: RunClaim) -> None:
        """Record ``claim.job_id`` as the run of ``claim.name`` loading its bounds, under a lock
        on the name's row; a ConfigError (nothing changed) when another run of the name is
        unfinished, moved the mark since this one planned, or the definition changed."""
        marks = self.ref.qualified(MARKS)
        d = claim.definition
        try:
            self._exec(
                f"INSERT INTO {marks} (name, source, query, target_table, cursor_column) VALUES "
                f"({lit(claim.name)}, {lit(d['source'])}, {lit(d['query'])}, "
                f"{lit(d['target_table'])}, {lit(d['cursor_column'])}) ON CONFLICT DO NOTHING"
            )
            rows = self._exec(self._select(claim.name, lock=True))
            rec = _record(rows[0])
            if self.unfinished_run(rec, self._exec) and rec.run_job != claim.job_id:
                raise ConfigError(unfinished_message(claim.name, str(rec.run_job)))
            if not claim.reset:
                changed = definition_changes(rec, d)
                if changed:
                    raise ConfigError(changed_message(claim.name, changed))
                if rec.mark != claim.planned_mark:
                    raise ConfigError(
                        f"another run of {claim.name!r} moved its mark (to {rec.mark!r}) while "
                        "this one planned; run it again"
                    )
            reset = (
                ", mark = NULL, mark_type = NULL, job_id = NULL, moved_at = NULL"
                if claim.reset
                else ""
            )
            self._exec(
                f"UPDATE {marks} SET source = {lit(d['source'])}, query = {lit(d['query'])}, "
                f"target_table = {lit(d['target_table'])}, "
                f"cursor_column = {lit(d['cursor_column'])}, run_job = {lit(claim.job_id)}, "
                f"run_from = {_lit_or_null(claim.run_from)}, "
                f"run_to = {_lit_or_null(claim.run_to)}, run_type = {lit(claim.run_type)}"
                f"{reset} WHERE name = {lit(claim.name)}"
            )
            self.conn.commit()
        except BaseException:
            self.rollback()
            raise

    def complete_run(
        self, job_id: str, name: str, run: Callable[[str], list[tuple[Any, ...]]] | None = None
    ) -> bool:
        """Move ``name``'s mark to the bounds of its run ``job_id`` when every chunk of the job's
        plan is in the ledger. Called inside a chunk's transaction (``run``: its statements),
        it locks the job's row first, so of two chunks committing at once the second waits and
        then sees the first; called alone (``run`` None: a plan without chunks, or the
        finishing step) it commits. True when the mark moved now."""
        alone = run is None
        exec_ = run or self._exec
        try:
            rows = exec_(
                f"SELECT plan FROM {self.ref.qualified(JOBS)} WHERE job_id = {lit(job_id)}"
                f"{self.dialect.row_lock}"
            )
            if not rows:
                return False
            try:
                need = {int(c["chunk_id"]) for c in json.loads(str(rows[0][0])).get("chunks", [])}
            except (ValueError, KeyError, TypeError):
                return False
            have = {
                int(r[0])
                for r in exec_(
                    f"SELECT chunk_id FROM {self.ref.qualified(LEDGER)} "
                    f"WHERE job_id = {lit(job_id)} AND rows >= 0"
                )
            }
            if not need <= have:
                return False
            moved = exec_(
                f"UPDATE {self.ref.qualified(MARKS)} SET mark = COALESCE(run_to, mark), "
                f"mark_type = COALESCE(run_type, mark_type), job_id = run_job, "
                f"moved_at = {self.dialect.now} WHERE name = {lit(name)} AND "
                f"run_job = {lit(job_id)} AND (job_id IS NULL OR job_id <> run_job) "
                "RETURNING name"
            )
            if alone:
                self.conn.commit()
            return bool(moved)
        except BaseException:
            if alone:
                self.rollback()
            raise


def _lit_or_null(value: str | None) -> str:
    return "NULL" if value is None else lit(value)


def _record(row: tuple[Any, ...]) -> MarkRecord:
    def s(v: Any) -> str | None:
        return None if v is None else str(v)

    name, source, query, table, column, mark, mtype, job, moved, rjob, rfrom, rto, rtype = row
    definition = {
        "source": str(source),
        "query": str(query),
        "target_table": str(table),
        "cursor_column": str(column),
    }
    return MarkRecord(
        str(name),
        definition,
        s(mark),
        s(mtype),
        s(job),
        s(moved),
        s(rjob),
        s(rfrom),
        s(rto),
        s(rtype),
    )


def definition_changes(rec: MarkRecord, now: dict[str, str]) -> list[str]:
    """One line per part of the name's definition that differs from the stored one (none
    while no run has moved the mark: a name whose first runs were refused or abandoned before
    loading anything may still be defined anew)."""
    if rec.job_id is None:
        return []
    words = {
        "source": "source",
        "query": "query",
        "target_table": "target table",
        "cursor_column": "cursor",
    }
    return [
        f"{words[k]}: was {rec.definition[k]!r}, now {now[k]!r}"
        for k in DEFINITION
        if rec.definition.get(k) != now.get(k)
    ]


def changed_message(name: str, changed: list[str]) -> str:
    """The refusal of a run whose definition is not its name's."""
    return (
        f"job name {name!r} has a mark that belongs to another definition ("
        + "; ".join(changed)
        + "); run it as it was, use a new name, or pass reset=True to start "
        "over with a full load"
    )


def unfinished_message(name: str, job_id: str) -> str:
    """The refusal of a second run while ``job_id`` of the same name is unfinished."""
    return (
        f"job name {name!r}: its run {job_id!r} has not finished, and two runs of one name "
        f"would race on its mark; see it with `arrowmapper status {job_id}` and resume it "
        f"(job_id={job_id!r}, resume=True), or, to drop it "
        f"and the rows it committed, `arrowmapper clean {job_id} --rows` (do not delete its "
        f"row from {JOBS} by hand: the next run would load its rows again)"
    )
