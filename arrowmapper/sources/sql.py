"""Reading the source with connectorx: the planner's probes and one chunk as an Arrow stream.

Every connectorx call goes through :func:`read_arrow`, which translates driver errors (including
``PanicException``, a ``BaseException``) into :class:`SourceError` with the password removed.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ..config import Endpoint
from ..errors import PASS_THROUGH, ConfigError, PlanError, SourceError, error_info, translate
from ..plan import source_sql
from ..sql import bare_table, pg_source_session, quote_ident, string_literal


def timeout_statement(dialect: str, seconds: float | None) -> str | None:
    """The session setting that bounds one query's run time on this kind of source."""
    if not seconds:
        return None
    ms = max(1, int(seconds * 1000))
    return {
        "postgresql": f"SET statement_timeout = {ms}",
        "mysql": f"SET SESSION max_execution_time = {ms}",
    }.get(dialect)


def read_arrow(
    endpoint: Endpoint, sql: str, batch_size: int = 65_536, statement_timeout: float | None = None
) -> pa.RecordBatchReader:
    """Run ``sql`` on the source and stream the result as Arrow record batches.

    A failure -- when the query starts, or later while rows stream (connectorx then panics, and
    its ``PanicException`` is a ``BaseException``) -- is raised as a :class:`SourceError` with
    the server's message and the kind and transience of the driver's error.
    """
    import connectorx as cx

    kwargs: dict[str, Any] = {}
    pre = [pg_source_session()] if endpoint.dialect == "postgresql" else []
    timeout = timeout_statement(endpoint.dialect, statement_timeout)
    if timeout:
        pre.append(timeout)
    if pre:
        kwargs["pre_execution_query"] = pre
    try:
        reader = cx.read_sql(
            endpoint.uri, sql, return_type="arrow_stream", batch_size=batch_size, **kwargs
        )
    except PASS_THROUGH:
        raise
    except BaseException as exc:  # connectorx panics are BaseExceptions
        raise translate(
            exc, SourceError, f"the source {endpoint.redacted} could not run the query"
        ) from exc
    return pa.RecordBatchReader.from_batches(reader.schema, _translated(reader, endpoint))


