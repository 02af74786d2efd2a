"""Preflight: a :class:`~arrowmapper.config.JobConfig` in, a runnable :class:`JobSpec` out.

Everything that can refuse a job is checked before the target is touched (the options were
validated once, when the JobConfig was built): the target's dialect and schema, the servers'
free connections, the query (a describe, then a sample run through the transform), the plan,
the job's fingerprint against the ledger (resume), the existing table. Only then is the job
claimed in the ledger and the table (or a replace job's stage) created; a refused run leaves
nothing behind. What each ``mode`` does to the table is one row of :data:`MODE_RULES`.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass

import pyarrow as pa

from ..config import Endpoint, JobConfig, check_reachable, check_table_name, parse_uri
from ..config import validate_identifier as validate_identifier
from ..errors import ConfigError, TargetError
from ..identity import job_fingerprint
from ..plan import Plan
from ..sources import Source, open_source, source_endpoint
from ..sql import check_query, quote_ident
from ..targets import (
    DIALECTS,
    Dialect,
    Earlier,
    JobRecord,
    TableRef,
    Target,
    appended_before,
    check_job_id,
    dialect_of,
    open_target,
    storage_schema,
)
from ..transform import normalize
from .capacity import fit_workers
from .copypath import choose_path
from .cursor import cursor_run, resumed_run
from .preflight import (
    check_compatible,
    check_narrowing,
    create_table,
    merge_key,
    output_schema,
    plan_for,
    retrying,
    snapshot_for,
    stage_name,
    write_layout,
)
from .resume import check_still_there, finished, registered_message, resumable_plan
from .spec import JobSpec
from .telemetry import check_outputs

log = logging.getLogger("arrowmapper")

__all__ = [
    "MODE_RULES",
    "DuplicateAppend",
    "ModeRules",
    "Prepared",
    "check_endpoints",
    "check_source_query",
    "output_schema",
    "preflight_job",
    "prepare_job",
    "stage_name",
    "stored_plan",
    "table_ref",
    "target_rules",
    "write_layout",
]


#: what a refused duplicate append can do instead
DUPLICATE_REMEDY = (
    "To load them again on purpose pass allow_duplicate=True; to load only what changed use "
    "mode='merge' with a key, or mode='replace' to rebuild the table"
)


class DuplicateAppend(ConfigError):
    """A finished append job already loaded the rows this append would load again;
    ``earlier`` is its job id and ``said`` what the refusal says before its remedies."""

    def __init__(self, message: str, earlier: str, said: str) -> None:
        super().__init__(message)
        self.earlier = earlier
        self.said = said


@dataclass(frozen=True)
class ModeRules:
    """What a ``mode`` does to the target table."""

    staged: bool = False  # loads a staging table of the job, swapped in when all committed
    refuses_existing: bool = False  # an existing table is an error
    empties: bool = False  # the table's rows go (the server must let this role empty it)
    empties_on_claim: bool = False  # emptied in the transaction that claims the job
    upserts: bool = False  # rows are merged on a unique key


MODE_RULES: dict[str, ModeRules] = {
    "append": ModeRules(),
    "create": ModeRules(refuses_existing=True),
    "replace": ModeRules(staged=True, empties=True),
    "truncate": ModeRules(empties=True, empties_on_claim=True),
    "merge": ModeRules(upserts=True),
}


def target_rules(dst: Endpoint) -> Dialect:
    """The row of ``dst``'s dialect in the targets' table (:data:`~arrowmapper.targets.DIALECTS`);
    a ConfigError naming the supported targets for one arrowmapper cannot write."""
    if dst.dialect not in DIALECTS:
        raise ConfigError(
            f"target {dst.redacted}: only postgresql:// and sqlite:/// targets are supported"
        )
    return dialect_of(dst.dialect)


def table_ref(dst: Endpoint, schema: str | None, table: str) -> TableRef:
    """``schema.table`` on ``dst`` (the schema dropped where the dialect has none)."""
    return TableRef(schema if target_rules(dst).schemas else None, table, dst.dialect)


@dataclass(frozen=True)
class Prepared:
    """A prepared job: the spec to run and the config it was prepared from."""

    spec: JobSpec
    config: JobConfig


def new_job_id() -> str:
    """A fresh job id: the time and 8 random hex digits."""
    return time.strftime("am-%Y%m%d-%H%M%S-") + secrets.token_hex(4)


def check_source_query(query: object, source: Endpoint) -> str:
    """The query, checked against the source's dialect before any connection is made: exactly
    one statement, balanced parentheses, no placeholders (:func:`arrowmapper.sql.check_query`).
    A source whose query is not its server's SQL (files) checks it when it describes it."""
    if not source.rules.sql:
        if query is None:
            return ""
        if not isinstance(query, str):
            raise ConfigError(f"query must be a string or None, got {type(query).__name__}")
        return query
    check_query(query, source.dialect)
    assert isinstance(query, str)
    return query


