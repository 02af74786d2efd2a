"""The Python API: :func:`map_query` runs a job, :func:`plan_query` shows its plan.

Both validate everything they can before touching the target: URIs, strategy, mode, key column,
the SQL itself (a ``LIMIT 0`` describe), the transform (run on a sample) and the target's column
types. Only then is the table created and the first chunk dispatched.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa

from .config import (
    EXECUTORS,
    MODES,
    STRATEGIES,
    Endpoint,
    RetryConfig,
    Settings,
    check_reachable,
    check_table_name,
    parse_uri,
    resolve_settings,
    validate_identifier,
)
from .errors import (
    ArrowMapperError,
    ConfigError,
    JobFailed,
    SourceError,
    TargetError,
    boundary,
    error_info,
    redact,
    translate,
)
from .identity import differences, fingerprint
from .plan import Plan, build_plan
from .run.coordinator import Coordinator
from .run.executors import LocalPool
from .run.progress import ProgressSnapshot, print_progress
from .run.report import JobResult
from .run.spec import JobSpec
from .sources import SourceLayout, SourceProbe, describe_source
from .sql import check_query, derived_name, quote_ident
from .targets import (
    JobRecord,
    TableRef,
    Target,
    WriteLayout,
    check_job_id,
    conform,
    narrowing,
    open_target,
    sql_type_name,
    storage_schema,
    target_layout,
)
from .transform import Transformer, TransformLike, TransformSpec, normalize

log = logging.getLogger("arrowmapper")

#: How ``mode="replace"`` empties an existing target in its swap: TRUNCATE (fast; a REPEATABLE
#: READ reader whose snapshot predates the swap then sees an empty table) or DELETE (slower;
#: such a reader keeps seeing the old rows).
SWAPS: tuple[str, ...] = ("truncate", "delete")

ProgressArg = bool | Callable[[ProgressSnapshot], Any] | None


def _new_job_id() -> str:
    return time.strftime("am-%Y%m%d-%H%M%S-") + secrets.token_hex(4)


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


_T = TypeVar("_T")


def _retrying(step: Callable[[], _T], what: str, retry: RetryConfig | None) -> _T:
    """Run a read-only step of preparing a job (sampling, planning), retrying a transient
    failure (a dropped connection, a serialization failure, a cancelled statement) as a chunk
    would be retried."""
    from .run.retry import backoff_delay

    retry = retry or RetryConfig()
    attempt = 1
    while True:
        try:
            return step()
        except ArrowMapperError as exc:
            if not error_info(exc).transient or attempt > retry.max_retries:
                raise
            delay = backoff_delay(retry, attempt)
            log.warning("%s failed (%s); retrying in %.2fs", what, exc, delay)
            time.sleep(delay)
            attempt += 1


def _plan_for(
    probe: SourceProbe,
    query: str,
    strategy: str,
    key: str | None,
    settings: Settings,
    retry: RetryConfig | None = None,
) -> Plan:
    """The chunk plan (transient failures retried, see :func:`_retrying`)."""

    def plan() -> Plan:
        probe.schema()  # bad SQL fails here, before anything else
        return build_plan(probe, query, strategy, key, settings.chunk_size, settings.workers)

    return _retrying(plan, "planning", retry)


def _check_query(query: object, source: Endpoint | str) -> str:
    """The query, checked against the source's dialect before any connection is made: exactly
    one statement, balanced parentheses, no placeholders (:func:`arrowmapper.sql.check_query`).
    Returns it as given (the trailing ``;`` or comment is dropped where it is rendered)."""
    dialect = (source if isinstance(source, Endpoint) else parse_uri(source, "source")).dialect
    check_query(query, dialect)
    assert isinstance(query, str)
    return query


@boundary("plan_query")
def _check_key_arg(key: object) -> None:
    if key is not None and (not isinstance(key, str) or not key):
        raise ConfigError(f"key must be a column name (a non-empty string) or None, got {key!r}")


def plan_query(
    source: str,
    query: str,
    *,
    strategy: str = "auto",
    key: str | None = None,
    chunk_size: int | None = None,
    workers: int | None = None,
) -> Plan:
    """Plan a job without moving data.

    >>> plan = plan_query("sqlite:///src.db", "events", strategy="rowid")  # doctest: +SKIP
    >>> print(plan.describe())                                             # doctest: +SKIP
    """
    _check_choice("strategy", strategy, STRATEGIES)
    _check_key_arg(key)
    src = parse_uri(source, "source")
    _check_query(query, src)
    check_reachable(src, "source")
    settings = resolve_settings({"chunk_size": chunk_size, "workers": workers})
    layout = describe_source(src, query)
    return _plan_for(SourceProbe(src, query, layout), query, strategy, key, settings)


@dataclass(frozen=True)
class _Prepared:
    spec: JobSpec
    settings: Settings


def _output_schema(
    probe: SourceProbe, spec: TransformSpec
) -> tuple[pa.Schema, pa.Table, pa.Schema]:
    """Run the transform on a sample of the source: the schema the target table needs, the
    transformed sample, and the schema the transform was given."""
    sample = probe.sample()
    transformer = Transformer(spec)
    batches: list[pa.RecordBatch] = []
    source_batches = sample.to_batches() or [pa.RecordBatch.from_pylist([], schema=sample.schema)]
    try:
        for batch in source_batches:
            batches.extend(transformer.batches(batch))
        if not batches:
            import polars as pl

            empty = pl.from_arrow(sample.slice(0, 0))
            out = transformer.apply(empty).to_arrow()
            return out.schema, out, sample.schema
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a transform must not end the caller
        raise ConfigError(
            f"the transform ({spec.label}) failed on a sample of the source: "
            f"{type(exc).__name__}: {redact(str(exc))}"
        ) from exc
    table = pa.Table.from_batches(batches)
    return table.schema, table, sample.schema


def _free_connections(endpoint: Endpoint) -> int | None:
    """How many more connections this role may open on a PostgreSQL server (None: not PG)."""
    if endpoint.dialect != "postgresql":
        return None
    from .adbc import connect_postgresql

    # ADBC (one connection) rather than connectorx, which opens two: with a role limited to
    # a single connection this probe must still get through and say so clearly
    sql = (
        "SELECT current_setting('max_connections')::int, "
        "current_setting('superuser_reserved_connections')::int, "
        "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int, "
        "r.rolsuper, r.rolconnlimit, "
        "(SELECT count(*) FROM pg_stat_activity a WHERE a.usename = current_user)::int "
        "FROM pg_roles r WHERE r.rolname = current_user"
    )
    try:
        with connect_postgresql(endpoint.uri) as conn, conn.cursor() as cur:
            cur.execute(sql)
            max_conn, reserved, used, superuser, role_limit, role_used = cur.fetchall()[0]
    except Exception as exc:
        if error_info(exc).kind == "connection_limit":
            return 0
        raise translate(exc, SourceError, f"cannot connect to {endpoint.redacted}") from exc
    free = int(max_conn) - int(used) + 1  # this probe's own connection is about to close
    if not superuser:
        free -= int(reserved)
        if int(role_limit) >= 0:
            free = min(free, int(role_limit) - int(role_used) + 1)
    return free


def fit_workers(src: Endpoint, dst: Endpoint, workers: int) -> tuple[int, list[str]]:
    """Lower ``workers`` to what the servers' free connections allow; fail when not even one
    worker fits. A worker holds one target connection, and its connectorx reads open two
    source connections."""

    def server(ep: Endpoint) -> tuple[Any, ...]:
        parts = urlsplit(ep.uri)
        return (ep.host_port, parts.username, parts.path)

    needs: dict[tuple[Any, ...], tuple[Endpoint, int]] = {}
    for ep, per in ((src, 2), (dst, 1)):
        if ep.dialect == "postgresql":
            key = server(ep)
            needs[key] = (ep, needs.get(key, (ep, 0))[1] + per)
    fit, notes = workers, []
    for ep, per_worker in needs.values():
        free = _free_connections(ep)
        if free is None:
            continue
        if free < per_worker:
            raise SourceError(
                f"not enough free connections on {ep.redacted}: a worker needs {per_worker}, "
                f"{max(free, 0)} are free (max_connections, reserved slots and the role's "
                "connection limit counted); close idle sessions or raise the limit",
                transient=False,
                kind="connection_limit",
            )
        if free // per_worker < fit:
            fit = free // per_worker
            notes.append(
                f"{ep.redacted} has {free} free connections: running {fit} workers "
                f"instead of {workers}"
            )
            log.warning(notes[-1])
    return fit, notes


def prepare(
    source: str,
    query: str,
    target: str,
    table: str,
    *,
    schema: str | None = None,
    transform: TransformLike = None,
    strategy: str = "auto",
    key: str | None = None,
    workers: int | None = None,
    chunk_size: int | None = None,
    batch_size: int | None = None,
    mode: str = "append",
    retry: RetryConfig | None = None,
    job_id: str | None = None,
    resume: bool = False,
    params: dict[str, Any] | None = None,
    verify: bool = False,
    statement_timeout: float | None = None,
    stall_timeout: float | None = None,
    snapshot: bool | None = None,
    max_worker_memory: int | None = None,
    executor: str = "local",
    cluster: str | None = None,
    swap: str = "truncate",
) -> _Prepared:
    """Validate, plan, preflight and create the target table; return a runnable JobSpec."""
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("mode", mode, MODES)
    _check_choice("swap", swap, SWAPS)
    _check_query(query, source)
    _check_key_arg(key)
    target_dialect = parse_uri(target, "target").dialect
    validate_identifier(table, "table", target_dialect)
    check_table_name(table)
    if schema is not None:
        validate_identifier(schema, "schema", target_dialect)
    if retry is not None and not isinstance(retry, RetryConfig):
        raise ConfigError(f"retry must be a RetryConfig, got {type(retry).__name__}")
    if resume and not job_id:
        raise ConfigError("resume=True needs the job_id of the job to resume")
    if max_worker_memory is not None and (
        not isinstance(max_worker_memory, int) or max_worker_memory < 64
    ):
        raise ConfigError(
            f"max_worker_memory is MiB of RSS per worker, an integer >= 64; got {max_worker_memory!r}"
        )
    for name, value in (("statement_timeout", statement_timeout), ("stall_timeout", stall_timeout)):
        if value is not None and (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ConfigError(
                f"{name} must be a finite number of seconds > 0 or None, got {value!r}"
            )
    for name, flag in (("resume", resume), ("verify", verify), ("snapshot", snapshot)):
        if not isinstance(flag, bool) and not (name == "snapshot" and flag is None):
            raise ConfigError(f"{name} must be True or False, got {flag!r}")
    _check_choice("executor", executor, EXECUTORS)
    if executor == "dask" and (stall_timeout or max_worker_memory):
        raise ConfigError(
            "stall_timeout and max_worker_memory watch local worker processes; with "
            "executor='dask' the Dask nannies own them: set the workers' --memory-limit instead"
        )
    if cluster is not None and executor != "dask":
        raise ConfigError("cluster= is the Dask scheduler's address: pass executor='dask' too")
    job_id = check_job_id(job_id) if job_id else _new_job_id()
    src, dst = parse_uri(source, "source"), parse_uri(target, "target")
    if executor == "dask" and cluster:
        from .run.executors import check_scheduler

        check_scheduler(cluster)  # before any table is touched
    if snapshot and src.dialect != "postgresql":
        raise ConfigError(
            f"snapshot=True needs a PostgreSQL source (it exports a snapshot every chunk joins); "
            f"the source is {src.dialect}"
        )
    if dst.dialect not in ("postgresql", "sqlite"):
        raise ConfigError(
            f"target {dst.redacted}: only postgresql:// and sqlite:/// targets are supported"
        )
    if dst.dialect == "sqlite" and schema not in (None, "main"):
        raise ConfigError("a SQLite target has no schemas: leave schema=None")
    settings = resolve_settings(
        {"workers": workers, "chunk_size": chunk_size, "batch_size": batch_size}, params
    )
    spec_t = normalize(transform)
    check_reachable(src, "source")
    check_reachable(dst, "target")
    workers_fit, notes = fit_workers(src, dst, settings.workers)
    ref = TableRef(schema if dst.dialect != "sqlite" else None, table, dst.dialect)
    if verify and mode == "merge" and dst.dialect == "sqlite":
        raise ConfigError(
            "verify=True cannot check a merge into SQLite (updated rows keep their old rowids); "
            "use a PostgreSQL target or drop verify"
        )
    layout = describe_source(src, query)
    notes.extend(layout.notes)
    probe = SourceProbe(src, query, layout)
    # replace loads a staging table and swaps it in at the end
    load_ref = (
        TableRef(ref.schema, stage_name(table, job_id, dst.dialect), ref.dialect)
        if mode == "replace"
        else ref
    )
    tgt = open_target(dst, ref)
    load = open_target(dst, load_ref, conn=tgt.conn) if load_ref != ref else tgt
    final_table: TableRef | None = ref if mode == "replace" else None
    claimed = created_stage = False
    try:
        # who this job is, before anything is created or emptied: a refused run leaves
        # nothing behind
        if ref.schema and not tgt.schema_exists():
            raise ConfigError(
                f"schema {ref.schema!r} does not exist in the target {dst.redacted}; create it "
                f"(CREATE SCHEMA {quote_ident(ref.schema)}) or pass an existing schema"
            )
        record = tgt.job_record(job_id)
        if record is not None and not resume:
            raise ConfigError(_registered_message(job_id, record, tgt))

        def sampled() -> tuple[pa.Schema, pa.Table, pa.Schema]:
            probe.schema()  # bad SQL fails here, before anything else
            return _output_schema(probe, spec_t)

        out_schema, sample, read_schema = _retrying(sampled, "sampling", retry)
        now_fp = fingerprint(
            src,
            query,
            load_ref.display,
            spec_t,
            key,
            strategy,
            mode,
            storage_schema(out_schema, dst.dialect),
        )
        if record is not None:
            # key and strategy only shape the plan, which a resume takes from the ledger: left
            # unsaid they mean "as stored"; said, they must match
            asked = {
                k: v
                for k, v in now_fp.items()
                if not (k == "key" and key is None or k == "strategy" and strategy == "auto")
            }
            _check_same_job(job_id, record, asked)
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
            if record.finished_at is not None:
                return _finished(job_id, record, plan, src, dst, ref, spec_t, settings, notes)
        else:
            plan = _plan_for(probe, query, strategy, key, settings, retry)
        exists = tgt.table_exists()
        if verify and exists and tgt.untracked():
            raise ConfigError(
                f"verify=True cannot check {ref.display} chunk by chunk: in a SQLite table "
                "WITHOUT ROWID, or one whose INTEGER PRIMARY KEY the job fills, a chunk's rows "
                "cannot be told apart; drop verify (am.verify still compares counts and "
                "checksums of the whole job's chunks against the source)"
            )
        if exists and mode == "create" and record is None:
            raise TargetError(
                f"target table {ref.display} already exists and mode='create' refuses it; "
                "use mode='append', 'replace', 'truncate' or 'merge', or drop the table",
                transient=False,
                kind="config",
            )
        if record is not None and not exists and mode != "replace":
            lost = tgt.committed(job_id)
            if lost:
                raise ConfigError(
                    f"cannot resume job {job_id!r}: its target table {ref.display} no longer "
                    f"exists, and with it {len(lost)} committed chunks; run the job again with "
                    "a new job_id"
                )
        merge_key = _merge_key(tgt, exists, key, out_schema, ref) if mode == "merge" else ()
        if merge_key and record is None and all(k in read_schema.names for k in merge_key):
            twice = probe.duplicated(merge_key)
            if twice is not None:
                n = twice.pop("_am_n")
                raise ConfigError(
                    f"mode='merge' upserts on ({', '.join(merge_key)}), but the query returns "
                    f"{n} rows with {twice}; which one the target keeps would depend on which "
                    "chunk commits last. Make the key unique in the query (DISTINCT ON, a "
                    "GROUP BY) or merge on a key that is"
                )
        if exists:
            # what can be refused on the existing table is refused before anything is created
            # or emptied (truncate empties the table when it claims the job)
            existing = _write_layout(tgt, out_schema, (), layout.session)
            _check_compatible(sample, out_schema, existing.schema, ref)
            lacking = [c for c in tgt.required_columns() if c not in out_schema.names]
            if lacking:
                them = "it" if len(lacking) == 1 else "them"
                raise ConfigError(
                    f"{ref.display} requires a value for {', '.join(map(repr, lacking))} (NOT "
                    f"NULL, no default), and the query does not return {them}; select {them} "
                    "in the query or transform, or give the column a default"
                )
            _check_narrowing(existing, layout, read_schema, out_schema, ref)
            if mode in ("replace", "truncate"):
                tgt.check_can_empty(mode)
        tgt.ensure_ledger()
        if record is None:
            if mode == "truncate" and exists:
                claimed = load.truncate_and_register(job_id, plan.to_json(), now_fp)
            else:
                claimed = load.register_job(job_id, plan.to_json(), now_fp)
            if not claimed:
                raise ConfigError(
                    f"job_id {job_id!r} was registered by another run just now (two runs of "
                    "one job at once); let that run finish, or use a new job_id"
                )
        committed = load.committed(job_id)
        if mode == "replace":
            if not load.table_exists():
                if committed:
                    raise TargetError(
                        f"the staging table {load_ref.display} of job {job_id!r} is gone, and "
                        f"with it {len(committed)} committed chunks; start again with a new "
                        "job_id (the target is untouched)",
                        transient=False,
                    )
                if exists:
                    load.create_like(ref)
                else:
                    _create(load, out_schema, read_schema, layout, (), notes)
                created_stage = True
            elif record is None:  # left by a run that died before registering: not ours to keep
                load.drop_table()
                if exists:
                    load.create_like(ref)
                else:
                    _create(load, out_schema, read_schema, layout, (), notes)
                created_stage = True
        elif not exists:
            _create(tgt, out_schema, read_schema, layout, merge_key, notes)
            log.info("created table %s", ref.display)
        write = _write_layout(load, out_schema, merge_key, layout.session)
        _check_compatible(sample, out_schema, write.schema, load_ref)
        _check_narrowing(write, layout, read_schema, out_schema, load_ref)
        identity = load.table_identity()
        if record is None:
            if identity is not None:
                load.set_fingerprint(job_id, {**now_fp, "table_identity": identity})
        else:
            stored_identity = (record.fingerprint or {}).get("table_identity")
            if identity is not None and stored_identity not in (None, identity):
                raise ConfigError(
                    f"cannot resume job {job_id!r}: {load_ref.display} was dropped and created "
                    "again since the job started, so the chunks its ledger lists are not in "
                    "it; run the job again with a new job_id"
                )
            missing = load.missing_chunks(job_id)
            if mode == "merge":
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
                shown = "; ".join(f"chunk {c}: {w} committed, {h} found" for c, w, h in missing[:5])
                raise ConfigError(
                    f"cannot resume job {job_id!r}: {load_ref.display} no longer holds rows its "
                    f"ledger says were committed ({len(missing)} chunks: {shown}); the table was "
                    "emptied or changed since. Run the job again with a new job_id"
                )
    except BaseException:
        if created_stage:
            load.drop_table(quiet=True)
        if claimed:
            load.unregister_job(job_id)
        raise
    finally:
        tgt.close()
    target_schema = write.schema
    use_snapshot = _snapshot_for(snapshot, src, plan, notes)
    spec = JobSpec(
        job_id=job_id,
        plan=plan,
        source=src,
        target=dst,
        table=load_ref,
        target_schema=target_schema,
        transform=spec_t,
        retry=retry or RetryConfig(),
        workers=workers_fit,
        batch_size=settings.batch_size,
        committed=committed,
        notes=tuple(notes),
        verify=bool(verify),
        statement_timeout=statement_timeout,
        stall_timeout=stall_timeout,
        snapshot=use_snapshot,
        max_worker_memory=max_worker_memory,
        layout=layout if layout.columns else None,
        write=write,
        mode=mode,
        final_table=final_table,
        final_existed=exists,
        executor=executor,
        cluster=cluster,
        swap_with=swap,
    )
    return _Prepared(spec, settings)


def stage_name(table: str, job_id: str, dialect: str = "postgresql") -> str:
    """The staging table a ``replace`` job loads (same schema, a name of the job): built by
    :func:`arrowmapper.sql.derived_name` under the server's byte limit, so the server never
    cuts it and it can never equal (or be cut to) a user's table name."""
    return derived_name(table, "stage", dialect, salt=job_id)


