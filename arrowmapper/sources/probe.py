"""The planner's questions, asked of a SQL source: each one query (cached where reused)."""

from __future__ import annotations

import decimal
from typing import Any

import pyarrow as pa

from ..config import Endpoint
from ..errors import PlanError, SourceError, error_info
from ..plan import Partition, TableShape, Tiebreak
from ..sql import bare_table, quote_ident, string_literal
from .dialects import source_dialect
from .reader import check_unique_names, read_arrow, rows_of
from .render import source_sql


def _decimal(key: str, text: Any) -> decimal.Decimal | None:
    """A decimal bound read as text, exactly; NaN or infinity refused naming the key."""
    if text is None:
        return None
    value = decimal.Decimal(str(text))
    if not value.is_finite():
        raise PlanError(
            f"cannot split the query into chunks on key {key!r}: it holds {text}, which cannot "
            "bound chunks: filter those rows out in the query, pick another key, or use "
            "strategy='offset'"
        )
    return value


#: a plain table the catalog estimates at this many rows or more is planned from a sample
#: (its boundaries only decide where chunks are cut; the ranges cover every row whatever
#: they are); a smaller one exactly
SAMPLE_FROM_ROWS = 1_000_000
#: about how many rows a sample reads
SAMPLE_ROWS = 100_000
#: rows of a quantile sample behind each chunk it bounds
QUANTILE_ROWS = 1_000
#: the statistics are fresh while fewer than this share of the rows changed since ANALYZE
FRESH_CHANGED = 0.2


