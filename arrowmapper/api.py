"""The Python API: :func:`map_query` runs a job, :func:`plan_query` shows its plan.

Both validate everything they can before touching the target: URIs, strategy, mode, key column,
the SQL itself (a ``LIMIT 0`` describe), the transform (run on a sample) and the target's column
types. Only then is the table created and the first chunk dispatched.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
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
    parse_uri,
    resolve_settings,
    validate_identifier,
)
from .coordinator import Coordinator, JobSpec
from .errors import ConfigError, JobFailed, SourceError, TargetError, redact
from .executors import LocalPool
from .plan import Plan, build_plan
from .progress import ProgressSnapshot, print_progress
from .report import JobResult
from .sources import SourceProbe
from .targets import TableRef, Target, check_job_id, conform, sql_type_name, storage_schema
from .transform import Transformer, TransformLike, TransformSpec, normalize
from .types import SourceLayout, WriteLayout, describe_source, target_layout

log = logging.getLogger("arrowmapper")

ProgressArg = bool | Callable[[ProgressSnapshot], Any] | None


def _new_job_id() -> str:
    return time.strftime("am-%Y%m%d-%H%M%S-") + secrets.token_hex(4)


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def _plan_for(
    probe: SourceProbe, query: str, strategy: str, key: str | None, settings: Settings
) -> Plan:
    probe.schema()  # bad SQL fails here, before anything else
    return build_plan(probe, query, strategy, key, settings.chunk_size, settings.workers)


def _check_query(query: object) -> str:
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("query must be a non-empty SQL query or table name")
    return query


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
    src = parse_uri(source, "source")
    check_reachable(src, "source")
    settings = resolve_settings({"chunk_size": chunk_size, "workers": workers})
    layout = describe_source(src, _check_query(query))
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
    except Exception as exc:
        raise ConfigError(
            f"the transform ({spec.label}) failed on a sample of the source: "
            f"{type(exc).__name__}: {redact(str(exc))}"
        ) from exc
    if not batches:
        import polars as pl

        empty = pl.from_arrow(sample.slice(0, 0))
        out = transformer.apply(empty).to_arrow()
        return out.schema, out, sample.schema
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
        if "too many connections" in str(exc):
            return 0
        raise SourceError(f"cannot inspect {endpoint.redacted}: {redact(str(exc))}") from exc
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
    snapshot: bool = False,
    max_worker_memory: int | None = None,
    executor: str = "local",
    cluster: str | None = None,
) -> _Prepared:
    """Validate, plan, preflight and create the target table; return a runnable JobSpec."""
    _check_choice("strategy", strategy, STRATEGIES)
    _check_choice("mode", mode, MODES)
    _check_query(query)
    validate_identifier(table, "table")
    if schema is not None:
        validate_identifier(schema, "schema")
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
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            raise ConfigError(f"{name} must be a number of seconds > 0 or None, got {value!r}")
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
        from .executors import check_scheduler

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
        TableRef(ref.schema, stage_name(table, job_id), ref.dialect) if mode == "replace" else ref
    )
    tgt = Target(dst, ref)
    load = Target(dst, load_ref, conn=tgt.conn) if load_ref != ref else tgt
    final_table: TableRef | None = ref if mode == "replace" else None
    try:
        stored = _stored_plan(tgt, job_id) if resume else None
        if stored is not None:
            stored_table, plan_json = stored
            if stored_table != load_ref.display:
                raise ConfigError(
                    f"job {job_id!r} loaded into {stored_table}, not {load_ref.display}; resume "
                    "it with the same table and mode"
                )
            plan = Plan.from_json(plan_json)
            probe.schema()
        else:
            plan = _plan_for(probe, query, strategy, key, settings)
        out_schema, sample, read_schema = _output_schema(probe, spec_t)
        exists = tgt.table_exists()
        if exists and mode == "create" and stored is None:
            raise TargetError(
                f"target table {ref.display} already exists and mode='create' refuses it; "
                "use mode='append', 'replace', 'truncate' or 'merge', or drop the table"
            )
        if mode == "replace" and stored is not None and not load.table_exists():
            # the stage is gone only after the swap: this job already finished
            load_ref, load, final_table = ref, tgt, None
        merge_key = _merge_key(tgt, exists, key, out_schema, ref) if mode == "merge" else ()
        if mode == "replace" and final_table is not None and not load.table_exists():
            if exists:
                load.create_like(ref)
            else:
                _create(load, out_schema, read_schema, layout, (), notes)
        elif not exists and final_table is None:
            _create(tgt, out_schema, read_schema, layout, merge_key, notes)
            log.info("created table %s", ref.display)
        write = _write_layout(load, out_schema, merge_key)
        _check_compatible(sample, out_schema, write.schema, load_ref)
        load.ensure_ledger()
        committed = load.committed(job_id)
        if committed and not resume:
            raise ConfigError(
                f"job_id {job_id!r} already committed {len(committed)} chunks into this target; "
                "pass resume=True to finish it, or use a new job_id"
            )
        if stored is None:
            if mode == "truncate" and exists:
                load.truncate_and_register(job_id, plan.to_json())
            else:
                load.store_plan(job_id, plan.to_json())
    finally:
        tgt.close()
    target_schema = write.schema
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
        snapshot=bool(snapshot),
        max_worker_memory=max_worker_memory,
        layout=layout if layout.columns else None,
        write=write,
        mode=mode,
        final_table=final_table,
        final_existed=exists,
        executor=executor,
        cluster=cluster,
    )
    return _Prepared(spec, settings)


def stage_name(table: str, job_id: str) -> str:
    """The staging table a ``replace`` job loads (same schema, a name of the job)."""
    import hashlib

    tag = hashlib.sha1(job_id.encode()).hexdigest()[:10]
    return f"{table[:40]}__am_stage_{tag}"


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


def _write_layout(load: Target, out_schema: pa.Schema, merge_key: tuple[str, ...]) -> WriteLayout:
    d = load.ref.dialect
    adbc = load.arrow_schema()
    storage = storage_schema(out_schema, d)
    pg_cols = load.pg_columns() if d == "postgresql" else None
    try:
        layout = target_layout(d, adbc, pg_cols, out_schema, storage)
    except TargetError as exc:
        raise TargetError(f"incompatible target table {load.ref.display}: {exc}") from None
    return dataclasses.replace(layout, merge_key=merge_key)


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
    snapshot: bool = False,
    max_worker_memory: int | None = None,
    executor: str = "local",
    cluster: str | None = None,
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
    every chunk from it, so writes to the source during the job cannot tear the copy.
    ``max_worker_memory`` (MiB) kills a worker whose RSS grows past it; its chunk, like one
    whose worker the OOM killer took, is split in two and retried.
    ``executor="dask"`` runs each chunk as a task on a Dask distributed cluster: ``cluster`` is
    the scheduler's address (``tcp://host:8786``), or None for a LocalCluster of ``workers``
    processes (needs the ``dask`` extra).

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
    if result.success and spec.final_table is not None:
        final = Target(spec.target, spec.final_table)
        try:
            columns = [c.name for c in spec.write.columns] if spec.write else []
            final.swap_in(spec.table, columns, spec.final_existed)
        finally:
            final.close()
        log.info("swapped %s into %s", spec.table.display, spec.final_table.display)
    return result


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
    check_reachable(src, "source")
    layout = describe_source(src, _check_query(query))
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
    tgt = Target(dst, ref)
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


@dataclass(frozen=True)
class ChunkCheck:
    """One chunk of a finished job: the source now, the ledger, and the target's rows."""

    chunk_id: int
    predicate: str
    source_rows: int
    rows_read: int | None
    rows_written: int | None
    target_rows: int | None = None
    source_checksum: str | None = None
    target_checksum: str | None = None
    ledger_checksum: str | None = None

    @property
    def committed(self) -> bool:
        return self.rows_written is not None

    @property
    def problems(self) -> list[str]:
        if not self.committed:
            return ["not committed"]
        found = []
        read = self.rows_read if self.rows_read is not None else self.rows_written
        if read != self.source_rows:
            found.append(f"source now has {self.source_rows} rows, {read} were read")
        if self.target_rows is not None and self.target_rows != self.rows_written:
            found.append(f"target holds {self.target_rows} rows, {self.rows_written} were written")
        sums = {x for x in (self.source_checksum, self.target_checksum, self.ledger_checksum) if x}
        if len(sums) > 1:
            found.append(
                f"checksums differ (source {self.source_checksum}, target "
                f"{self.target_checksum}, ledger {self.ledger_checksum})"
            )
        return found

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class VerifyReport:
    """The result of :func:`verify`: per-chunk checks and the target table's total."""

    job_id: str
    table: str
    checks: tuple[ChunkCheck, ...]
    target_rows: int

    @property
    def ledger_rows(self) -> int:
        return sum(c.rows_written or 0 for c in self.checks)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def summary(self) -> str:
        bad = [c for c in self.checks if not c.ok]
        checked = (
            "counts and checksums" if any(c.source_checksum for c in self.checks) else "counts"
        )
        lines = [
            f"job {self.job_id} -> {self.table}: {len(self.checks)} chunks, "
            f"{len(self.checks) - len(bad)} match the source ({checked}); "
            f"ledger {self.ledger_rows:,} rows, table {self.target_rows:,} rows"
        ]
        for c in bad:
            lines.append(f"  chunk {c.chunk_id} ({c.predicate}): {'; '.join(c.problems)}")
        if self.target_rows != self.ledger_rows:
            lines.append(
                "  note: the table's row count differs from this job's ledger (other "
                "jobs or writers use the table, or the transform changes row counts)"
            )
        return "\n".join(lines)