def _snapshot_for(asked: bool | None, src: Endpoint, plan: Plan, notes: list[str]) -> bool:
    """Whether chunks read from one exported snapshot: as asked, or -- left unsaid -- for
    ctid and offset plans of a PostgreSQL source with more than one chunk. Their chunks are
    physical block ranges and row positions: a row a concurrent UPDATE moves to another block,
    or an INSERT that shifts the pages, would otherwise be read twice or missed."""
    if asked is not None:
        return asked
    if src.dialect != "postgresql" or plan.strategy not in ("ctid", "offset"):
        return False
    if len(plan.chunks) < 2:
        return False
    notes.append(
        f"{plan.strategy} chunks read from one snapshot (concurrent writes cannot make them "
        "read a row twice or miss one); pass snapshot=False to read each chunk as it is then"
    )
    return True


def _registered_message(job_id: str, record: JobRecord, tgt: Target) -> str:
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


def _check_same_job(job_id: str, record: JobRecord, now: dict[str, str]) -> None:
    """Refuse to resume a job with anything that defines it changed."""
    changed = differences(record.fingerprint or {}, now)
    if changed:
        raise ConfigError(
            f"cannot resume job {job_id!r}: it is not the same job ("
            + "; ".join(changed)
            + "). Resume it with what it was started with, or run the new job with a new job_id"
        )


