"""Resuming a job: the same job (its fingerprint), a plan whose chunks still mean what they
meant, a table that still holds what the ledger says was committed; a finished job is a no-op."""

from __future__ import annotations

import logging

import pyarrow as pa

from ..config import Endpoint, JobConfig
from ..errors import ConfigError
from ..identity import differences
from ..plan import Plan
from ..sources import SourceFacts
from ..targets import JobRecord, TableRef, Target
from ..transform import TransformSpec
from .spec import JobSpec

log = logging.getLogger("arrowmapper")


def resumable_plan(
    c: JobConfig, job_id: str, record: JobRecord, now_fp: dict[str, str], probe: SourceFacts
) -> Plan:
    """The stored plan of a job being resumed, once it is the same job."""
    # key and strategy only shape the plan, which a resume takes from the ledger: left
    # unsaid they mean "as stored"; said, they must match
    asked = {
        k: v
        for k, v in now_fp.items()
        if not (k == "key" and c.key is None or k == "strategy" and c.strategy == "auto")
    }
    changed = differences(record.fingerprint or {}, asked)
    if changed:
        raise ConfigError(
            f"cannot resume job {job_id!r}: it is not the same job ("
            + "; ".join(changed)
            + "). Resume it with what it was started with, or run the new job with a new job_id"
        )
    plan = Plan.from_json(record.plan)
    if (
        record.finished_at is None
        and plan.strategy == "offset"
        and plan.estimated_rows is not None
        and probe.count() != plan.estimated_rows
    ):
        raise ConfigError(
            f"cannot resume job {job_id!r}: its chunks are OFFSET pages of a query that "
            f"held {plan.estimated_rows} rows and now holds {probe.count()}; the pages "
            "would shift and rows be missed or loaded twice. Run it again with a new "
            "job_id (into an emptied table, or with mode='replace')"
        )
    return plan


def check_still_there(
    job_id: str,
    record: JobRecord,
    load: Target,
    load_ref: TableRef,
    identity: str | None,
    notes: list[str],
    upserts: bool,
) -> None:
    """Refuse to resume into a table that lost what the ledger says was committed (``upserts``:
    the job merges, so a later chunk may have moved some of a chunk's rows)."""
    stored_identity = (record.fingerprint or {}).get("table_identity")
    if identity is not None and stored_identity not in (None, identity):
        raise ConfigError(
            f"cannot resume job {job_id!r}: {load_ref.display} was dropped and created "
            "again since the job started, so the chunks its ledger lists are not in "
            "it; run the job again with a new job_id"
        )
    missing = load.missing_chunks(job_id)
    if upserts:
        # a later chunk's upsert may have moved some of a chunk's rows (a key in two
        # chunks), never all of them: a chunk with none left was deleted by someone
        moved = [m for m in missing if m[2] > 0]
        missing = [m for m in missing if m[2] == 0]
        if moved:
            notes.append(
                f"resuming merge job {job_id!r}: {len(moved)} committed chunks hold "
                "fewer rows than they wrote (later upserts of the same keys, or rows "
                "deleted since)"
            )
    if missing:
        shown = "; ".join(f"chunk {n}: {w} committed, {h} found" for n, w, h in missing[:5])
        raise ConfigError(
            f"cannot resume job {job_id!r}: {load_ref.display} no longer holds rows its "
            f"ledger says were committed ({len(missing)} chunks: {shown}); the table was "
            "emptied or changed since. Run the job again with a new job_id"
        )


def registered_message(job_id: str, record: JobRecord, tgt: Target) -> str:
    """Why a run with a job id that is already in the ledger is refused, and what to do."""
    chunks = len(tgt.committed(job_id))
    if record.finished_at is not None:
        state = f"finished at {record.finished_at}"
        advice = (
            "a job that runs again (nightly, ...) needs a new job_id each run, e.g. "
            f"'{job_id}-2026-12-01'; resume=True on a finished job does nothing"
        )
    else:
        state = f"unfinished, {chunks} chunks committed"
        advice = "pass resume=True to finish it, or use a new job_id"
    return (
        f"job_id {job_id!r} is already in the ledger of this target ({record.target_table}, "
        f"{state}); {advice}. Nothing was changed"
    )


def finished(
    c: JobConfig,
    job_id: str,
    record: JobRecord,
    plan: Plan,
    src: Endpoint,
    dst: Endpoint,
    ref: TableRef,
    spec_t: TransformSpec,
    notes: list[str],
) -> JobSpec:
    """A resumed job that already finished: a spec with every chunk committed (nothing runs)."""
    note = (
        f"job {job_id!r} already finished at {record.finished_at}: nothing to do, no rows "
        "loaded; a job that runs again needs a new job_id each run"
    )
    log.warning(note)
    empty = pa.schema([])  # nothing is written
    done = {chunk.chunk_id: 0 for chunk in plan.chunks}
    return JobSpec(
        job_id,
        plan,
        src,
        dst,
        ref,
        empty,
        spec_t,
        c,
        1,
        done,
        True,
        (*notes, note),
        already_finished=True,
    )