def verify(
    source: str,
    target: str,
    job_id: str,
    *,
    schema: str | None = None,
    transform: TransformLike = None,
    checksums: bool = True,
) -> VerifyReport:
    """Re-check a finished job, chunk by chunk: the rows in the source now, what the ledger says
    was read and written, and the rows the target holds for that chunk.

    With ``checksums`` (the default) each chunk is read from the source again, transformed (pass
    the job's ``transform``) and cast like the job did, and its order-independent checksum is
    compared with the chunk's rows in the target and, for jobs run with ``verify=True``, with
    the checksum in the ledger. ``checksums=False`` compares counts only.
    """
    check_job_id(job_id)
    src, dst = parse_uri(source, "source"), parse_uri(target, "target")
    check_reachable(src, "source")
    check_reachable(dst, "target")
    spec_t = normalize(transform)
    lookup = Target(dst, TableRef(schema if dst.dialect != "sqlite" else None, "_", dst.dialect))
    try:
        stored = _stored_plan(lookup, job_id)
        if stored is None:
            where = f"schema {schema!r}" if schema else "the default schema"
            raise ConfigError(
                f"no job {job_id!r} in the ledger of {dst.redacted} ({where}); "
                "pass the schema the job loaded into"
            )
        table_name, plan_json = stored
        ledger = lookup.ledger(job_id)
    finally:
        lookup.close()
    tschema, _, tname = table_name.rpartition(".")
    tgt = Target(dst, TableRef(tschema or None, tname, dst.dialect))
    try:
        target_rows = tgt.row_count()
        plan = Plan.from_json(plan_json)
        layout = describe_source(src, plan.query)
        write = None
        if checksums:  # read and cast the source exactly as the job did
            out_schema, _, _ = _output_schema(SourceProbe(src, plan.query, layout), spec_t)
            write = _write_layout(tgt, out_schema, ())
        checks = [
            _check_chunk(
                src,
                tgt,
                job_id,
                chunk,
                ledger.get(chunk.chunk_id),
                spec_t,
                write,
                layout if layout.columns else None,
            )
            for chunk in plan.chunks
        ]
    finally:
        tgt.close()
    return VerifyReport(job_id, table_name, tuple(checks), target_rows)


