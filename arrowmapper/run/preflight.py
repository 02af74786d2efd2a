"""The checks of preparing a job that read the source and the target: sampling the source
through the transform, planning (both retried when a failure is transient), the columns a new
table gets, how chunks are written into an existing one, and what refuses a table before any
row moves (incompatible or narrowing columns, a merge key without a unique index)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import pyarrow as pa

from ..config import Endpoint, RetryConfig
from ..errors import ArrowMapperError, ConfigError, TargetError, error_info, redact
from ..plan import ChunkRenderer, Plan, build_plan
from ..sources import SourceFacts, SourceLayout, open_source
from ..sql import derived_name
from ..targets import (
    conform,
    declared_columns,
    narrowing,
    sql_type_name,
    storage_schema,
    target_layout,
)
from ..transform import Transformer, TransformSpec

if TYPE_CHECKING:  # named in signatures only
    from ..targets import TableRef, Target, WriteLayout

log = logging.getLogger("arrowmapper")

_T = TypeVar("_T")


def retrying(step: Callable[[], _T], what: str, retry: RetryConfig | None) -> _T:
    """Run a read-only step of preparing a job (sampling, planning), retrying a transient
    failure (a dropped connection, a serialization failure, a cancelled statement) as a chunk
    would be retried."""
    from .retry import backoff_delay

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


def plan_for(
    probe: SourceFacts,
    query: str,
    strategy: str,
    key: str | None,
    chunk_size: int,
    workers: int,
    retry: RetryConfig | None = None,
    render: ChunkRenderer | None = None,
) -> Plan:
    """The chunk plan (transient failures retried, see :func:`_retrying`); its ranges written
    by ``render``, the source's :attr:`~arrowmapper.sources.Source.render` (None: SQL's)."""

    def plan() -> Plan:
        probe.schema()  # bad SQL fails here, before anything else
        return build_plan(probe, query, strategy, key, chunk_size, workers, render=render)

    return retrying(plan, "planning", retry)


def output_schema(probe: SourceFacts, spec: TransformSpec) -> tuple[pa.Schema, pa.Table, pa.Schema]:
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


def write_layout(
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
    pg_cols = load.pg_columns() if load.dialect.describes_columns else None
    try:
        layout = target_layout(d, adbc, pg_cols, out_schema, storage)
    except TargetError as exc:
        raise TargetError(f"incompatible target table {load.ref.display}: {exc}") from None
    return dataclasses.replace(layout, merge_key=merge_key, session=session)


def check_narrowing(
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


def _stored(sample: pa.Table, storage: pa.Schema) -> pa.Table:
    """``sample`` as the target stores it; a value that would change is refused naming its
    column (nanoseconds where the target keeps microseconds, ...)."""
    try:
        return sample.cast(storage)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    for f in storage:
        have = sample.schema.field(f.name).type
        try:
            sample.column(f.name).cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            hint = ""
            if pa.types.is_timestamp(have) and have.unit == "ns":
                hint = (
                    " (the target keeps microseconds; truncate them in the query or transform, "
                    f"e.g. pl.col({f.name!r}).dt.truncate('1us').dt.cast_time_unit('us'))"
                )
            raise ConfigError(
                f"column {f.name!r}: its {have} values cannot be stored as {f.type} without "
                f"changing them{hint}: {exc}"
            ) from None
    return sample.cast(storage)


def check_compatible(
    sample: pa.Table, out_schema: pa.Schema, target_schema: pa.Schema, ref: TableRef
) -> None:
    """Refuse, before any row is written, columns the existing target cannot take."""
    fixed = _stored(sample, storage_schema(out_schema, ref.dialect)) if sample.num_rows else None
    batch = (fixed.to_batches() or [None])[0] if fixed is not None else None
    if batch is None:
        batch = pa.RecordBatch.from_pylist([], schema=storage_schema(out_schema, ref.dialect))
    try:
        conform(batch, target_schema, ref.dialect)
    except TargetError as exc:
        raise TargetError(f"incompatible target table {ref.display}: {exc}") from None


def merge_key(
    tgt: Target,
    exists: bool,
    key: str | None,
    out_schema: pa.Schema,
    ref: TableRef,
    asked: tuple[str, ...] | None = None,
) -> tuple[str, ...]:
    """The columns ``merge`` upserts on: ``asked`` (the ``merge_key`` option); else ``key``
    where the existing table has a unique index on it (as before ``merge_key`` existed); else
    the existing table's primary key (composite allowed; ``key`` then only splits the work);
    else ``key`` for a new table. Checked against the query's output and the target's unique
    indexes (ON CONFLICT needs one) before any row moves."""
    if asked:
        _merge_columns_in(asked, out_schema, "merge_key")
    uniques = tgt.unique_keys() if exists else []
    if asked:
        want: tuple[str, ...] = asked
        if exists and not any(set(u) == set(asked) for u in uniques):
            cols = ", ".join(asked)
            raise TargetError(
                f"mode='merge' upserts on merge_key ({cols}), but {ref.display} has no primary "
                f"key or unique index on ({cols}); add one (CREATE UNIQUE INDEX ON "
                f"{ref.display} ({cols})) or pass a merge_key that has one",
                transient=False,
                kind="config",
            )
    elif exists:
        if key and any(set(u) == {key} for u in uniques):
            want = (key,)
        elif uniques:
            want = uniques[0]
        elif key:
            raise TargetError(
                f"mode='merge' upserts on key {key!r}, but {ref.display} has no primary key "
                f"or unique index on ({key}); add one (CREATE UNIQUE INDEX ON {ref.display} "
                f"({key})), name a key that has one, or pass merge_key=",
                transient=False,
                kind="config",
            )
        else:
            raise ConfigError(
                f"mode='merge' needs key= or a primary key on {ref.display} (or merge_key=); "
                "it has neither"
            )
    elif key:
        want = (key,)
    else:
        raise ConfigError(
            f"mode='merge' into a new table ({ref.display}) needs key= (or merge_key=): it "
            "becomes the primary key"
        )
    _merge_columns_in(want, out_schema, "the merge key")
    return want


def _merge_columns_in(cols: tuple[str, ...], out_schema: pa.Schema, what: str) -> None:
    missing = [k for k in cols if k not in out_schema.names]
    if missing:
        raise ConfigError(
            f"mode='merge': {what} column(s) {', '.join(map(repr, missing))} are not in the "
            f"query's output (columns: {', '.join(out_schema.names)}); name columns the "
            "query returns"
        )


def create_table(
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
    if not tgt.dialect.keeps_source_types:
        tgt.create_table(out_schema)
        if key:
            tgt.add_primary_key(key)
        return
    tgt.create_table_sql(created_columns(tgt, out_schema, read_schema, layout, notes), key)


def created_columns(
    tgt: Target,
    out_schema: pa.Schema,
    read_schema: pa.Schema,
    layout: SourceLayout,
    notes: list[str],
) -> list[tuple[str, str]]:
    """(name, SQL type) of each column a new PostgreSQL (or SQLite) target gets."""
    d = tgt.ref.dialect
    storage = storage_schema(out_schema, d)
    if not tgt.dialect.keeps_source_types:
        return declared_columns(out_schema, d)
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


def stage_name(table: str, job_id: str, dialect: str = "postgresql") -> str:
    """The staging table a ``replace`` job loads (same schema, a name of the job): built by
    :func:`arrowmapper.sql.derived_name` under the server's byte limit, so the server never
    cuts it and it can never equal (or be cut to) a user's table name."""
    return derived_name(table, "stage", dialect, salt=job_id)


def snapshot_for(asked: bool | None, src: Endpoint, plan: Plan, notes: list[str]) -> bool:
    """Whether chunks read from one exported snapshot: as asked, or -- left unsaid -- for
    ctid and offset plans of a PostgreSQL source with more than one chunk. Their chunks are
    physical block ranges and row positions: a row a concurrent UPDATE moves to another block,
    or an INSERT that shifts the pages, would otherwise be read twice or missed."""
    if asked is not None:
        return asked
    if not open_source(src).snapshots or plan.strategy not in ("ctid", "offset"):
        return False
    if len(plan.chunks) < 2:
        return False
    notes.append(
        f"{plan.strategy} chunks read from one snapshot (concurrent writes cannot make them "
        "read a row twice or miss one); pass snapshot=False to read each chunk as it is then"
    )
    return True
