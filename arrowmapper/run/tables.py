"""Several tables in one run (:func:`arrowmapper.map_tables`).

1. The source's catalog says which tables the names and patterns mean
   (:func:`~arrowmapper.sources.catalog.resolve_tables`).
2. Each table becomes its own job (:func:`table_job_id`: ``<job_id>:<table>``), prepared like
   any :func:`~arrowmapper.map_query` job -- its plan, preflight, ledger claim and target
   table. Every table is prepared before any row moves; one that is refused refuses the run,
   naming the table, and what the tables prepared before it claimed or created is undone.
3. All their chunks run through ONE pool (:class:`~.coordinator.SharedCoordinator`), the
   biggest tables' chunks first. Each job keeps its own ledger rows and result: a table whose
   chunks fail does not touch the others, and ``resume=True`` with the same job id finishes
   every table that did not (a finished one is a no-op).
4. Optionally, the source's keys, indexes and foreign keys (``constraints=True``) and
   sequence values (``sequences=True``) follow (:mod:`.objects`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..config import Endpoint, JobConfig
from ..errors import ArrowMapperError, ConfigError
from ..sources.catalog import SourceTable
from ..targets import check_job_id, open_target
from .coordinator import SharedCoordinator
from .executors import LocalPool
from .finish import finish
from .prepare import (
    DUPLICATE_REMEDY,
    MODE_RULES,
    DuplicateAppend,
    new_job_id,
    preflight_job,
    prepare_job,
    table_ref,
    target_rules,
)
from .progress import ProgressSnapshot
from .report import JobResult
from .spec import JobSpec

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def table_job_id(job_id: str, table: str) -> str:
    """The job id of one table of a ``map_tables`` run: ``<job_id>:<table>``; a name with
    characters a job id cannot hold (a space, ``ü``) has them replaced by ``_`` and a hash of
    the exact name appended, so two names never share an id."""
    safe = _UNSAFE.sub("_", table)
    tag = hashlib.sha1(table.encode()).hexdigest()[:8]
    if safe != table:
        safe = f"{safe}-{tag}"
    out = f"{job_id}:{safe}"
    if len(out) > 128:
        out = f"{out[:119]}-{tag}"
    return out


@dataclass(frozen=True)
class TablesResult:
    """What :func:`arrowmapper.map_tables` did: one :class:`JobResult` per table (in
    ``results``, keyed by the source table as ``schema.name``) and the totals. A table whose
    chunks failed is in :attr:`failed`; the others are loaded and finished all the same."""

    job_id: str
    results: dict[str, JobResult]
    elapsed_s: float
    workers: int = 0
    #: what ``constraints=True`` created, and what it found there already or could not create
    constraints: tuple[str, ...] = ()
    constraints_skipped: tuple[str, ...] = ()
    #: the sequences ``sequences=True`` set, as ``name = value``
    sequences: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def failed(self) -> tuple[str, ...]:
        """The source tables whose chunks failed (resume them with the same job id)."""
        return tuple(t for t, r in self.results.items() if not r.success)

    @property
    def success(self) -> bool:
        """Every table loaded."""
        return not self.failed

    @property
    def rows_read(self) -> int:
        """Rows read from the source, over every table."""
        return sum(r.rows_read for r in self.results.values())

    @property
    def rows_written(self) -> int:
        """Rows written to the target, over every table."""
        return sum(r.rows_written for r in self.results.values())

    @property
    def chunks(self) -> int:
        """Chunks of every table."""
        return sum(r.chunks for r in self.results.values())

    @property
    def rows_per_s(self) -> float:
        """Rows written per second of the whole run."""
        return self.rows_written / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``--json``)."""
        return {
            "job_id": self.job_id,
            "success": self.success,
            "failed": list(self.failed),
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "chunks": self.chunks,
            "elapsed_s": self.elapsed_s,
            "workers": self.workers,
            "constraints": list(self.constraints),
            "constraints_skipped": list(self.constraints_skipped),
            "sequences": list(self.sequences),
            "notes": list(self.notes),
            "tables": {t: r.to_dict() for t, r in self.results.items()},
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict(), default=str)

    def summary(self) -> str:
        """One line per table, then the totals (and what constraints/sequences did)."""
        lines = []
        for name, r in self.results.items():
            head = "OK" if r.success else f"FAILED ({len(r.failed_chunks)} chunks failed)"
            line = f"{head} {name} -> {r.table}: {r.rows_written:,} rows, {r.chunks} chunks"
            if r.skipped_chunks:
                line += f", {len(r.skipped_chunks)} already committed"
            lines.append(line)
            lines.extend(f"  {e}" for e in r.errors[:3])
        n, bad = len(self.results), len(self.failed)
        head = "OK" if not bad else f"FAILED ({bad} of {n} tables)"
        lines.append(
            f"{head}: {n} table{'s' if n != 1 else ''}, {self.rows_written:,} rows in {self.elapsed_s:.2f} s "
            f"({self.rows_per_s:,.0f} rows/s); {self.chunks} chunks, {self.workers} workers"
        )
        if self.constraints:
            lines.append(f"created {len(self.constraints)}: " + "; ".join(self.constraints))
        if self.constraints_skipped:
            lines.append("skipped: " + "; ".join(self.constraints_skipped))
        if self.sequences:
            lines.append("sequences set: " + "; ".join(self.sequences))
        lines.extend(f"  note: {note}" for note in self.notes)
        if bad:
            lines.append(
                f"rerun with job_id={self.job_id!r} and resume=True to load what is missing"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class TablePlan:
    """One table of a ``map_tables`` run: the source table and its job's config."""

    source: SourceTable
    config: JobConfig


@dataclass
class _Undo:
    """What one prepared table claimed or created, to undo when a later table is refused."""

    spec: JobSpec
    existed: bool  # the load table was there before
    registered: bool  # the job was in the ledger before (a resume)


@dataclass
class TablesRun:
    """The tables of one run, planned (:func:`plan_tables`), then prepared and run."""

    job_id: str
    source: Endpoint
    target: Endpoint
    tables: list[TablePlan]
    specs: list[JobSpec] = field(default_factory=list)


def plan_tables(
    src: Endpoint,
    dst: Endpoint,
    tables: list[SourceTable],
    schema: str | None,
    options: dict[str, Any],
    job_id: str | None,
) -> TablesRun:
    """One JobConfig per table (``options`` -- with ``source`` and ``target`` as the caller
    gave them -- applying to each); two source tables that would load the same target table
    are refused."""
    base = check_job_id(job_id) if job_id else new_job_id()
    rules = target_rules(dst)
    seen: list[tuple[str, SourceTable]] = []
    out = []
    for t in tables:
        ref = table_ref(dst, schema, t.name)
        # SQLite: Orders and orders are one table
        other = next((s for name, s in seen if rules.same_name(name, t.name)), None)
        if other is not None:
            raise ConfigError(
                f"source tables {other.display!r} and {t.display!r} would both load the "
                f"target table {ref.display} (the target does not tell their names apart); "
                "copy them in separate runs into different schemas or targets, or leave one "
                "out of the patterns"
            )
        seen.append((t.name, t))
        args = {
            **options,
            "query": t.query(src.dialect),
            "table": t.name,
            "schema": schema,
            "job_id": table_job_id(base, t.name),
        }
        if t.key and not options.get("key"):  # cut by its primary key (MySQL has no ctid)
            args["key"] = t.key
        out.append(TablePlan(t, JobConfig.build(args)))
    return TablesRun(base, src, dst, out)


def _state(dst: Endpoint, c: JobConfig) -> tuple[bool, bool]:
    """(the target table exists, the job is in the ledger) before the table is prepared."""
    tgt = open_target(dst, table_ref(dst, c.schema, c.table))
    try:
        return tgt.table_exists(), c.job_id is not None and tgt.job_record(c.job_id) is not None
    finally:
        tgt.close()


def prepare_tables(run: TablesRun) -> list[JobSpec]:
    """Prepare every table's job before any row moves. A refused table raises its error with
    the table named; what the tables prepared before it claimed (the ledger's job row) or
    created (their target table) is undone, so the run leaves nothing behind. A mode that
    empties the table when the job is claimed (truncate) has every table preflighted first
    (:func:`~.prepare.preflight_job`), so no table is emptied for a run that is refused."""
    if any(MODE_RULES[t.config.mode].empties_on_claim for t in run.tables):
        # a truncate job empties its table when it claims it: check every table first
        for t in run.tables:
            try:
                preflight_job(t.config)
            except ArrowMapperError as exc:
                exc.args = (f"table {t.source.display}: {exc}", *exc.args[1:])
                raise
    done: list[_Undo] = []
    again: list[tuple[str, DuplicateAppend]] = []  # every table a rerun would append again
    try:
        for t in run.tables:
            existed, registered = _state(run.target, t.config)
            try:
                spec = prepare_job(t.config).spec
            except DuplicateAppend as exc:
                again.append((t.source.display, exc))
                continue
            except ArrowMapperError as exc:
                exc.args = (f"table {t.source.display}: {exc}", *exc.args[1:])
                raise
            done.append(_Undo(spec, existed, registered))
        if again:
            names = "; ".join(f"table {name}: {exc.said}" for name, exc in again)
            jobs = " ".join(exc.earlier for _, exc in again)
            raise ConfigError(
                f"{len(again)} of {len(run.tables)} tables would be appended a second time, "
                f"nothing was loaded: {names}. {DUPLICATE_REMEDY}; to see the earlier jobs: "
                f"arrowmapper status JOB for each of {jobs}"
            )
    except BaseException:
        for u in reversed(done):
            _undo(u)
        raise
    run.specs = [u.spec for u in done]
    return run.specs


def _undo(u: _Undo) -> None:
    """Forget a prepared job that never ran: its ledger row, and the table it created."""
    if u.registered:
        return  # a resumed job: its earlier chunks and table stay
    tgt = open_target(u.spec.target, u.spec.table)
    try:
        tgt.unregister_job(u.spec.job_id)
        if u.spec.final_table is not None or not u.existed:
            tgt.drop_table(quiet=True)  # a replace job's stage, or a table this run created
    finally:
        tgt.close()


def run_tables(
    specs: list[JobSpec],
    progress: Callable[[ProgressSnapshot], Any] | None,
    pool: LocalPool | None,
) -> list[JobResult]:
    """Run every table's chunks through one pool, then finish each table whose chunks all
    committed (a replace job's swap, the job marked finished)."""
    results = SharedCoordinator(specs, progress, executor=pool).run()
    out = []
    unfinished: list[BaseException] = []
    for spec, result in zip(specs, results, strict=True):
        if result.success and not spec.already_finished:
            try:
                finish(spec)
            except Exception as exc:  # the others are finished all the same
                exc.args = (f"job {spec.job_id}: {exc}", *exc.args[1:])
                unfinished.append(exc)
        if spec.final_table is not None:
            result = dataclasses.replace(result, table=spec.final_table.display)
        out.append(result)
    if unfinished:  # every chunk is committed: resuming the run finishes it
        raise unfinished[0]
    return out


def source_tables(run: TablesRun) -> Iterable[tuple[SourceTable, JobSpec]]:
    """Each source table with its prepared job."""
    return zip([t.source for t in run.tables], run.specs, strict=True)


__all__ = [
    "TablePlan",
    "TablesResult",
    "TablesRun",
    "plan_tables",
    "prepare_tables",
    "run_tables",
    "table_job_id",
]