def _finished(
    job_id: str,
    record: JobRecord,
    plan: Plan,
    src: Endpoint,
    dst: Endpoint,
    ref: TableRef,
    spec_t: TransformSpec,
    settings: Settings,
    notes: list[str],
) -> _Prepared:
    """A resumed job that already finished: a spec with every chunk committed (nothing runs)."""
    note = (
        f"job {job_id!r} already finished at {record.finished_at}: nothing to do, no rows "
        "loaded; a job that runs again needs a new job_id each run"
    )
    log.warning(note)
    spec = JobSpec(
        job_id=job_id,
        plan=plan,
        source=src,
        target=dst,
        table=ref,
        target_schema=pa.schema([]),
        transform=spec_t,
        workers=1,
        committed={c.chunk_id: 0 for c in plan.chunks},
        in_process=True,
        notes=(*notes, note),
        already_finished=True,
    )
    return _Prepared(spec, settings)


def _merge_key(
    tgt: Target, exists: bool, key: str | None, out_schema: pa.Schema, ref: TableRef
) -> tuple[str, ...]:
    """The columns ``merge`` upserts on: ``key``, or the target's primary key; checked against
    the target's unique indexes (ON CONFLICT needs one) before any row moves."""
    if exists:
        uniques = tgt.unique_keys()
        if key:
            want: tuple[str, ...] = (key,)
            if not any(set(u) == {key} for u in uniques):
                raise TargetError(
                    f"mode='merge' upserts on key {key!r}, but {ref.display} has no primary key "
                    f"or unique index on ({key}); add one (CREATE UNIQUE INDEX ON {ref.display} "
                    f"({key})) or name a key that has one",
                    transient=False,
                    kind="config",
                )
        elif uniques:
            want = uniques[0]
        else:
            raise ConfigError(
                f"mode='merge' needs key= or a primary key on {ref.display}; it has neither"
            )
    elif key:
        want = (key,)
    else:
        raise ConfigError(
            f"mode='merge' into a new table ({ref.display}) needs key=: it becomes the primary key"
        )
    missing = [k for k in want if k not in out_schema.names]
    if missing:
        raise ConfigError(
            f"mode='merge' key column(s) {', '.join(missing)} are not in the query's output "
            f"(columns: {', '.join(out_schema.names)})"
        )
    return want