def stored_plan(tgt: Target, job_id: str) -> tuple[str, str] | None:
    """A job's stored plan and target table, or None (no ledger yet: nothing to resume)."""
    try:
        return tgt.stored_plan(job_id)
    except Exception:
        tgt.rollback()
        return None


def _check_target(c: JobConfig, src: Endpoint, dst: Endpoint) -> None:
    """What depends on the endpoints' dialects, checked before any connection."""
    check_source_query(c.query, src)
    validate_identifier(c.table, "table", dst.dialect)
    check_table_name(c.table)
    if c.schema is not None:
        validate_identifier(c.schema, "schema", dst.dialect)
    check_outputs(c.metrics_file, c.metrics_port)  # before anything is claimed or spawned
    if c.executor == "dask" and c.cluster:
        from .executors import check_scheduler

        check_scheduler(c.cluster)  # before any table is touched
    if c.snapshot and not open_source(src).snapshots:
        raise ConfigError(
            f"snapshot=True needs a PostgreSQL source (it exports a snapshot every chunk joins); "
            f"the source is {src.dialect}"
        )
    if c.cursor and not src.rules.sql:
        raise ConfigError(
            f"cursor={c.cursor!r} bounds a database query; a file source tells what is new by "
            "its files: use incremental=True instead"
        )
    if c.incremental and src.rules.sql:
        raise ConfigError(
            "incremental=True needs a source that can tell what is new (files); a database "
            "query is copied whole each run"
        )
    target = target_rules(dst)
    if not target.schemas and c.schema not in (None, "main"):
        raise ConfigError("a SQLite target has no schemas: leave schema=None")
    if c.verify and MODE_RULES[c.mode].upserts and not target.verify_merge:
        raise ConfigError(
            "verify=True cannot check a merge into SQLite (updated rows keep their old rowids); "
            "use a PostgreSQL target or drop verify"
        )


def check_endpoints(c: JobConfig) -> tuple[Endpoint, Endpoint]:
    """The job's source and target parsed, and what depends on their dialects checked (the
    query, the table and schema names, snapshot, ...); no database is contacted."""
    src, dst = source_endpoint(c.source), parse_uri(c.target, "target")
    _check_target(c, src, dst)
    return src, dst


def prepare_job(c: JobConfig, endpoints: tuple[Endpoint, Endpoint] | None = None) -> Prepared:
    """Plan, preflight, claim the job and create the target table; return a runnable JobSpec.
    ``endpoints``: what :func:`check_endpoints` returned for ``c``, if it was called."""
    prepared = _prepare(c, endpoints, dry_run=False)
    assert prepared is not None
    return prepared


def preflight_job(c: JobConfig) -> None:
    """Every check :func:`prepare_job` makes before it claims the job or touches the target
    (the query, the transform on a sample, the plan, resume, the existing table's columns),
    and nothing else: ``map_tables`` runs it for every table before any table is claimed,
    so a table refused late cannot leave an earlier one emptied (``mode='truncate'``)."""
    _prepare(c, None, dry_run=True)