def _translated(reader: pa.RecordBatchReader, endpoint: Endpoint) -> Iterator[pa.RecordBatch]:
    """``reader``'s batches; a failure while they stream becomes a :class:`SourceError`."""
    batches = iter(reader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except PASS_THROUGH:
            raise
        except BaseException as exc:  # a panic in the middle of the stream
            raise translate(
                exc,
                SourceError,
                f"the source {endpoint.redacted} failed while sending rows"
                + _failed_column(exc, reader.schema),
            ) from exc
        yield batch


# connectorx names the column of a value it cannot convert only by its index
_CONVERSION = re.compile(r"FromSqlConversionFailure\(\s*(\d+)")


def _failed_column(exc: BaseException, schema: pa.Schema) -> str:
    """`` (column 'x', a value of it could not be converted)`` when the driver's error names a
    column by its index, else nothing."""
    found = _CONVERSION.search(str(exc))
    if found is None or int(found.group(1)) >= len(schema):
        return ""
    name = schema.names[int(found.group(1))]
    return (
        f" (column {name!r}: a value the reader cannot convert to {schema.field(name).type}; "
        "cast the column to text in the query, or fix the value)"
    )


def check_unique_names(schema: pa.Schema) -> None:
    """Refuse a query whose output has two columns of one name (``SELECT id, id``,
    ``SELECT 1, 2``): a table cannot hold them, and which one a chunk wrote would be a guess."""
    seen: set[str] = set()
    for name in schema.names:
        if name in seen:
            alias = f"{name}_2" if name.isidentifier() else "column_2"
            raise ConfigError(
                f"the query returns {schema.names.count(name)} columns named {name!r}; give "
                f"each output column its own name with an alias (e.g. ... AS {alias}) so that "
                "each becomes its own column of the target table"
            )
        seen.add(name)


def _rows(endpoint: Endpoint, sql: str) -> list[dict[str, Any]]:
    table = read_arrow(endpoint, sql).read_all()
    try:
        rows: list[dict[str, Any]] = table.to_pylist()
    except (OverflowError, ValueError) as exc:  # a BC date or year > 9999 has no Python twin
        raise PlanError(
            f"the planner cannot use these key values ({exc}): dates and timestamps outside "
            "the years 1-9999 cannot bound chunks; filter them out, pick another key, or use "
            "strategy='none' (or 'ctid' on a PostgreSQL table)"
        ) from None
    return rows


class SourceProbe:
    """The facts the planner asks of a source, each one query (cached where reused)."""

    def __init__(self, endpoint: Endpoint, query: str, layout: Any = None) -> None:
        self.endpoint = endpoint
        self.query = query
        self.layout = layout  # a SourceLayout: text-read columns are cast in schema()/sample()
        self.dialect: str = endpoint.dialect
        self._from = source_sql(query, self.dialect)
        self._schema: pa.Schema | None = None
        self._stats: dict[str, tuple[int, int, Any, Any]] = {}
        self._count: int | None = None

    def q(self, name: str) -> str:
        return quote_ident(name, self.dialect)

    # -- describe
    def schema(self) -> pa.Schema:
        """The query's Arrow schema (a LIMIT 0 describe: no rows are read)."""
        if self._schema is None:
            schema = read_arrow(
                self.endpoint, self._wrap(f"SELECT * FROM {self._from} LIMIT 0")
            ).schema
            check_unique_names(schema)
            if self.layout is not None:  # a column read as text is planned as what it is
                decoded = {c.name: c.decode for c in self.layout.columns if c.decode is not None}
                schema = pa.schema(
                    [pa.field(f.name, decoded.get(f.name) or f.type) for f in schema]
                )
            self._schema = schema
        return self._schema

    def _wrap(self, sql: str) -> str:
        return self.layout.wrap(sql) if self.layout is not None else sql

    def sample(self, rows: int = 1000) -> pa.Table:
        """The first rows of the query (text-read columns parsed), for the transformed schema."""
        reader = read_arrow(self.endpoint, self._wrap(f"SELECT * FROM {self._from} LIMIT {rows}"))
        check_unique_names(reader.schema)
        if self.layout is None:
            return reader.read_all()
        # a guarded value in the sample is refused here, before the first row is written
        table = pa.Table.from_batches(list(self.layout.stream(reader)), schema=reader.schema)
        batches = [self.layout.decode(b) for b in table.to_batches()]
        if not batches:
            empty = pa.RecordBatch.from_pylist([], schema=table.schema)
            return pa.Table.from_batches([self.layout.decode(empty)])
        return pa.Table.from_batches(batches)

    def columns(self) -> dict[str, str]:
        return {f.name: str(f.type) for f in self.schema()}

    # -- counts and key statistics
    def count(self) -> int:
        if self._count is None:
            row = _rows(self.endpoint, f"SELECT COUNT(*) AS n FROM {self._from}")[0]
            self._count = int(row["n"])
        return self._count

    def key_stats(self, key: str) -> tuple[int, int, Any, Any]:
        if key not in self._stats:
            k = self.q(key)
            row = self._key_rows(
                key,
                f"SELECT COUNT(*) AS n, COUNT({k}) AS nn, MIN({k}) AS lo, MAX({k}) AS hi "
                f"FROM {self._from}",
            )[0]
            self._stats[key] = (int(row["n"]), int(row["nn"]), row["lo"], row["hi"])
            self._count = int(row["n"])
        return self._stats[key]

    def quantiles(self, key: str, n: int) -> list[Any]:
        """Inner boundaries at the key's n-quantiles. PostgreSQL: ``percentile_disc`` (one sort,
        no window: 0.18 s against NTILE's 0.63 s on 1M rows); elsewhere NTILE, which is
        portable and works on any orderable type."""
        k = self.q(key)
        if self.dialect == "postgresql" and n > 1:
            fractions = ", ".join(repr(i / n) for i in range(1, n))
            sql = (
                f"SELECT unnest(a) AS b FROM (SELECT percentile_disc(ARRAY[{fractions}]::float8[]) "
                f"WITHIN GROUP (ORDER BY {k}) AS a FROM {self._from} WHERE {k} IS NOT NULL) "
                "AS _am_q"
            )
            return [r["b"] for r in self._key_rows(key, sql)]
        sql = (
            f"SELECT MIN(k) AS b FROM (SELECT {k} AS k, NTILE({int(n)}) OVER (ORDER BY {k}) AS t "
            f"FROM {self._from} WHERE {k} IS NOT NULL) AS _am_q GROUP BY t ORDER BY t"
        )
        values = [r["b"] for r in self._key_rows(key, sql)]
        return values[1:]

    def _key_rows(self, key: str, sql: str) -> list[dict[str, Any]]:
        """``_rows`` for a query over the key's values: a value the reader cannot carry (a
        numeric NaN or infinity has no decimal) is a :class:`PlanError` naming the key."""
        try:
            return _rows(self.endpoint, sql)
        except SourceError as exc:
            info = error_info(exc)
            if info.kind != "data" or info.sqlstate not in (None, "22000"):
                raise  # the server refused the query itself (22P02, ...): its own words
            detail = error_info(exc.__cause__).message if exc.__cause__ else str(exc)
            raise PlanError(
                f"cannot split the query into chunks on key {key!r}: its bounds cannot be read "
                f"({detail}); a key holding NaN or infinity cannot bound chunks: filter those "
                "rows out in the query, pick another key, or use strategy='offset'"
            ) from exc

    def duplicated(self, keys: tuple[str, ...]) -> dict[str, Any] | None:
        """One value of ``keys`` (all non-NULL) that more than one row of the query holds, or
        None: what a merge would apply twice, the last chunk to commit winning."""
        cols = ", ".join(self.q(k) for k in keys)
        where = " AND ".join(f"{self.q(k)} IS NOT NULL" for k in keys)
        limit = "LIMIT 1"
        rows = _rows(
            self.endpoint,
            f"SELECT {cols}, COUNT(*) AS _am_n FROM {self._from} WHERE {where} "
            f"GROUP BY {cols} HAVING COUNT(*) > 1 {limit}",
        )
        return rows[0] if rows else None

    def is_unique(self, key: str) -> bool:
        k = self.q(key)
        row = _rows(
            self.endpoint,
            f"SELECT COUNT(*) AS n, COUNT({k}) AS nn, COUNT(DISTINCT {k}) AS d FROM {self._from}",
        )[0]
        self._count = int(row["n"])
        return int(row["d"]) == int(row["nn"]) and int(row["n"]) - int(row["nn"]) <= 1

    def declared_nullable(self, key: str) -> bool | None:
        """Whether a plain table declares the key nullable; None for a query."""
        bt = bare_table(self.query, self.dialect)
        if bt is None:
            return None
        schema, table = bt
        lit = string_literal(key, self.dialect)
        if self.dialect == "postgresql":
            rows = _rows(
                self.endpoint,
                f"SELECT (NOT attnotnull)::int AS nullable FROM pg_attribute "
                f"WHERE attrelid = to_regclass({string_literal(self._from, 'postgresql')}) "
                f"AND attname = {lit}",
            )
        elif self.dialect == "sqlite":
            where = string_literal(table, "sqlite")
            if schema:
                where += ", " + string_literal(schema, "sqlite")
            rows = _rows(
                self.endpoint,
                f'SELECT 1 - "notnull" AS nullable FROM pragma_table_info({where}) '
                f"WHERE name = {lit}",
            )
        else:
            return None
        return bool(rows[0]["nullable"]) if rows else None

    # -- physical ranges
    def heap_blocks(self) -> tuple[int, int]:
        name = string_literal(self._from, "postgresql")
        rows = _rows(
            self.endpoint,
            "SELECT (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint AS blocks, "
            f"c.reltuples::bigint AS est, c.relkind::text AS kind FROM pg_class c "
            f"WHERE c.oid = to_regclass({name})",
        )
        if not rows:
            raise PlanError(f"strategy 'ctid' needs a table; {self.query!r} is not one")
        if rows[0]["kind"] not in ("r", "m"):
            raise PlanError(
                f"strategy 'ctid' needs a plain table or materialized view; {self.query!r} is "
                f"relkind {rows[0]['kind']!r} (view or partitioned table): use key= with "
                "strategy='quantile'"
            )
        blocks, est = int(rows[0]["blocks"]), int(rows[0]["est"])
        if est <= 0:
            est = self.count()
        return blocks, est

    def rowid_range(self) -> tuple[int, int, int]:
        try:
            row = _rows(
                self.endpoint,
                f"SELECT COUNT(*) AS n, MIN(rowid) AS lo, MAX(rowid) AS hi FROM {self._from}",
            )[0]
        except SourceError as exc:
            raise PlanError(
                f"strategy 'rowid' needs a SQLite rowid table ({exc}); use key= with 'quantile'"
            ) from exc
        return int(row["n"]), int(row["lo"] or 0), int(row["hi"] or 0)


# --------------------------------------------------------------------------- snapshots
# connectorx runs `pre_execution_query` outside any transaction block, so it cannot join an
# exported snapshot. The ADBC PostgreSQL driver can: BEGIN REPEATABLE READ, SET TRANSACTION
# SNAPSHOT, then the chunk query streamed with fetch_record_batch(), then COMMIT.

SNAPSHOT_DECIMAL = pa.decimal128(38, 18)


def export_snapshot(endpoint: Endpoint) -> tuple[Any, str]:
    """Open a REPEATABLE READ transaction on the source and export its snapshot.

    Returns the connection (keep it open for as long as chunks read from the snapshot) and the
    snapshot id.
    """
    from ..adbc import connect_postgresql

    if endpoint.dialect != "postgresql":
        raise SourceError(f"snapshot=True needs a PostgreSQL source, not {endpoint.dialect}")
    try:
        conn = connect_postgresql(endpoint.uri, autocommit=True)
        cur = conn.cursor()
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        cur.execute("SELECT pg_export_snapshot()")
        snapshot = str(cur.fetchall()[0][0])
        cur.close()
    except Exception as exc:
        raise translate(
            exc, SourceError, f"cannot export a snapshot from {endpoint.redacted}"
        ) from exc
    return conn, snapshot


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """ADBC's extension columns as plain Arrow: numeric as a decimal, others as their storage."""
    arrays, fields = [], []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if isinstance(column.type, pa.BaseExtensionType):
            storage = column.storage
            name = getattr(column.type, "type_name", "")
            if name == "numeric":
                storage = storage.cast(SNAPSHOT_DECIMAL)  # safe: refuses to round
            column = storage
        arrays.append(column)
        fields.append(pa.field(field.name, column.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


class SnapshotReader:
    """Reads queries inside an exported snapshot, through one ADBC connection it keeps."""

    def __init__(self, endpoint: Endpoint) -> None:
        from ..adbc import connect_postgresql

        self.endpoint = endpoint
        self.conn = connect_postgresql(endpoint.uri, autocommit=True)

    def read(self, sql: str, snapshot: str, statement_timeout: float | None = None) -> Any:
        """Yield the query's batches as the snapshot saw the data."""
        cur = self.conn.cursor()
        try:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot.replace(chr(39), '')}'")
            cur.execute(pg_source_session(local=True))
            pre = timeout_statement("postgresql", statement_timeout)
            if pre:
                cur.execute(pre.replace("SET ", "SET LOCAL ", 1))
            cur.execute(sql)
            for batch in cur.fetch_record_batch():
                yield _plain(batch)
            cur.execute("COMMIT")
        except PASS_THROUGH:
            with contextlib.suppress(Exception):
                cur.execute("ROLLBACK")
            raise
        except BaseException as exc:
            with contextlib.suppress(Exception):
                cur.execute("ROLLBACK")
            raise translate(
                exc, SourceError, f"the source {self.endpoint.redacted} failed reading the snapshot"
            ) from exc
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


# --------------------------------------------------------------------------- splitting


def plan_split(endpoint: Endpoint, plan: Any, chunk: Any, first_id: int) -> Any:
    """Two chunks that together hold exactly ``chunk``'s rows, or None when it cannot be split
    (one key value, one row, no key). Probes the source for a boundary inside the chunk."""
    from ..plan import render_literal, split_by, split_offset

    d = endpoint.dialect
    bounds = json.loads(chunk.bounds)
    if plan.strategy in ("key", "quantile") and plan.key:
        q = quote_ident(plan.key, d)
        if chunk.predicate.strip() == f"{q} IS NULL":
            return None
        sql = (
            f"SELECT MIN(k) AS b FROM (SELECT {q} AS k, NTILE(2) OVER (ORDER BY {q}) AS t "
            f"FROM ({chunk.sql}) AS _am_c WHERE {q} IS NOT NULL) AS _am_q GROUP BY t ORDER BY t"
        )
        values = [r["b"] for r in _rows(endpoint, sql)]
        if len(values) < 2 or values[0] == values[1]:
            return None
        return split_by(plan, chunk, q, render_literal(values[1], d), first_id, d)
    if plan.strategy == "rowid":
        row = _rows(
            endpoint,
            f"SELECT MIN(rowid) AS lo, MAX(rowid) AS hi FROM "
            f"{source_sql(plan.query, d)} WHERE {chunk.predicate}",
        )[0]
        if row["lo"] is None or int(row["hi"]) <= int(row["lo"]):
            return None
        mid = (int(row["lo"]) + int(row["hi"]) + 1) // 2
        return split_by(plan, chunk, "rowid", str(mid), first_id, d)
    if plan.strategy == "ctid":
        lo = int(bounds.get("block_lo") or 0)
        hi = bounds.get("block_hi")
        hi = int(hi) if hi is not None else SourceProbe(endpoint, plan.query).heap_blocks()[0]
        if hi - lo < 2:
            return None
        mid = (lo + hi) // 2
        extra = (
            {"block_lo": lo, "block_hi": mid},
            {"block_lo": mid, "block_hi": bounds.get("block_hi")},
        )
        return split_by(plan, chunk, "ctid", f"'({mid},0)'::tid", first_id, d, extra)
    if plan.strategy == "offset":
        return split_offset(plan, chunk, first_id, d)
    return None
