"""The Python API: :func:`map_query` runs a job, :func:`plan_query` shows its plan,
:func:`describe_columns` its column mapping.

Each builds one :class:`~arrowmapper.config.JobConfig` from its arguments (every option
checked once, ``MAPPER_*`` variables under the arguments) and calls into :mod:`arrowmapper.run`:
:func:`~arrowmapper.run.prepare.prepare_job` validates everything else it can before touching
the target -- the SQL itself (a ``LIMIT 0`` describe), the transform (run on a sample), the
target's column types -- and only then is the table created and the first chunk dispatched.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from .config import (
    OPTIONS,
    JobConfig,
    RetryConfig,
    api_options,
    check_reachable,
    parse_uri,
    usable_cpus,
)
from .config import refuse_unknown as refuse_unknown
from .errors import ConfigError, JobFailed, boundary
from .plan import Plan
from .run.executors import LocalPool
from .run.finish import ProgressArg as ProgressArg
from .run.finish import progress_callback
from .run.finish import run_prepared as run_prepared
from .run.objects import copy_constraints, copy_sequences, pg_objects
from .run.preflight import created_columns, plan_for
from .run.prepare import (
    Prepared,
    check_endpoints,
    check_source_query,
    output_schema,
    prepare_job,
    table_ref,
    target_rules,
    validate_identifier,
    write_layout,
)
from .run.prepare import stage_name as stage_name
from .run.report import JobResult
from .run.tables import TablesResult as TablesResult
from .run.tables import plan_tables as _plan_table_jobs
from .run.tables import prepare_tables, run_tables
from .sources import open_source, source_endpoint
from .sources.catalog import resolve_tables
from .targets import open_target, storage_schema
from .transform import TransformLike, normalize


def plan_query(
    source: Any,
    query: str | None = None,
    *,
    strategy: str = "auto",
    key: str | None = None,
    chunk_size: int | None = None,
    workers: int | None = None,
    target: str | None = None,
    table: str | None = None,
    schema: str | None = None,
    transform: TransformLike = None,
    mode: str = "append",
    path: str = "auto",
) -> Plan:
    """Plan a job without moving data. Given ``target`` and ``table``, the plan also says
    which path the job's chunks would take (``plan.path``: ``copy`` or ``arrow``) and why
    (``plan.path_reason``).

    >>> plan = plan_query("sqlite:///src.db", "events", strategy="rowid")  # doctest: +SKIP
    >>> print(plan.describe())                                             # doctest: +SKIP
    """
    c = JobConfig.build(
        {k: v for k, v in locals().items() if k in OPTIONS and k not in ("target", "table")}
    )
    src = source_endpoint(source)
    query = check_source_query(query, src)
    check_reachable(src, "source")
    with open_source(src) as reader:
        layout = reader.describe(query)
        probe = reader.probe(query, layout)
        plan = reader.plan(query, c.strategy, c.key, c.chunk_size, c.workers) or plan_for(
            probe, query, c.strategy, c.key, c.chunk_size, c.workers, render=reader.render
        )
        if target is None or table is None:
            return plan
        return _with_path(plan, c, reader, layout, probe, query, target, table)


def _with_path(
    plan: Plan,
    c: JobConfig,
    reader: Any,
    layout: Any,
    probe: Any,
    query: str,
    target: str,
    table: str,
) -> Plan:
    """``plan`` saying which path a job of ``c`` into ``table`` would take, and why."""
    from dataclasses import replace

    from .run.copypath import choose_path
    from .run.copypath import created_columns as as_created
    from .run.prepare import MODE_RULES

    dst = parse_uri(target, "target")
    check_reachable(dst, "target")
    spec_t = normalize(c.transform)
    asked = "auto" if c.path == "copy" else c.path  # a plan shows the refusal, not raises it
    with open_target(dst, table_ref(dst, c.schema, table)) as tgt:
        columns = None
        if not tgt.table_exists():
            out_schema, _, read_schema = output_schema(probe, spec_t)
            made = created_columns(tgt, out_schema, read_schema, layout, [])
            columns = lambda src: as_created(src, made)  # noqa: E731
        upserts = MODE_RULES[c.mode].upserts
        choice = choose_path(asked, reader, tgt, spec_t, upserts, query, columns)
    reason = choice.reason
    if c.path == "copy" and choice.path != "copy":
        reason = f"path='copy' would be refused: {reason.removeprefix('not eligible for copy: ')}"
    return replace(plan, path=choice.path, path_reason=reason)


def prepare(
    source: Any,
    query: str | None,
    target: str,
    table: str,
    params: Mapping[str, Any] | None = None,
    **options: Any,
) -> Prepared:
    """Prepare a job without running it (the options of :func:`map_query` but ``progress``;
    ``params``: the old executor's job parameters, ranked below the options):
    :func:`~arrowmapper.run.prepare.prepare_job` of their JobConfig."""
    refuse_unknown(options, "prepare", api_options())
    args = dict(source=source, query=query, target=target, table=table, **options)
    return prepare_job(JobConfig.build(args, params))


@boundary("map_query")
def map_query(
    source: Any,
    query: str | None,
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
    merge_key: str | Sequence[str] | None = None,
    retry: RetryConfig | None = None,
    progress: ProgressArg = None,
    job_id: str | None = None,
    resume: bool = False,
    allow_duplicate: bool | None = None,
    batch_size: int | None = None,
    verify: bool = False,
    incremental: bool = False,
    statement_timeout: float | None = None,
    stall_timeout: float | None = None,
    snapshot: bool | None = None,
    path: str = "auto",
    max_worker_memory: int | None = None,
    executor: str = "local",
    cluster: str | None = None,
    swap: str = "truncate",
    bad_rows: str | None = None,
    name: str | None = None,
    cursor: str | None = None,
    reset: bool = False,
    cursor_lag: float | None = None,
    metrics_file: str | None = None,
    metrics_port: int | None = None,
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
    ``path``: ``"auto"`` (default) relays each chunk's binary COPY stream from a PostgreSQL
    source straight into a PostgreSQL target's COPY, undecoded, when there is no transform and
    every column has the same built-in type on both sides (else the Arrow pipeline);
    ``"arrow"`` always takes the Arrow pipeline; ``"copy"`` refuses a job that is not
    eligible, saying why. ``JobResult.path`` says which was taken.
    ``max_worker_memory`` (MiB) kills a worker whose RSS grows past it; its chunk, like one
    whose worker the OOM killer took, is split in two and retried.
    ``executor="dask"`` runs each chunk as a task on a Dask distributed cluster: ``cluster`` is
    the scheduler's address (``tcp://host:8786``), or None for a LocalCluster of ``workers``
    processes (needs the ``dask`` extra).
    ``swap`` (``mode="replace"`` into an existing table) is how the old rows go in the swap:
    ``"truncate"`` (fast; a REPEATABLE READ reader whose snapshot predates the swap then sees
    an empty table) or ``"delete"`` (slower; such a reader keeps seeing the old rows).
    ``bad_rows`` (file sources: CSV, JSON lines): ``"skip"`` skips a row that does not parse
    (the wrong number of fields, a value not of its column's type, broken JSON) instead of
    failing its chunk, counted in ``JobResult.rows_rejected``; ``"file"`` also writes each
    with the reason to ``<rejects>/<job_id>/chunk-<n>.csv`` (``am.files(..., rejects=...)``;
    default ``./arrowmapper-rejects``). A database source refuses it.

    ``merge_key`` (``mode="merge"``): the column(s) rows are upserted on, ``"a,b"`` or a
    sequence; by default ``key`` where the existing table has a unique index on it, else the
    existing table's primary key (composite allowed), else ``key`` (a new table gets it as its
    primary key). ``key`` then only splits the work.
    ``metrics_file`` writes the job's Prometheus metrics (rows, Arrow bytes, seconds per
    phase, chunk durations, retries, chunks by state) to that textfile, atomically, every 2 s
    and at the end; ``metrics_port`` serves them over HTTP while the job runs. With
    ``opentelemetry-api`` installed and an SDK configured, the job and each chunk attempt are
    spans (see docs/operations.md, "Metrics, tracing and logs").

    ``incremental=True`` (file sources) loads only the files no earlier job loaded into the
    table: run it again with a new ``job_id`` as files arrive; a loaded file that has changed
    since is refused, naming it.

    ``name`` names a recurring job: each run gets a job id of the name and the UTC time
    (``orders-sync-20261202T013000Z``) unless ``job_id`` is given. With ``cursor`` (a column of
    the query: integer, numeric, date, timestamp or text), each run loads only the rows whose
    cursor is above the high-water mark the name's last successful run stored in the target
    (``arrowmapper_marks``) and at most the source's maximum when it starts; the mark moves in
    the transaction of the run's last chunk, so a failed run moves nothing (resume it with its
    ``job_id`` and ``resume=True``). Rows with a NULL cursor are never loaded. A second run
    while one is unfinished, or a run whose query, table or cursor changed, is refused;
    ``reset=True`` starts the name over with a full load; ``cursor_lag`` (an amount, or seconds
    for a timestamp cursor) keeps the new mark that far below the source's highest cursor, so
    rows of transactions that commit late are loaded by the next run. ``mode="merge"`` with an
    ``updated_at`` cursor picks up updated rows too.
    ``allow_duplicate``: an append whose source, query, transform and columns are those of a
    finished append job into the same table would load the same rows again: ``False`` refuses
    it (a ConfigError naming the earlier job, before any row moves), ``None`` runs it with a
    note, ``True`` runs it silently.

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
    refuse_unknown(unknown, "map_query", [*api_options(), "progress"])
    c = JobConfig.build({k: v for k, v in locals().items() if k in OPTIONS})  # each option once
    # cheap checks first (bad arguments must not spawn anything), then start the local
    # workers: their imports overlap the planning and preflight that prepare_job() does
    endpoints = check_endpoints(c)
    begun = time.perf_counter()
    pool = _early_pool(c)
    started = time.perf_counter() - begun  # spawning; their imports overlap the planning
    try:
        prepared = prepare_job(c, endpoints)
    except BaseException:
        if pool is not None:
            pool.discard()
        raise
    spec = prepared.spec
    spec = replace(spec, timings={**spec.timings, "worker_start_s": started})
    result = run_prepared(spec, progress, pool)
    if not result.success:
        raise JobFailed(
            f"job {result.job_id}: {len(result.failed_chunks)} of {result.chunks} chunks failed; "
            f"first error: {result.errors[0] if result.errors else 'unknown'}. Fix the cause and "
            f"rerun with job_id={result.job_id!r}, resume=True to load only what is missing",
            result,
        )
    return result


#: map_query's options map_tables does not take: each table sets them itself
_PER_TABLE = ("source", "query", "target", "table", "schema", "job_id")


@boundary("map_tables")
def map_tables(
    source: Any,
    target: str,
    tables: str | Sequence[str],
    *,
    schema: str | None = None,
    include_views: bool = False,
    sequences: bool = False,
    constraints: bool = False,
    job_id: str | None = None,
    progress: ProgressArg = None,
    **options: Any,
) -> TablesResult:
    """Copy several tables of ``source`` into tables of the same names on ``target`` (in
    ``schema``), their chunks sharing one pool of workers.

    >>> r = am.map_tables("postgresql://u@h/src", "postgresql://u@h/dst", "public.*",
    ...                   schema="public", workers=4, job_id="nightly-1")  # doctest: +SKIP
    >>> print(r.summary())                                                # doctest: +SKIP

    ``tables``: names or shell-style patterns (a list, or one string split at commas):
    ``"public.*"``, ``"sales.order_*"``, ``'"Order Items"'``; a name without a schema is in
    the schema an unqualified name resolves to. Names match exactly as the server spells them.
    Base tables and partitioned parents are copied, not their partitions, views or sequences;
    ``include_views=True`` copies a view's (or materialized view's) rows into a table. A
    pattern that matches nothing is a ConfigError naming it.

    Every other keyword is a :func:`map_query` option (mode, workers, chunk_size, transform,
    verify, ...) and applies to each table. Each table is its own job, ``<job_id>:<table>``,
    with its own ledger rows (``am.verify`` checks one); every table is planned and
    preflighted before any row is written (a refused table refuses the run, naming it), then
    all their chunks run through one pool, the biggest tables' first. A table whose chunks
    fail does not stop or undo the others: the result lists it in ``failed``, and rerunning
    with the same ``job_id`` and ``resume=True`` loads only what is missing.

    ``constraints=True`` (PostgreSQL to PostgreSQL): once every table is loaded, the source's
    primary keys, unique constraints, indexes and then foreign keys (between copied tables)
    are created on the target tables; those already there are skipped. ``sequences=True``
    (PostgreSQL to PostgreSQL) sets each sequence of the copied schemas on the target (created
    when missing) to the source's value.

    Returns a :class:`TablesResult` (one JobResult per table, totals); a table whose chunks
    failed is reported there, not raised. It raises before any row is written (a bad option,
    a pattern matching nothing, a refused table), or when a loaded table cannot be finished
    (a replace job's swap refused; its chunks are committed, and resuming finishes it).
    """
    refuse_unknown(options, "map_tables", [o for o in api_options() if o not in _PER_TABLE])
    for name, flag in (
        ("include_views", include_views),
        ("sequences", sequences),
        ("constraints", constraints),
    ):
        if not isinstance(flag, bool):
            raise ConfigError(f"{name} must be True or False, got {flag!r}")
    c = JobConfig.build({**options, "source": source, "target": target, "job_id": job_id})
    callback = progress_callback(progress)
    src, dst = source_endpoint(source), parse_uri(target, "target")
    if not src.rules.sql:
        raise ConfigError(
            "map_tables copies the tables of a database; files load with map_query "
            "(one target table per call)"
        )
    rules = target_rules(dst)
    if schema is not None:
        validate_identifier(schema, "schema", dst.dialect)
        if not rules.schemas and schema != "main":
            raise ConfigError("a SQLite target has no schemas: leave schema=None")
    if (sequences or constraints) and not (pg_objects(src) and rules.pg_objects):
        what = "constraints=True" if constraints else "sequences=True"
        raise ConfigError(
            f"{what} recreates PostgreSQL objects: it needs a PostgreSQL source and target "
            f"(here {src.dialect} to {dst.dialect}); drop it"
        )
    check_reachable(src, "source")
    check_reachable(dst, "target")
    chosen = resolve_tables(src, tables, include_views)
    given = {**options, "source": source, "target": target}
    run = _plan_table_jobs(src, dst, chosen, schema, given, c.job_id)
    started = time.monotonic()
    pool = _early_pool(c)
    try:
        specs = prepare_tables(run)
    except BaseException:
        if pool is not None:
            pool.discard()
        raise
    results = run_tables(specs, callback, pool)
    by_table = {t.source.display: r for t, r in zip(run.tables, results, strict=True)}
    created: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    seqs: tuple[str, ...] = ()
    notes: list[str] = []
    loaded = all(r.success for r in results)
    if (constraints or sequences) and not loaded:
        notes.append(
            "constraints and sequences wait for every table to load: resume the run to "
            "finish the tables and create them"
        )
    elif constraints or sequences:
        pairs = [
            (t.source, spec.final_table or spec.table)
            for t, spec in zip(run.tables, specs, strict=True)
        ]
        if constraints:
            created, skipped = copy_constraints(src, dst, pairs)
        if sequences:
            seqs = copy_sequences(src, dst, pairs, schema)
    return TablesResult(
        run.job_id,
        by_table,
        time.monotonic() - started,
        max((r.workers for r in results), default=0),
        created,
        skipped,
        seqs,
        tuple(notes),
    )


def plan_tables(
    source: Any,
    tables: str | Sequence[str],
    *,
    include_views: bool = False,
    strategy: str = "auto",
    key: str | None = None,
    chunk_size: int | None = None,
    workers: int | None = None,
) -> dict[str, Plan]:
    """The plan of each table :func:`map_tables` would copy (``schema.name`` -> Plan), without
    moving data."""
    src = source_endpoint(source)
    if not src.rules.sql:
        raise ConfigError("plan_tables lists the tables of a database; plan files with plan_query")
    check_reachable(src, "source")
    return {
        t.display: plan_query(
            source,
            t.query(src.dialect),
            strategy=strategy,
            key=key,
            chunk_size=chunk_size,
            workers=workers,
        )
        for t in resolve_tables(src, tables, include_views)
    }


def _early_pool(c: JobConfig) -> LocalPool | None:
    """A local pool started before the job is prepared, so that the workers' start (an
    interpreter and its imports each: ~0.5 CPU-s) overlaps the planning; None for Dask.
    Called after the checks that need no server, so bad arguments spawn nothing.

    Only as many workers start early as there are cores to spare beside the planning (this
    process and the server backend answering it): on a machine with fewer, early workers
    would only slow the planning down, and a small job that then runs in this process
    (:func:`~arrowmapper.run.prepare.runs_inline`) would have paid for them for nothing
    (a 10k-row job on 2 cores: 0.6 s with them, 0.4 s without). The rest start once the
    plan says they are needed."""
    if c.executor != "local":
        return None
    early = min(c.workers, usable_cpus() - 2)
    if early <= 0:
        return None
    pool = LocalPool(c.workers)
    pool.start(early)
    return pool


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
    source: Any,
    query: str | None,
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
    src = source_endpoint(source)
    query = check_source_query(query, src)
    check_reachable(src, "source")
    with open_source(src) as reader:
        layout = reader.describe(query)
        out_schema, _, read_schema = output_schema(
            reader.probe(query, layout), normalize(transform)
        )

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
    ref = table_ref(dst, schema, table)
    tgt = open_target(dst, ref)
    try:
        if not tgt.table_exists():
            created = dict(created_columns(tgt, out_schema, read_schema, layout, []))
            out = []
            for f in out_schema:
                st, notes = read_note(f.name)
                ct = created.get(f.name) or ""
                out.append(
                    ColumnMapping(f.name, str(f.type), ct, "; ".join([*notes, "created"]), st)
                )
            return out
        types = tgt.column_types()
        write = write_layout(tgt, out_schema, ())
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


# verify lives in arrowmapper.verify; re-exported here
from .verify import ChunkCheck as ChunkCheck  # noqa: E402
from .verify import VerifyReport as VerifyReport  # noqa: E402
from .verify import verify as _verify  # noqa: E402

verify = boundary("verify")(_verify)