def _prepare(
    c: JobConfig, endpoints: tuple[Endpoint, Endpoint] | None, dry_run: bool
) -> Prepared | None:
    begun = time.perf_counter()
    rules = MODE_RULES[c.mode]
    if c.job_id:
        check_job_id(c.job_id)
    src, dst = endpoints or check_endpoints(c)
    spec_t = normalize(c.transform)
    check_reachable(src, "source")
    check_reachable(dst, "target")
    workers_fit, notes = fit_workers(src, dst, c.workers)
    connected = time.perf_counter()
    ref = table_ref(dst, c.schema, c.table)
    run = None
    mark_name = None
    if c.resume and c.job_id:  # a run of a recurring job moves its mark, however resumed
        c, mark_name = resumed_run(c, dst, ref)
    if c.name:  # a recurring job: its job id, and with a cursor the rows this run loads
        run = cursor_run(c, src, dst, ref, ref.display)
        job_id = run.job_id
        notes.extend(run.notes)
        if c.cursor:
            c = c.with_(query=run.query)
    else:
        job_id = c.job_id or new_job_id()
    source = open_source(src)  # describing holds nothing open; the probe may: closed below
    layout = source.describe(c.query)
    notes.extend(layout.notes)
    probe = source.probe(c.query, layout)
    load_ref = (
        TableRef(ref.schema, stage_name(c.table, job_id, dst.dialect), ref.dialect)
        if rules.staged
        else ref
    )
    # a database file this run creates goes again if the run is refused before it loads
    fresh = bool(dst.rules.file and dst.path and not os.path.exists(dst.path))
    tgt = open_target(dst, ref)
    load = open_target(dst, load_ref, conn=tgt.conn) if load_ref != ref else tgt
    claimed = created_stage = created_table = False
    try:
        # who this job is, before anything is created or emptied
        if ref.schema and not tgt.schema_exists():
            raise ConfigError(
                f"schema {ref.schema!r} does not exist in the target {dst.redacted}; create it "
                f"(CREATE SCHEMA {quote_ident(ref.schema)}) or pass an existing schema"
            )
        record = tgt.job_record(job_id)
        if record is not None and not c.resume:
            raise ConfigError(registered_message(job_id, record, tgt))

        def sampled() -> tuple[pa.Schema, pa.Table, pa.Schema]:
            probe.schema()  # bad SQL fails here, before anything else
            return output_schema(probe, spec_t)

        out_schema, sample, read_schema = retrying(sampled, "sampling", c.retry)
        columns = storage_schema(out_schema, dst.dialect)
        now_fp = job_fingerprint(c, src, load_ref.display, spec_t, columns)
        if record is not None:
            plan = resumable_plan(c, job_id, record, now_fp, probe)
            if record.finished_at is not None:
                return Prepared(finished(c, job_id, record, plan, src, dst, ref, spec_t, notes), c)
            # a file changed: cut again if none of it committed, refused (naming it) if it did
            replanned = source.check_plan(plan, set(tgt.committed(job_id)), c.chunk_size)
            if replanned is not plan and not dry_run:
                tgt.update_plan(job_id, replanned.to_json())
                notes.extend(getattr(source, "notes", ()))
                plan = replanned
        else:
            earlier = tgt.earlier() if c.incremental else None
            plan = source.plan(
                c.query, c.strategy, c.key, c.chunk_size, c.workers, earlier
            ) or plan_for(
                probe, c.query, c.strategy, c.key, c.chunk_size, c.workers, c.retry, source.render
            )
        planned = time.perf_counter()
        exists = tgt.table_exists()
        if c.verify and exists and tgt.untracked():
            raise ConfigError(
                f"verify=True cannot check {ref.display} chunk by chunk: in a SQLite table "
                "WITHOUT ROWID, or one whose INTEGER PRIMARY KEY the job fills, a chunk's rows "
                "cannot be told apart; drop verify (am.verify still compares counts and "
                "checksums of the whole job's chunks against the source)"
            )
        if exists and rules.refuses_existing and record is None:
            raise TargetError(
                f"target table {ref.display} already exists and mode='create' refuses it; "
                "use mode='append', 'replace', 'truncate' or 'merge', or drop the table",
                transient=False,
                kind="config",
            )
        if record is not None and not exists and not rules.staged:
            lost = tgt.committed(job_id)
            if lost:
                raise ConfigError(
                    f"cannot resume job {job_id!r}: its target table {ref.display} no longer "
                    f"exists, and with it {len(lost)} committed chunks; run the job again with "
                    "a new job_id"
                )
        mkey = merge_key(tgt, exists, c.key, out_schema, ref, c.merge_key) if rules.upserts else ()
        if mkey and record is None and all(k in read_schema.names for k in mkey):
            count_nulls = getattr(probe, "null_keys", None)
            nulls = count_nulls(mkey) if count_nulls is not None else 0
            if nulls:
                raise ConfigError(
                    f"mode='merge' upserts on ({', '.join(mkey)}), but the query returns "
                    f"{nulls} rows with NULL in it: an upsert never matches a NULL key, so "
                    "every run would insert those rows again. Filter them out in the query "
                    f"(WHERE {' AND '.join(f'{k} IS NOT NULL' for k in mkey)}), give them a "
                    "value (COALESCE), or merge on a key without NULLs"
                )
            twice = probe.duplicated(mkey)
            if twice is not None:
                n = twice.pop("_am_n")
                raise ConfigError(
                    f"mode='merge' upserts on ({', '.join(mkey)}), but the query returns "
                    f"{n} rows with {twice}; which one the target keeps would depend on which "
                    "chunk commits last. Make the key unique in the query (DISTINCT ON, a "
                    "GROUP BY) or merge on a key that is"
                )
        if exists:
            # what can be refused on the existing table is refused before anything is created
            # or emptied (truncate empties the table when it claims the job)
            existing = write_layout(tgt, out_schema, (), layout.session)
            check_compatible(sample, out_schema, existing.schema, ref)
            lacking = [col for col in tgt.required_columns() if col not in out_schema.names]
            if lacking:
                them = "it" if len(lacking) == 1 else "them"
                raise ConfigError(
                    f"{ref.display} requires a value for {', '.join(map(repr, lacking))} (NOT "
                    f"NULL, no default), and the query does not return {them}; select {them} "
                    "in the query or transform, or give the column a default"
                )
            check_narrowing(existing, layout, read_schema, out_schema, ref)
            if rules.empties:
                tgt.check_can_empty(c.mode)
        if record is None and exists and c.mode == "append" and not (c.incremental or c.cursor):
            again = appended_before(tgt, now_fp, src.dialect)
            if again is not None and c.allow_duplicate is not True:
                said = (
                    f"{ref.display} already holds the rows of job {again.job_id!r}, a finished "
                    "append of the same source, query, transform and columns: this run would "
                    "append them a second time"
                )
                if c.allow_duplicate is False:
                    raise DuplicateAppend(
                        f"{said}. {DUPLICATE_REMEDY}; to see the earlier job: arrowmapper "
                        f"status {again.job_id}",
                        again.job_id,
                        said,
                    )
                notes.append(said)
                log.warning("%s", said)
        if dry_run:
            return None
        tgt.ensure_ledger()
        if c.cursor:
            tgt.ensure_marks()
        if record is None:
            if rules.empties_on_claim and exists:
                claimed = load.truncate_and_register(job_id, plan.to_json(), now_fp)
            else:
                claimed = load.register_job(job_id, plan.to_json(), now_fp)
            if not claimed:
                raise ConfigError(
                    f"job_id {job_id!r} was registered by another run just now (two runs of "
                    "one job at once); let that run finish, or use a new job_id"
                )
            if c.incremental:  # two runs that planned at once: one loads what both chose
                refusal: list[ConfigError] = []

                def same_plan(others: list[Earlier]) -> bool:
                    try:  # refused (a file another job is loading) or planned differently
                        again = source.plan(
                            c.query, c.strategy, c.key, c.chunk_size, c.workers, others
                        )
                    except ConfigError as exc:
                        refusal.append(exc)
                        return False
                    return again is None or again.to_json() == plan.to_json()

                if not load.admit_incremental(job_id, same_plan):
                    claimed = False  # forgotten already, under the same lock
                    if refusal:
                        raise refusal[0]
                    raise ConfigError(
                        "another incremental job into this table started or finished while "
                        "this one planned, with some of the same files; run this one again"
                    )
        if run is not None and run.claim is not None:  # under a lock on the name's row
            load.claim_run(run.claim)
        committed = load.committed(job_id)
        if rules.staged:
            created_stage = _make_stage(load, ref, exists, record, committed, job_id)
            if created_stage and not exists:
                create_table(load, out_schema, read_schema, layout, (), notes)
        elif not exists:
            create_table(tgt, out_schema, read_schema, layout, mkey, notes)
            created_table = True  # dropped again if a check below refuses the job
            log.info("created table %s", ref.display)
        write = write_layout(load, out_schema, mkey, layout.session)
        check_compatible(sample, out_schema, write.schema, load_ref)
        check_narrowing(write, layout, read_schema, out_schema, load_ref)
        # the table's columns are final here; path='copy' that cannot be taken is refused
        # before any row moves (and the table or claim made above is undone)
        choice = choose_path(c.path, source, load, spec_t, rules.upserts, c.query)
        inline = runs_inline(c, plan, committed, source)
        identity = load.table_identity()
        if record is None:
            if identity is not None:
                load.set_fingerprint(job_id, {**now_fp, "table_identity": identity})
        else:
            check_still_there(job_id, record, load, load_ref, identity, notes, rules.upserts)
    except BaseException:
        if created_stage:
            load.drop_table(quiet=True)
        if created_table:
            tgt.drop_table(quiet=True)
        if claimed:
            load.unregister_job(job_id)
        if fresh:
            tgt.discard_if_unused()
        raise
    finally:
        tgt.close()
        source.close()
    use_snapshot = snapshot_for(c.snapshot, src, plan, notes)  # may add a note
    if inline:
        log.info("job %s: %s", job_id, inline)
    spec = JobSpec(
        job_id=job_id,
        in_process=bool(inline),
        plan=plan,
        source=src,
        target=dst,
        table=load_ref,
        target_schema=write.schema,
        transform=spec_t,
        config=c,
        workers=workers_fit,
        committed=committed,
        notes=tuple(notes),
        snapshot=use_snapshot,
        layout=layout if layout.columns else None,
        write=write,
        final_table=ref if rules.staged else None,
        final_existed=exists,
        mark_name=mark_name or (c.name if c.cursor else None),
        timings={
            # reaching the servers and counting their free connections is connecting;
            # describing, sampling and planning the query (and the job's ledger row: resume)
            # is planning; the rest (checks, claim, the table) is preflight
            "connect_s": connected - begun,
            "plan_s": planned - connected,
            "preflight_s": time.perf_counter() - planned,
        },
        path=choice.path,
        path_reason=choice.reason,
        copy_columns=choice.columns,
    )
    return Prepared(spec, c)