class SourceProbe:
    """The facts the planner asks of a source, each one query (cached where reused).

    A large plain table with fresh statistics is planned from the catalog's row estimate and
    a repeatable block sample (the key's bounds, quantiles and frequent values) instead of a
    full scan and sort (:data:`SAMPLE_FROM_ROWS`)."""

    def __init__(self, endpoint: Endpoint, query: str, layout: Any = None) -> None:
        self.endpoint = endpoint
        self.query = query
        self.layout = layout  # a SourceLayout: text-read columns are cast in schema()/sample()
        self.dialect: str = endpoint.dialect
        self._from = source_sql(query, self.dialect)
        self._schema: pa.Schema | None = None
        self._stats: dict[str, tuple[int, int, Any, Any]] = {}
        self._count: int | None = None
        self._shape: tuple[TableShape | None] | None = None
        self._sampled: tuple[tuple[int, str] | None] | None = None
        self._sample_rows: int | None = None  # rows the sample held (key_stats counts them)

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
            row = rows_of(self.endpoint, f"SELECT COUNT(*) AS n FROM {self._from}")[0]
            self._count = int(row["n"])
        return self._count

    def declared_type(self, key: str) -> str | None:
        """The source's own type of column ``key`` (``numeric(12,2)``), None when unknown."""
        col = self.layout.column(key) if self.layout is not None else None
        return col.sql_type if col is not None else None

    def _exact_decimal(self, key: str) -> bool:
        """Whether ``key`` is an exact decimal: its bounds are read as text (a decimal the
        reader carries may be rounded to its scale, or overflow 38 digits)."""
        if self.columns().get(key, "").startswith("decimal"):
            return True
        declared = (self.declared_type(key) or "").lower()
        return declared.startswith(("numeric", "decimal"))

    def sampled(self) -> tuple[int, str] | None:
        """For a large plain table with fresh statistics: its estimated rows and the FROM item
        that reads a sample of it; None where the planner reads the rows themselves."""
        if self._sampled is None:
            self._sampled = (self._read_sampled(),)
        return self._sampled[0]

    def _read_sampled(self) -> tuple[int, str] | None:
        d = source_dialect(self.dialect)
        if d.table_estimate is None or d.sample is None or self.layout_casts():
            return None
        if bare_table(self.query, self.dialect) is None:
            return None
        rows = rows_of(self.endpoint, d.table_estimate(self._from))
        if not rows:
            return None
        est, changed = int(rows[0]["est"]), int(rows[0]["changed"])
        if est < SAMPLE_FROM_ROWS or changed > FRESH_CHANGED * est:
            return None
        return est, self._sample_of(est, SAMPLE_ROWS)

    def _sample_of(self, est: int, rows: int, by_row: bool = False) -> str:
        """The FROM item reading about ``rows`` of the table's ``est`` rows (``by_row``: a
        sample of rows, else of blocks)."""
        d = source_dialect(self.dialect)
        sample = d.row_sample if by_row and d.row_sample is not None else d.sample
        assert sample is not None
        pct = f"{min(100.0, 100.0 * rows / max(1, est)):.6f}"
        return f"{self._from} {sample.format(pct=pct)}"

    def _sample_for(self, n: int) -> str:
        """The FROM item quantiles into ``n`` parts read: a sample of rows, enough behind each
        part that its boundaries land near the true ones (a block sample of a table stored in
        key order has a block's granularity: its chunks came out 0.5-2x), or the table."""
        found = self.sampled()
        if found is None:
            return self._from
        return self._sample_of(found[0], max(SAMPLE_ROWS, QUANTILE_ROWS * n), by_row=True)

    def layout_casts(self) -> bool:
        """Whether some column is read as text and cast (then the rows are read as they are)."""
        if self.layout is None:
            return False
        return any(c.decode is not None for c in self.layout.columns)

    def key_stats(self, key: str) -> tuple[int, int, Any, Any]:
        if key not in self._stats and self.sampled() is not None:
            self._stats[key] = self._sampled_stats(key)
        if key not in self._stats:
            k = self.q(key)
            exact = self._exact_decimal(key)
            text = source_dialect(self.dialect).text
            lo, hi = (text(f"MIN({k})"), text(f"MAX({k})")) if exact else (f"MIN({k})", f"MAX({k})")
            row = self._keyrows_of(
                key,
                f"SELECT COUNT(*) AS n, COUNT({k}) AS nn, {lo} AS lo, {hi} AS hi "
                f"FROM {self._from}",
            )[0]
            if exact:
                row = {**row, "lo": _decimal(key, row["lo"]), "hi": _decimal(key, row["hi"])}
            self._stats[key] = (int(row["n"]), int(row["nn"]), row["lo"], row["hi"])
            self._count = int(row["n"])
        return self._stats[key]

    def range_counts(self, predicates: list[str]) -> list[int]:
        """Rows of the query matching each predicate (the chunks' own WHERE clauses), in one
        scan: what each chunk of a key plan will read, as of now."""
        cols = ", ".join(
            f"SUM(CASE WHEN {p} THEN 1 ELSE 0 END) AS c{i}" for i, p in enumerate(predicates)
        )
        row = rows_of(self.endpoint, f"SELECT {cols} FROM {self._from}")[0]
        return [int(row[f"c{i}"] or 0) for i in range(len(predicates))]

    def _sampled_stats(self, key: str) -> tuple[int, int, Any, Any]:
        """``key_stats`` from a sample, scaled to the catalog's estimate: the bounds only
        decide where the (open-ended) ranges are cut."""
        found = self.sampled()
        assert found is not None
        est, sample = found
        k = self.q(key)
        exact = self._exact_decimal(key)
        text = source_dialect(self.dialect).text
        lo, hi = (text(f"MIN({k})"), text(f"MAX({k})")) if exact else (f"MIN({k})", f"MAX({k})")
        row = self._keyrows_of(
            key,
            f"SELECT COUNT(*) AS n, COUNT({k}) AS nn, {lo} AS lo, {hi} AS hi FROM {sample}",
        )[0]
        if exact:
            row = {**row, "lo": _decimal(key, row["lo"]), "hi": _decimal(key, row["hi"])}
        n, nn = int(row["n"]), int(row["nn"])
        self._sample_rows = n
        nonnull = round(est * nn / n) if n else est
        return est, nonnull, row["lo"], row["hi"]

    def quantiles(self, key: str, n: int) -> list[Any]:
        """Inner boundaries at the key's n-quantiles (of a sample of a large table, see
        :meth:`sampled`). PostgreSQL: ``percentile_disc`` (one sort, no window: 0.18 s against
        NTILE's 0.63 s on 1M rows); elsewhere NTILE, which is portable and works on any
        orderable type. Either way the server orders the boundaries."""
        k = self.q(key)
        src = self._sample_for(n)
        if source_dialect(self.dialect).quantiles == "percentile_disc" and n > 1:
            fractions = ", ".join(repr(i / n) for i in range(1, n))
            sql = (
                f"SELECT unnest(a) AS b FROM (SELECT percentile_disc(ARRAY[{fractions}]::float8[]) "
                f"WITHIN GROUP (ORDER BY {k}) AS a FROM {src} WHERE {k} IS NOT NULL) "
                "AS _am_q"
            )
            return [r["b"] for r in self._keyrows_of(key, sql)]
        sql = (
            f"SELECT MIN(k) AS b FROM (SELECT {k} AS k, NTILE({int(n)}) OVER (ORDER BY {k}) AS t "
            f"FROM {src} WHERE {k} IS NOT NULL) AS _am_q GROUP BY t ORDER BY t"
        )
        values = [r["b"] for r in self._keyrows_of(key, sql)]
        return values[1:]

    def _value(self, value: Any) -> str:
        """A key value as a literal in a probe's query. SQLite text with a backslash goes as
        hex: connectorx re-parses SQLite queries and reads ``'a\\''b'`` as an escape, which
        SQLite then refuses (a hot-key probe of such keys failed)."""
        from .render import render_literal

        if isinstance(value, str) and "\\" in value and source_dialect(self.dialect).nul_text_as_hex:
            return f"CAST(X'{value.encode().hex()}' AS TEXT)"
        return render_literal(value, self.dialect)

    def frequent(
        self, key: str, min_rows: int, among: list[Any] | None = None
    ) -> list[tuple[Any, int]]:
        """The key values more than ``min_rows`` rows hold (only ``among`` these where
        given), with their counts, in the server's order (one grouping pass over the key;
        over a sample of a large table, the counts scaled to its estimate)."""

        k = self.q(key)
        only = ""
        if among is not None:
            if not among:
                return []
            listed = ", ".join(self._value(a) for a in among)
            only = f" AND {k} IN ({listed})"
        exact = self._exact_decimal(key)  # read as text: the reader may round a decimal
        v = source_dialect(self.dialect).text(f"MIN({k})") if exact else k
        found = self.sampled()
        src, scale = self._from, 1.0
        if found is not None:
            if self._sample_rows is None:
                counted = rows_of(self.endpoint, f"SELECT COUNT(*) AS n FROM {found[1]}")
                self._sample_rows = int(counted[0]["n"])
            src, scale = found[1], found[0] / max(1, self._sample_rows)
        sql = (
            f"SELECT {v} AS v, COUNT(*) AS n FROM {src} WHERE {k} IS NOT NULL{only} "
            f"GROUP BY {k} HAVING COUNT(*) > {int(min_rows / scale)} ORDER BY {k}"
        )
        rows = self._keyrows_of(key, sql)
        return [
            (_decimal(key, r["v"]) if exact else r["v"], round(int(r["n"]) * scale))
            for r in rows
            if round(int(r["n"]) * scale) > min_rows
        ]

    def tiebreak_quantiles(self, key: str, value: Any, by: Tiebreak, n: int) -> list[Any]:
        """Inner boundaries of ``by`` at its n-quantiles among the rows whose key is
        ``value`` (a column's values, or heap blocks / rowids), in the server's order."""

        if by.column is not None:
            expr = self.q(by.column)
        else:
            address = dict(source_dialect(self.dialect).locators).get(by.locator or "")
            if address is None:
                raise PlanError(f"this source has no row address {by.locator!r}")
            expr = address
        where = f"{self.q(key)} = {self._value(value)}"
        src = self._sample_for(n)
        disc = source_dialect(self.dialect).quantiles == "percentile_disc" and n > 1
        if disc:
            fractions = ", ".join(repr(i / n) for i in range(1, n))
            sql = (
                f"SELECT unnest(a) AS b FROM (SELECT percentile_disc(ARRAY[{fractions}]"
                f"::float8[]) WITHIN GROUP (ORDER BY {expr}) AS a FROM {src} "
                f"WHERE {where}) AS _am_q"
            )
        else:
            sql = (
                f"SELECT MIN(t) AS b FROM (SELECT {expr} AS t, NTILE({int(n)}) OVER "
                f"(ORDER BY {expr}) AS g FROM {src} WHERE {where}) AS _am_q "
                "GROUP BY g ORDER BY g"
            )
        try:
            found = [r["b"] for r in rows_of(self.endpoint, sql)]
        except SourceError as exc:  # no such row address (a table WITHOUT ROWID, ...)
            raise PlanError(f"the server refused it: {exc}") from exc
        return found if disc else found[1:]

    def _keyrows_of(self, key: str, sql: str) -> list[dict[str, Any]]:
        """``rows_of`` for a query over the key's values: a value the reader cannot carry (a
        numeric NaN or infinity has no decimal) is a :class:`PlanError` naming the key."""
        try:
            return rows_of(self.endpoint, sql)
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
        rows = rows_of(
            self.endpoint,
            f"SELECT {cols}, COUNT(*) AS _am_n FROM {self._from} WHERE {where} "
            f"GROUP BY {cols} HAVING COUNT(*) > 1 {limit}",
        )
        return rows[0] if rows else None

    def null_keys(self, keys: tuple[str, ...]) -> int:
        """Rows of the query with NULL in any of ``keys``: rows a merge on them cannot match
        (an upsert never finds a NULL key), so every run would insert them again."""
        where = " OR ".join(f"{self.q(k)} IS NULL" for k in keys)
        rows = rows_of(self.endpoint, f"SELECT COUNT(*) AS n FROM {self._from} WHERE {where}")
        return int(rows[0]["n"] or 0) if rows else 0

    def is_unique(self, key: str) -> bool:
        k = self.q(key)
        row = rows_of(
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
        catalog = source_dialect(self.dialect).nullable
        if catalog is None:
            return None
        schema, table = bt
        rows = rows_of(self.endpoint, catalog(schema, table, self._from, key))
        return bool(rows[0]["nullable"]) if rows else None

    def shape(self) -> TableShape | None:
        """What the catalog says of a plain table name (its kind, its single-column unique
        NOT NULL keys, a partitioned table's leaves); None for a query, or where the source
        has no such catalog or the name is not found there."""
        if self._shape is None:
            self._shape = (self._read_shape(),)
        return self._shape[0]

    def _read_shape(self) -> TableShape | None:
        bt = bare_table(self.query, self.dialect)
        d = source_dialect(self.dialect)
        if bt is None or d.relation_kind is None:
            return None
        schema, table = bt
        found = rows_of(self.endpoint, d.relation_kind(schema, table, self._from))
        if not found:
            return None
        kind = str(found[0]["kind"])
        keys: tuple[str, ...] = ()
        if d.unique_columns is not None:
            rows = rows_of(self.endpoint, d.unique_columns(schema, table, self._from))
            keys = tuple(dict.fromkeys(str(r["col"]) for r in rows))
        parts: tuple[Partition, ...] = ()
        if kind == "partitioned" and d.partitions is not None:
            rows = rows_of(self.endpoint, d.partitions(self._from))
            if d.partition_rows is not None and any(int(r["est"]) < 0 for r in rows):
                # never analyzed: each leaf's rows counted instead (one scan)
                counted = rows_of(self.endpoint, d.partition_rows(self._from))
                counts = {str(r["part"]): int(r["n"]) for r in counted}
                rows = [{**r, "est": counts.get(str(r["part"]), 0)} for r in rows]
            parts = tuple(
                Partition(str(r["part"]), bool(r["heap"]), int(r["blocks"]), int(r["est"]))
                for r in rows
            )
        return TableShape(kind, keys, parts)

    # -- physical ranges
    def heap_blocks(self) -> tuple[int, int]:
        name = string_literal(self._from, self.dialect)
        rows = rows_of(
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
            row = rows_of(
                self.endpoint,
                f"SELECT COUNT(*) AS n, MIN(rowid) AS lo, MAX(rowid) AS hi FROM {self._from}",
            )[0]
        except SourceError as exc:
            raise PlanError(
                f"strategy 'rowid' needs a SQLite rowid table ({exc}); use key= with 'quantile'"
            ) from exc
        return int(row["n"]), int(row["lo"] or 0), int(row["hi"] or 0)