def _create(
    tgt: Target,
    out_schema: pa.Schema,
    read_schema: pa.Schema,
    layout: SourceLayout,
    key: tuple[str, ...],
    notes: list[str],
) -> None:
    """Create the target. On PostgreSQL a column passed through from a described source keeps
    the source's type (numeric(40,20), uuid, jsonb, an enum the target also has); the rest
    take the type their Arrow type implies."""
    d = tgt.ref.dialect
    if d == "sqlite":
        tgt.create_table(out_schema)
        if key:
            tgt.add_primary_key(key)
        return
    tgt.create_table_sql(_created_columns(tgt, out_schema, read_schema, layout, notes), key)


def _created_columns(
    tgt: Target,
    out_schema: pa.Schema,
    read_schema: pa.Schema,
    layout: SourceLayout,
    notes: list[str],
) -> list[tuple[str, str]]:
    """(name, SQL type) of each column a new PostgreSQL (or SQLite) target gets."""
    d = tgt.ref.dialect
    storage = storage_schema(out_schema, d)
    if d == "sqlite":
        return [(f.name, sql_type_name(f.type, d)) for f in storage]
    read = storage_schema(read_schema, d)
    columns = []
    for f, st in zip(out_schema, storage, strict=True):
        src_col = layout.column(f.name)
        sql_type = None
        # passed through unchanged (Polars may hand back large_string for string, ...)
        passed = f.name in read.names and read.field(f.name).type == st.type
        if src_col is not None and src_col.target_type and passed:
            sql_type = src_col.target_type
            if src_col.fallback_type and not tgt.type_exists(sql_type):
                notes.append(
                    f"column {f.name!r}: type {sql_type} does not exist in the target; "
                    f"created as {src_col.fallback_type}"
                )
                sql_type = src_col.fallback_type
        columns.append((f.name, sql_type or sql_type_name(st.type, d)))
    return columns


