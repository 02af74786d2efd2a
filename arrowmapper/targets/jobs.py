"""The jobs a target's ledger knows, as typed records: list them, look at one, clean one up.

``arrowmapper jobs | status | clean`` read and change the target only through this module::

    with open_target(endpoint, TableRef(schema, LEDGER, endpoint.dialect)) as t:
        for job in list_jobs(t):
            print(job.job_id, job.state, job.committed, job.planned)

A job's rows are found again by its ledger's locators (PostgreSQL: the inserting transaction,
``xmin``); :func:`clean_job` deletes them only for an unfinished append/truncate job whose
every committed chunk still holds exactly what the ledger says, and only where the dialect's
locators prove it (``Dialect.locators_prove_rows``: not SQLite's rowid ranges, which also
cover rows updated since and rowids reused after a delete).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TargetError, error_info, redact
from ..identity import rows_identity
from ..sql import DERIVED_MARKER
from .dialects import TableRef
from .ledger import JOBS, LEDGER
from .session import lit

if TYPE_CHECKING:  # no import cycle at run time
    from .base import Target

#: modes whose chunks only add rows: the rows a chunk committed are exactly its locator's.
_APPEND_ONLY = ("append", "truncate")


@dataclass(frozen=True)
class JobInfo:
    """One job of the jobs table with what its ledger committed."""

    job_id: str
    name: str | None  # a recurring job's name (where the jobs table has that column)
    table: str  # the table the job fills (a replace job: its final table, not the stage)
    load_table: str  # where its chunks load (a replace job's staging table)
    mode: str | None  # None: an older arrowmapper's job (no fingerprint)
    strategy: str | None
    planned: int  # chunks in its plan
    committed: int  # chunks with a ledger row
    rows: int  # rows its committed chunks wrote
    started: datetime | None
    last_commit: datetime | None
    finished_at: datetime | None
    plan_chunks: tuple[int, ...] = ()  # the plan's chunk ids
    committed_chunks: tuple[int, ...] = ()  # the chunk ids with a ledger row
    fingerprint: dict[str, str] | None = None
    live: bool = False  # a run is loading one of its chunks now (where that can be known)

    @property
    def finished(self) -> bool:
        """Whether every chunk committed (and a replace job swapped its stage in)."""
        return self.finished_at is not None

    @property
    def state(self) -> str:
        """``finished``, ``running`` (a run is loading one of its chunks now: known on
        PostgreSQL), ``committed`` (every chunk committed, but the finish step -- a replace
        job's swap, the job marked finished -- never ran: the run was killed; resuming only
        finishes it) or ``unfinished`` (failed, interrupted, or -- where that cannot be known
        -- still running)."""
        if self.finished:
            return "finished"
        if self.live:
            return "running"
        return "committed" if self.planned and not self.missing else "unfinished"

    @property
    def missing(self) -> tuple[int, ...]:
        """The plan's chunks not committed yet."""
        done = set(self.committed_chunks)
        return tuple(c for c in self.plan_chunks if c not in done)

    @property
    def duration_s(self) -> float | None:
        """Seconds from the job's start to its finish (unfinished: to its last commit)."""
        end = self.finished_at or self.last_commit
        if self.started is None or end is None:
            return None
        return max(0.0, (end - self.started).total_seconds())

    @property
    def staged(self) -> bool:
        """Whether its chunks load a staging table (a replace job)."""
        return self.load_table != self.table

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (times as ISO 8601, UTC)."""

        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "job_id": self.job_id,
            "name": self.name,
            "table": self.table,
            "load_table": self.load_table,
            "mode": self.mode,
            "strategy": self.strategy,
            "state": self.state,
            "chunks_planned": self.planned,
            "chunks_committed": self.committed,
            "chunks_missing": list(self.missing),
            "rows": self.rows,
            "started": iso(self.started),
            "last_commit": iso(self.last_commit),
            "finished_at": iso(self.finished_at),
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
        }


@dataclass(frozen=True)
class Cleaned:
    """What :func:`clean_job` removed."""

    job_id: str
    ledger_rows: int  # chunk rows removed from the ledger
    stage_dropped: str | None  # the staging table dropped, if any
    rows_deleted: int | None  # loaded rows deleted (None: not asked)


def _when(value: Any) -> datetime | None:
    """A timestamp read from the ledger (a datetime, or text; naive text is UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        t = value
    else:
        try:
            t = datetime.fromisoformat(str(value).strip())
        except ValueError:
            return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def final_table(load_table: str) -> str:
    """The table a job fills, from where its chunks load: a replace job's staging table
    ``<table>__am_stage_<hash>`` names its final table (its prefix, which a very long name
    may have shortened)."""
    head, marker, _ = load_table.partition(DERIVED_MARKER + "stage_")
    return head if marker else load_table


def _plan_chunks(plan: str) -> tuple[tuple[int, ...], str | None]:
    try:
        data = json.loads(plan)
    except ValueError:
        return (), None
    chunks = tuple(int(c["chunk_id"]) for c in data.get("chunks", []) if "chunk_id" in c)
    return chunks, data.get("strategy")


def list_jobs(target: Target, table: str | None = None) -> list[JobInfo]:
    """Every job in the jobs table beside ``target`` (oldest first), or those filling
    ``table`` (``schema.table`` as the ledger shows it, or the bare name). Empty when no job
    ever ran there."""
    if not target.has_ledger():
        return []
    columns = set(target.column_types(JOBS))
    name = "name" if "name" in columns else "NULL"
    finished = "finished_at" if "finished_at" in columns else "NULL"
    fp = "fingerprint" if "fingerprint" in columns else "NULL"
    jobs = target._read(
        f"SELECT job_id, {name}, target_table, plan, {fp}, created_at, {finished} "
        f"FROM {target.ref.qualified(JOBS)} ORDER BY created_at, job_id"
    )
    ledger: dict[str, list[tuple[int, int, Any]]] = {}
    if target.column_types(LEDGER):
        for job_id, chunk_id, rows, at in target._read(
            f"SELECT job_id, chunk_id, rows, committed_at FROM {target.ref.qualified(LEDGER)}"
        ):
            ledger.setdefault(str(job_id), []).append((int(chunk_id), int(rows), at))
    out = []
    for job_id, job_name, load_table, plan, fingerprint, created, done in jobs:
        chunks, strategy = _plan_chunks(str(plan))
        entries = [e for e in ledger.get(str(job_id), []) if e[1] >= 0]
        try:
            parts = json.loads(fingerprint) if fingerprint else None
        except ValueError:
            parts = None
        info = JobInfo(
            job_id=str(job_id),
            name=None if job_name is None else str(job_name),
            table=final_table(str(load_table)),
            load_table=str(load_table),
            mode=(parts or {}).get("mode"),
            strategy=strategy,
            planned=len(chunks),
            committed=len(entries),
            rows=sum(e[1] for e in entries),
            started=_when(created),
            last_commit=max((t for t in (_when(e[2]) for e in entries) if t), default=None),
            finished_at=_when(done),
            plan_chunks=chunks,
            committed_chunks=tuple(sorted(e[0] for e in entries)),
            fingerprint=parts,
        )
        if table is None or table in (info.table, info.load_table, info.table.rpartition(".")[2]):
            out.append(replace(info, live=is_live(target, info)))
    return out


def job_info(target: Target, job_id: str) -> JobInfo:
    """The job ``job_id`` of the jobs table beside ``target``; a ConfigError naming the
    jobs there when it is not one of them."""
    jobs = list_jobs(target)
    for job in jobs:
        if job.job_id == job_id:
            return job
    where = target.ref.schema or "this target"
    known = ", ".join(j.job_id for j in jobs[-5:]) or "none"
    raise ConfigError(
        f"no job {job_id!r} in the ledger of {where} (jobs there: {known}); list them with "
        "`arrowmapper jobs TARGET_URI --schema SCHEMA`"
    )


def clean_job(target: Target, job: JobInfo, delete_rows: bool = False) -> Cleaned:
    """Remove ``job``'s ledger rows, its jobs row and the staging table it left; with
    ``delete_rows``, also the rows an unfinished append/truncate job loaded -- all in one
    transaction. Refuses (ConfigError, nothing changed) to delete the rows of a finished job,
    of a merge (its chunks may have updated rows they did not insert), or of a chunk whose
    rows cannot be told apart or no longer match what the ledger recorded."""
    if job.live or is_live(target, job):
        raise ConfigError(
            f"job {job.job_id!r} is running: a worker is loading one of its chunks right now; "
            "stop that run first (Ctrl-C), then clean"
        )
    ref = target.ref
    stage = (
        TableRef(ref.schema, job.load_table.rpartition(".")[2], ref.dialect) if job.staged else None
    )
    table = TableRef(ref.schema, job.table.rpartition(".")[2], ref.dialect)
    if delete_rows:  # the job's table, on the same connection (its locators count there)
        _check_rows_deletable(type(target)(target.endpoint, table, conn=target.conn), job)
    drop = stage is not None and _exists(target, stage)  # a catalog read commits: before
    deleted: int | None = None
    try:
        if delete_rows and not job.staged:  # each chunk checked whole just now
            for locator in _locators(target, job.job_id):
                target._exec(
                    f"DELETE FROM {table.qualified()} WHERE {target.locator_predicate(locator)}"
                )
            deleted = job.rows
        removed = target._exec(
            f"DELETE FROM {ref.qualified(LEDGER)} WHERE job_id = {lit(job.job_id)} "
            "RETURNING chunk_id"
        )
        target._exec(f"DELETE FROM {ref.qualified(JOBS)} WHERE job_id = {lit(job.job_id)}")
        dropped = None
        if stage is not None and drop:
            target._exec(f"DROP TABLE {stage.qualified()}")
            dropped = stage.display
        target.conn.commit()
    except ConfigError:
        target.rollback()
        raise
    except Exception as exc:
        target.rollback()
        raise TargetError(
            f"cannot clean job {job.job_id!r}: {redact(str(exc))}", transient=False
        ) from exc
    return Cleaned(job.job_id, len(removed), dropped, deleted)


def is_live(target: Target, job: JobInfo) -> bool:
    """Whether a run of ``job`` is loading one of its chunks right now. A worker holds its
    chunk's ledger row from the chunk's first statement to its commit, so claiming the rows
    of the missing chunks waits -- briefly, then gives up -- exactly while one is being
    loaded. False where the system cannot bound the wait (SQLite: ``unfinished`` there may
    still be running) or the job finished. The claim is rolled back."""
    setting = target.dialect.lock_wait
    if not setting or job.finished or not job.missing:
        return False
    rows = ", ".join(
        f"({lit(job.job_id)}, {int(cid)}, {lit(job.load_table)}, '', -1)" for cid in job.missing
    )
    try:
        target._exec(setting)
        target._exec(
            f"INSERT INTO {target.ref.qualified(LEDGER)} (job_id, chunk_id, target_table, "
            f"bounds, rows) VALUES {rows} ON CONFLICT DO NOTHING"
        )
    except Exception as exc:
        # a lock held by a live writer; anything else (a read-only login) cannot tell
        return error_info(exc).kind == "conflict"
    finally:
        target.rollback()
    return False


def _check_rows_deletable(target: Target, job: JobInfo) -> None:
    if job.finished:
        raise ConfigError(
            f"job {job.job_id!r} finished: its rows are the table's data now and are never "
            "deleted by clean; drop --rows to forget only its ledger rows"
        )
    if job.mode is not None and job.mode not in _APPEND_ONLY and not job.staged:
        raise ConfigError(
            f"job {job.job_id!r} is a {job.mode} job: its chunks may have updated rows they "
            "did not insert, so its rows cannot be deleted safely; drop --rows"
        )
    if job.staged:
        return  # its rows are in its staging table, dropped whole
    if not target.dialect.locators_prove_rows:
        raise ConfigError(
            f"job {job.job_id!r}: a {target.dialect.label} table cannot tell the rows this job "
            "wrote from rows updated since or written later under a reused row id, so "
            "clean --rows would delete rows that are not the job's; delete its rows by key "
            "yourself, or run clean without --rows to forget only its ledger rows"
        )
    locators = _locators(target, job.job_id)
    if any(loc.startswith("none:") for loc in locators):
        raise ConfigError(
            f"job {job.job_id!r}: some of its chunks' rows cannot be told apart in the target "
            "(a table without row ids), so they cannot be deleted; drop --rows"
        )
    lost = target.missing_chunks(job.job_id)
    if lost:
        cid, want, held = lost[0]
        raise ConfigError(
            f"job {job.job_id!r}: chunk {cid} committed {want:,} rows but the table holds "
            f"{held:,} of them ({len(lost)} such chunks): the table changed since, so its rows "
            "are not deleted; drop --rows"
        )


def _locators(target: Target, job_id: str) -> list[str]:
    rows = target._exec(
        f"SELECT locator FROM {target.ref.qualified(LEDGER)} WHERE job_id = {lit(job_id)} "
        "AND rows > 0 ORDER BY chunk_id"
    )
    return [str(r[0] or "none:") for r in rows]


def _exists(target: Target, ref: TableRef) -> bool:
    with contextlib.suppress(Exception):
        return bool(target.column_types(ref.table))
    return False


def appended_before(
    target: Target, fingerprint: dict[str, str], source_dialect: str
) -> JobInfo | None:
    """The latest finished append job into ``target``'s table that loaded the rows
    ``fingerprint`` would (same source, query as the ``source_dialect`` server resolves it,
    table, transform, columns: :func:`~arrowmapper.identity.rows_identity`; key and strategy
    only split the work) and whose table is still the one it loaded; None when there is none."""
    identity = target.table_identity()
    wanted = rows_identity(fingerprint, source_dialect)
    found = None
    for job in list_jobs(target):
        stored = job.fingerprint or {}
        if not job.finished or stored.get("mode") != "append":
            continue
        had = rows_identity(stored, source_dialect)
        if any(had.get(part) != value for part, value in wanted.items()):
            continue
        if identity is not None and stored.get("table_identity", identity) != identity:
            continue  # the table was dropped and created again since: its rows are gone
        found = job
    return found