#: the most rows a one-chunk job runs in this process instead of on a worker
INLINE_MAX_ROWS = 100_000


def runs_inline(
    c: JobConfig, plan: Plan, committed: dict[int, int], source: Source
) -> str | None:
    """Why the job's one chunk runs in this process, or None (it runs on workers).

    Spawning a worker costs more than a small chunk (an interpreter and its imports: ~0.5
    CPU-s), so a job with one chunk left to run, of at most :data:`INLINE_MAX_ROWS` rows (the
    plan's estimate, then a count that stops past the limit: statistics may be stale), runs it
    here. The ledger makes it exactly-once all the same; what a
    worker adds is isolation, so a job keeps its worker when the size is unknown (a view
    read whole: Ctrl-C and memory are the coordinator's to watch), when a watchdog was asked
    for (``stall_timeout``, ``max_worker_memory``: they kill a worker process), or on Dask."""
    if c.executor != "local" or c.stall_timeout or c.max_worker_memory:
        return None
    left = [ch for ch in plan.chunks if ch.chunk_id not in committed]
    if len(left) != 1:
        return None
    rows = left[0].estimated_rows
    if rows is None or rows > INLINE_MAX_ROWS:
        return None
    # the estimate may be stale (a table loaded since its last ANALYZE): count, bounded
    rows = source.rows_at_most(left[0], INLINE_MAX_ROWS)
    if rows > INLINE_MAX_ROWS:
        return None
    return f"one chunk of {rows:,} rows: it runs in this process (no worker to start)"


def _make_stage(
    load: Target,
    ref: TableRef,
    exists: bool,
    record: JobRecord | None,
    committed: dict[int, int],
    job_id: str,
) -> bool:
    """A replace job's staging table: kept when it is this job's (resumed), made again when a
    run that died before registering left it, created like ``ref`` when that exists. True when
    a stage was made (a new table still to create when ``ref`` does not exist)."""
    if load.table_exists():
        if record is not None:
            return False
        load.drop_table()  # left by a run that died before registering: not ours to keep
    elif committed:
        raise TargetError(
            f"the staging table {load.ref.display} of job {job_id!r} is gone, and "
            f"with it {len(committed)} committed chunks; start again with a new "
            "job_id (the target is untouched)",
            transient=False,
        )
    if exists:
        load.create_like(ref)
    return True