def _write_layout(
    load: Target,
    out_schema: pa.Schema,
    merge_key: tuple[str, ...],
    session: tuple[tuple[str, str], ...] = (),
) -> WriteLayout:
    """How chunks are written into ``load``; ``session``: the settings the source renders
    text-read values under (the target parses them under the same)."""
    d = load.ref.dialect
    adbc = load.arrow_schema()
    storage = storage_schema(out_schema, d)
    pg_cols = load.pg_columns() if d == "postgresql" else None
    try:
        layout = target_layout(d, adbc, pg_cols, out_schema, storage)
    except TargetError as exc:
        raise TargetError(f"incompatible target table {load.ref.display}: {exc}") from None
    return dataclasses.replace(layout, merge_key=merge_key, session=session)


def _check_narrowing(
    write: WriteLayout,
    layout: SourceLayout,
    read_schema: pa.Schema,
    out_schema: pa.Schema,
    ref: TableRef,
) -> None:
    """Refuse, before any row is written, a target column that keeps less of a value than the
    source gives it (``timestamp(0)`` rounds fractional seconds, a cast into ``varchar(3)[]``
    cuts): the server would change such values without an error."""
    for col in write.columns:
        if col.name not in out_schema.names or not col.sql_type:
            continue
        out = out_schema.field(col.name).type
        src = layout.column(col.name)
        passed = col.name in read_schema.names and read_schema.field(col.name).type == out
        # a column the transform made has no declared precision to compare (left to the
        # server's rounding, as an INSERT would be)
        source_type = src.sql_type if src is not None and passed else None
        why = narrowing(source_type, col.sql_type, col.staged)
        if why:
            raise ConfigError(
                f"column {col.name!r}: the target's {col.sql_type} {why} ({source_type}), so "
                f"values would be changed without an error; round or cut them in the query "
                f"(e.g. date_trunc, or a cast to {col.sql_type}) if that is what you want, or "
                f"widen the column of {ref.display}"
            )