def _check_chunk(
    src: Endpoint,
    tgt: Target,
    job_id: str,
    chunk: Any,
    entry: Any,
    spec_t: TransformSpec,
    write: WriteLayout | None,
    layout: SourceLayout | None,
) -> ChunkCheck:
    from .checksum import Checksum, align
    from .sources import read_arrow
    from .worker import ChunkTask, source_batches

    written = read = locator = stored_sum = None
    if entry is not None:
        written, read, stored_sum, locator = entry
    base = dict(
        chunk_id=chunk.chunk_id,
        predicate=chunk.predicate,
        rows_read=read,
        rows_written=written,
        ledger_checksum=stored_sum,
    )
    if write is None:  # counts only
        counted = read_arrow(src, f"SELECT COUNT(*) AS n FROM ({chunk.sql}) AS _am_v").read_all()
        held = tgt.read_rows(locator, []).num_rows if locator else None
        return ChunkCheck(source_rows=int(counted.column(0)[0].as_py()), target_rows=held, **base)
    task = ChunkTask(
        job_id=job_id,
        chunk=chunk,
        source=src,
        target=tgt.endpoint,
        table=tgt.ref,
        target_schema=write.schema,
        transform=spec_t,
        layout=layout,
        write=write,
    )
    rows_in = [0]
    source_sum = Checksum()
    sent: list[pa.Schema] = []
    for batch in source_batches(task, None, rows_in):
        source_sum.add(batch)
        sent = sent or [batch.schema]
    target_sum = None
    held = None
    if locator:
        back = tgt.read_rows(locator, sent[0].names if sent else [], as_text=set(write.staged))
        held = back.num_rows
        found = Checksum()
        if sent and back.num_rows:
            found.add(align(back, sent[0]))
        target_sum = found.digest
    return ChunkCheck(
        source_rows=rows_in[0],
        target_rows=held,
        source_checksum=source_sum.digest,
        target_checksum=target_sum,
        **base,
    )