def _stored_plan(tgt: Target, job_id: str) -> tuple[str, str] | None:
    try:
        return tgt.stored_plan(job_id)
    except Exception:  # no ledger yet: nothing to resume
        tgt.rollback()
        return None


def _check_compatible(
    sample: pa.Table, out_schema: pa.Schema, target_schema: pa.Schema, ref: TableRef
) -> None:
    """Refuse, before any row is written, columns the existing target cannot take."""
    fixed = sample.cast(storage_schema(out_schema, ref.dialect)) if sample.num_rows else None
    batch = (fixed.to_batches() or [None])[0] if fixed is not None else None
    if batch is None:
        batch = pa.RecordBatch.from_pylist([], schema=storage_schema(out_schema, ref.dialect))
    try:
        conform(batch, target_schema, ref.dialect)
    except TargetError as exc:
        raise TargetError(f"incompatible target table {ref.display}: {exc}") from None


@boundary("map_query")
def map_query(
    source: str,
    query: str,
    target: str,
    table: str,
    *,
    schema: str | None = None,
    transform: TransformLike = None,
    strategy: str = "auto",
    key: str | None = None,
    workers: int | None = None,
    chunk_size: int | None = None,
    mode: str = "append",
    retry: RetryConfig | None = None,
    progress: ProgressArg = None,
    job_id: str | None = None,
    resume: bool = False,
    batch_size: int | None = None,
    verify: bool = False,
    statement_timeout: float | None = None,
    stall_timeout: float | None = None,
    snapshot: bool | None = None,
    max_worker_memory: int | None = None,
    executor: str = "local",
    cluster: str | None = None,
    swap: str = "truncate",
    **unknown: Any,
) -> JobResult:
    """Copy the result of ``query`` on ``source`` into ``table`` on ``target``, in parallel.

    >>> import arrowmapper as am                                      # doctest: +SKIP
    >>> r = am.map_query("postgresql://u@h/src", "SELECT * FROM events",
    ...                  "postgresql://u@h/dst", "events_copy", key="id", workers=4)
    >>> r.rows_written, r.rows_per_s                                  # doctest: +SKIP

    ``verify=True`` reads each chunk back inside its transaction and compares its row count and
    checksum with what was read (a mismatch is rolled back and retried).
    ``statement_timeout`` (seconds) bounds each source query on PostgreSQL and MySQL;
    ``stall_timeout`` (seconds) kills a worker whose chunk makes no progress that long, and
    retries the chunk. ``snapshot=True`` (PostgreSQL sources) exports one snapshot and reads
    every chunk from it, so writes to the source during the job cannot tear the copy; left as
    None it is on for ctid and offset plans of a PostgreSQL source (their chunks are block
    ranges and row positions, which concurrent writes move) and off otherwise.
    ``max_worker_memory`` (MiB) kills a worker whose RSS grows past it; its chunk, like one
    whose worker the OOM killer took, is split in two and retried.
    ``executor="dask"`` runs each chunk as a task on a Dask distributed cluster: ``cluster`` is
    the scheduler's address (``tcp://host:8786``), or None for a LocalCluster of ``workers``
    processes (needs the ``dask`` extra).
    ``swap`` (``mode="replace"`` into an existing table) is how the old rows go in the swap:
    ``"truncate"`` (fast; a REPEATABLE READ reader whose snapshot predates the swap then sees
    an empty table) or ``"delete"`` (slower; such a reader keeps seeing the old rows).

    A job is what it was started with: ``resume=True`` continues only the same job (source,
    query, table and its identity, transform, key, strategy, mode, columns; anything else is
    refused, naming what changed), checks the target still holds what the ledger says was
    committed, and does nothing for a job that already finished. A job that runs again
    (nightly, ...) needs a new ``job_id`` each run.

    Raises :class:`ConfigError`/:class:`PlanError`/:class:`SourceError`/:class:`TargetError`
    before any row is written, and :class:`JobFailed` (``.result`` holds the JobResult) when
    chunks still fail after their retries. Rerun with the same ``job_id`` and ``resume=True`` to
    load only what is missing.
    """
    _refuse_unknown(unknown)
    # cheap checks first (bad arguments must not spawn anything), then start the local
    # workers: their imports overlap the planning and preflight that prepare() does
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("mode", mode, MODES)
    _check_choice("executor", executor, EXECUTORS)
    check_table_name(table)
    parse_uri(source, "source")
    parse_uri(target, "target")
    pool = _early_pool(workers, executor)
    try:
        prepared = prepare(
            source,
            query,
            target,
            table,
            schema=schema,
            transform=transform,
            strategy=strategy,
            key=key,
            workers=workers,
            chunk_size=chunk_size,
            batch_size=batch_size,
            mode=mode,
            retry=retry,
            job_id=job_id,
            resume=resume,
            verify=verify,
            statement_timeout=statement_timeout,
            stall_timeout=stall_timeout,
            snapshot=snapshot,
            max_worker_memory=max_worker_memory,
            executor=executor,
            cluster=cluster,
            swap=swap,
        )
    except BaseException:
        if pool is not None:
            pool.discard()
        raise
    result = run_prepared(prepared.spec, progress, pool)
    if not result.success:
        raise JobFailed(
            f"job {result.job_id}: {len(result.failed_chunks)} of {result.chunks} chunks failed; "
            f"first error: {result.errors[0] if result.errors else 'unknown'}. Fix the cause and "
            f"rerun with job_id={result.job_id!r}, resume=True to load only what is missing",
            result,
        )
    return result


def _refuse_unknown(unknown: dict[str, Any]) -> None:
    """A misspelt option is an error that names the options there are, not a silent default."""
    if not unknown:
        return
    import difflib
    import inspect

    known = [p for p in inspect.signature(map_query).parameters if p != "unknown"]
    name = sorted(unknown)[0]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"map_query got an unknown option {name!r}; {hint}options: {', '.join(known)}"
    )


def _early_pool(workers: int | None, executor: str) -> LocalPool | None:
    """A local pool started before the job is prepared (None for Dask or bad settings, which
    prepare() reports). Called after the cheap checks, so bad arguments spawn nothing."""
    if executor != "local":
        return None
    try:
        n = resolve_settings({"workers": workers}).workers
    except ConfigError:
        return None
    pool = LocalPool(n)
    pool.start(n)
    return pool


def run_prepared(
    spec: JobSpec, progress: ProgressArg = None, pool: LocalPool | None = None
) -> JobResult:
    """Run a prepared job (``pool``: local workers already started, taken over and stopped)."""
    callback: Callable[[ProgressSnapshot], Any] | None
    if progress is True:
        callback = print_progress
    elif progress is None or progress is False:
        callback = None
    elif callable(progress):
        callback = progress
    else:
        if pool is not None:
            pool.discard()
        raise ConfigError(f"progress must be True, False, None or a callable, got {progress!r}")
    if spec.in_process and pool is not None:
        pool.discard()
        pool = None
    result = Coordinator(spec, callback, executor=pool).run()
    if result.success and not spec.already_finished:
        _finish(spec)
    if spec.final_table is not None:  # report the table the rows are (or will be) in
        result = dataclasses.replace(result, table=spec.final_table.display)
    return result


def _finish(spec: JobSpec) -> None:
    """Every chunk committed: swap a replace job's stage in, and mark the job finished (in
    the swap's transaction), so resuming it again is a no-op."""
    if spec.final_table is None:
        done = open_target(spec.target, spec.table)
        try:
            done.mark_finished(spec.job_id)
        finally:
            done.close()
        return
    final = open_target(spec.target, spec.final_table)
    try:
        columns = [c.name for c in spec.write.columns] if spec.write else []
        swapped = final.swap_in(
            spec.table, columns, spec.final_existed, spec.job_id, spec.swap_with
        )
    finally:
        final.close()
    if swapped:
        log.info("swapped %s into %s", spec.table.display, spec.final_table.display)
    else:
        log.warning("job %s was finished by another run; nothing swapped", spec.job_id)


# --------------------------------------------------------------------------- describe and verify


@dataclass(frozen=True)
class ColumnMapping:
    """How one column travels: the source's type and how it is read, its Arrow type after the
    transform, the target's type and how it is written."""

    name: str
    arrow_type: str
    target_type: str
    note: str
    source_type: str = ""


@boundary("describe_columns")
def describe_columns(
    source: str,
    query: str,
    target: str | None = None,
    table: str | None = None,
    *,
    schema: str | None = None,
    transform: TransformLike = None,
) -> list[ColumnMapping]:
    """The column mapping a job would use, without moving data (``arrowmapper plan`` prints it):
    per column, the source type, the read path (as is, or exact text parsed into a decimal),
    the Arrow type the transform produces, the target type and the write path (as is, an
    Arrow cast, an extension type, or a cast the server applies)."""
    src = parse_uri(source, "source")
    _check_query(query, src)
    check_reachable(src, "source")
    layout = describe_source(src, query)
    probe = SourceProbe(src, query, layout)
    out_schema, _, read_schema = _output_schema(probe, normalize(transform))

    def read_note(name: str) -> tuple[str, list[str]]:
        col = layout.column(name)
        if col is None or name not in read_schema.names:
            return "", []
        return col.sql_type or "", ([f"read {col.note}"] if col.note else [])

    if target is None or table is None:
        out = []
        for f in out_schema:
            st, notes = read_note(f.name)
            out.append(ColumnMapping(f.name, str(f.type), "", "; ".join(notes), st))
        return out
    dst = parse_uri(target, "target")
    check_reachable(dst, "target")
    ref = TableRef(schema if dst.dialect != "sqlite" else None, table, dst.dialect)
    tgt = open_target(dst, ref)
    try:
        if not tgt.table_exists():
            created = dict(_created_columns(tgt, out_schema, read_schema, layout, []))
            out = []
            for f in out_schema:
                st, notes = read_note(f.name)
                ct = created.get(f.name) or ""
                out.append(
                    ColumnMapping(f.name, str(f.type), ct, "; ".join([*notes, "created"]), st)
                )
            return out
        types = tgt.column_types()
        write = _write_layout(tgt, out_schema, ())
    finally:
        tgt.close()
    storage = storage_schema(out_schema, dst.dialect)
    by_name = {c.name: c for c in write.columns}
    mappings = []
    for f in out_schema:
        st, notes = read_note(f.name)
        col = by_name.get(f.name)
        if col is None:
            notes.append("MISSING in the target")
            mappings.append(ColumnMapping(f.name, str(f.type), "-", "; ".join(notes), st))
            continue
        have = storage.field(f.name).type
        if col.staged:
            notes.append(f"exact text, cast by the server to {col.sql_type or types[f.name]}")
        elif (
            isinstance(col.arrow, pa.BaseExtensionType)
            and not isinstance(col.arrow, pa.UuidType | pa.JsonType)
            or col.arrow == have
        ):
            notes.append("as is")
        else:
            notes.append(f"cast {f.type} -> {col.arrow}")
        mappings.append(ColumnMapping(f.name, str(f.type), types[f.name], "; ".join(notes), st))
    return mappings


# verify lives in arrowmapper.verify (it imports this module's helpers lazily); re-exported here
from .verify import ChunkCheck as ChunkCheck  # noqa: E402
from .verify import VerifyReport as VerifyReport  # noqa: E402
from .verify import verify as _verify  # noqa: E402

verify = boundary("verify")(_verify)
