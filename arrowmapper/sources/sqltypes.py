"""Type preflight: the exact path every column takes, decided before any row moves.

connectorx maps some source types lossily (every PostgreSQL numeric becomes decimal128(38,10))
and panics on others (interval, timetz, money); ADBC appends only exact Arrow types and needs
extension types for uuid and json. So before a job starts:

* :func:`describe_source` asks the source for its declared result types (PostgreSQL: a
  temporary view of the query and ``pg_catalog``; MySQL/MariaDB and SQLite: the catalog of a
  plain table). :class:`SourceLayout` then picks, per column, whether connectorx reads it as is
  or as its exact text (``col::text``), and which Arrow type that text is parsed into in the
  worker (``numeric(40,20)`` -> ``decimal256(40,20)``), so the transform still sees a decimal.
* :func:`target_layout` reads the target's columns and decides, per column, the Arrow type a
  batch is cast to (``uuid`` -> ``arrow.uuid``, ``jsonb`` -> ``arrow.json``, ``numeric(p,s)``
  -> ``decimal(p,s)``) or, for types Arrow cannot carry exactly (unconstrained numeric,
  interval, timetz, money, arrays, inet, ...), sends the exact text and lets the server cast it
  (``INSERT ... SELECT col::interval FROM`` a temporary staging table, in the chunk's
  transaction).

A column with no lossless path is refused with an error naming the column, both types and the
fix.

Values, not only types: some values of a type connectorx reads natively have no Arrow twin.
PostgreSQL's ``infinity``/``-infinity`` dates and timestamps (connectorx turns ``infinity`` into
262142-12-31 23:59:59.999999), dates and timestamps past the year 262142 (connectorx panics)
and ``time '24:00'`` (connectorx reads 00:00). For a PostgreSQL source the chunk query guards
such columns (:attr:`SourceColumn.guard`): a ``CASE`` that makes the *server* fail on such a
value with a marker naming the column and the value, at no extra scan;
:meth:`SourceLayout.stream` turns that failure into a terminal :class:`SourceError` that says
what to do. ``NaN``/``Infinity`` in a ``numeric(p,s)`` cannot be a decimal either and are
refused the same way by :meth:`SourceLayout.decode`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from ..config import Endpoint
from ..errors import redact
from ..sql import PG_PINNED, bare_table, string_literal
from .dialects import source_dialect
from .layout import _GUARDS, SourceColumn, SourceLayout
from .reader import read_arrow
from .render import source_sql

_PG_NATIVE = {
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "bool",
    "text",
    "varchar",
    "bpchar",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "bytea",
    "uuid",
}  # not json/jsonb: connectorx re-serialises them through f64 numbers (2.50 -> 2.5)
_NUMERIC = re.compile(r"^(?:numeric|decimal)\s*\(\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?\)$", re.I)


def decimal_type(precision: int, scale: int) -> pa.DataType | None:
    """The Arrow decimal that holds numeric(p,s) exactly, or None when none does."""
    if scale < 0 or scale > precision:
        return None
    if precision <= 38:
        return pa.decimal128(precision, scale)
    if precision <= 76:
        return pa.decimal256(precision, scale)
    return None


def numeric_typmod(sql_type: str) -> tuple[int, int] | None:
    """``numeric(12,2)`` -> (12, 2); ``decimal(5)`` -> (5, 0); anything else -> None."""
    m = _NUMERIC.match(sql_type.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2) or 0)


# --------------------------------------------------------------------------- describing sources


def pg_columns_sql(regclass: str) -> str:
    """The catalog query for a relation's columns (``regclass``: a SQL expression). Each row:
    name, type, base type (a domain's underlying type), base typname, base typtype, base
    typcategory, the column type's own typtype."""
    return (
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), "
        "format_type(b.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END), "
        "b.typname::text, b.typtype::text, b.typcategory::text, t.typtype::text "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "JOIN pg_type b ON b.oid = COALESCE(NULLIF(t.typbasetype, 0), t.oid) "
        f"WHERE a.attrelid = {regclass} AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum"
    )


def _pg_describe(
    endpoint: Endpoint, query: str
) -> tuple[list[tuple[Any, ...]], tuple[tuple[str, str], ...]]:
    """The query's result columns as :func:`pg_columns_sql` gives them, through a temporary
    view that is rolled back, and the session settings text is rendered under."""
    from ..adbc import connect_postgresql

    conn = connect_postgresql(endpoint.uri)
    try:
        cur = conn.cursor()
        cur.execute(
            f"CREATE TEMP VIEW _am_describe AS SELECT * FROM {source_sql(query, 'postgresql')}"
        )
        cur.execute(pg_columns_sql("'pg_temp._am_describe'::regclass"))
        rows = [tuple(r) for r in cur.fetchall()]
        cur.execute("SELECT current_setting('TimeZone'), current_setting('IntervalStyle')")
        tz, style = cur.fetchall()[0]
        cur.close()
        conn.rollback()
        session = (("TimeZone", str(tz)), ("IntervalStyle", str(style)), *PG_PINNED)
        return rows, session
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _pg_column(row: tuple[Any, ...]) -> SourceColumn:
    name, sql_type, base_type, typname, typtype, category, own_kind = row
    fallback = None
    if own_kind == "d":
        fallback = base_type  # a domain the target may not have: its base type
    elif typtype == "e":
        fallback = "text"  # an enum the target may not have
    elif typtype != "b" or category == "U":
        fallback = "text"
    if typname == "numeric":
        mod = numeric_typmod(base_type)
        if mod is None:
            return SourceColumn(
                name, sql_type, True, None, sql_type, fallback, "unconstrained: exact text"
            )
        p, s = mod
        # always as text, even where connectorx's decimal128(38,10) would hold the value: its
        # binary numeric decode costs more than the server's numeric_out plus an Arrow parse
        # (5M rows of numeric(12,2): 1.1 machine CPU-s less), and the transform then sees
        # decimal(p,s) rather than decimal(38,10)
        dec = decimal_type(p, s)
        note = f"read as text, parsed into {dec}" if dec else "read as text"
        return SourceColumn(name, sql_type, True, dec, sql_type, fallback, note)
    if typname in _GUARDS:
        # no note: `arrowmapper plan` has no width to spare, and a refusal explains itself
        return SourceColumn(name, sql_type, False, None, sql_type, fallback, guard=typname)
    if typname in _PG_NATIVE or typtype == "e":
        return SourceColumn(name, sql_type, False, None, sql_type, fallback)
    return SourceColumn(name, sql_type, True, None, sql_type, fallback or None, "exact text")


def _mysql_columns(endpoint: Endpoint, query: str, schema: pa.Schema) -> list[SourceColumn]:
    declared: dict[str, tuple[str, int | None, int | None]] = {}
    bt = bare_table(query, "mysql")
    if bt is not None:
        db, table = bt
        lit = string_literal(table, "mysql")  # MySQL strings take backslash escapes
        where = (
            f"TABLE_SCHEMA = {string_literal(db, 'mysql')}" if db else "TABLE_SCHEMA = DATABASE()"
        )
        rows = (
            read_arrow(
                endpoint,
                "SELECT COLUMN_NAME AS n, DATA_TYPE AS t, NUMERIC_PRECISION AS p, NUMERIC_SCALE AS s "
                f"FROM information_schema.COLUMNS WHERE {where} AND TABLE_NAME = {lit}",
            )
            .read_all()
            .to_pylist()
        )
        declared = {str(r["n"]): (str(r["t"]).lower(), r["p"], r["s"]) for r in rows}
    out = []
    for f in schema:
        kind, p, s = declared.get(f.name, ("", None, None))
        if kind == "decimal" and p is not None:
            dec = decimal_type(int(p), int(s or 0))
            tt = f"numeric({int(p)},{int(s or 0)})"
            out.append(SourceColumn(f.name, f"decimal({p},{s})", True, dec, tt, None, "exact text"))
        elif pa.types.is_decimal(f.type):  # a query's decimal: its scale is unknown here
            out.append(SourceColumn(f.name, "decimal", True, None, "numeric", None, "exact text"))
        elif kind == "json":
            out.append(SourceColumn(f.name, "json", False, None, "json"))
        elif pa.types.is_date32(f.type) or (pa.types.is_timestamp(f.type) and f.type.tz is None):
            # as text, parsed in the worker: a zero date ('0000-00-00') is then refused naming
            # its column (connectorx panics without saying which)
            out.append(SourceColumn(f.name, kind or None, True, f.type, None, None, "text, parsed"))
        else:
            out.append(SourceColumn(f.name, kind or None))
    return out


#: SQLite declared types of zoned timestamps (a SQLite target declares the first)
_SQLITE_ZONED = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "DATETIMETZ")


def _sqlite_columns(endpoint: Endpoint, query: str, schema: pa.Schema) -> list[SourceColumn]:
    declared: dict[str, str] = {}
    bt = bare_table(query, "sqlite")
    if bt is not None:
        args = string_literal(bt[1], "sqlite")
        if bt[0]:
            args += ", " + string_literal(bt[0], "sqlite")
        rows = (
            read_arrow(endpoint, f"SELECT name AS n, type AS t FROM pragma_table_info({args})")
            .read_all()
            .to_pylist()
        )
        declared = {str(r["n"]): str(r["t"] or "") for r in rows}
    out = []
    for f in schema:
        decl = declared.get(f.name, "")
        upper = decl.upper()
        if upper.startswith(("DECIMAL", "NUMERIC")):
            # DECIMAL_TEXT(p,s): a decimal a SQLite target keeps as exact text (TEXT affinity)
            mod = numeric_typmod(re.sub(r"(?i)^(decimal|numeric)_text\b", r"\1", decl))
            if mod is not None:
                dec = decimal_type(*mod)
                tt = f"numeric({mod[0]},{mod[1]})"
                out.append(SourceColumn(f.name, decl, True, dec, tt, None, "exact text"))
            else:
                out.append(SourceColumn(f.name, decl, True, None, "numeric", None, "exact text"))
        elif " ".join(upper.split()) in _SQLITE_ZONED:
            # the instant's text with its offset (as a SQLite target writes it): connectorx
            # would read it as a string, the worker parses it into an instant
            zoned = pa.timestamp("us", "UTC")
            out.append(SourceColumn(f.name, decl, True, zoned, None, None, "text, parsed"))
        elif upper == "JSON":
            out.append(SourceColumn(f.name, decl, False, None, "json"))
        elif pa.types.is_boolean(f.type):
            # connectorx reads any non-zero value as true; the text parse refuses 2 or -1
            out.append(SourceColumn(f.name, decl, True, pa.bool_(), None, None, "checked: 0/1"))
        else:
            out.append(SourceColumn(f.name, decl or None))
    return out


def _arrow_guarded(endpoint: Endpoint, query: str) -> tuple[SourceColumn, ...]:
    """Where the catalog cannot be asked: the columns connectorx reports, with the guards their
    Arrow types call for (nothing when none does, or when even that read fails)."""
    try:
        schema = read_arrow(
            endpoint, f"SELECT * FROM {source_sql(query, 'postgresql')} LIMIT 0"
        ).schema
    except Exception:  # bad SQL is reported by the describe that follows
        return ()
    cols = tuple(SourceColumn(f.name, None, guard=_guard_of(f.type)) for f in schema)
    return cols if any(c.guard for c in cols) else ()


def _guard_of(t: pa.DataType) -> str | None:
    """The guard a column connectorx reads as ``t`` needs (see ``_GUARDS``)."""
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    return "time" if pa.types.is_time(t) else None


def describe_source(endpoint: Endpoint, query: str) -> SourceLayout:
    """The source query's columns with their declared types and how each will be read.

    Never fails the job by itself: where the catalog cannot be asked (a read-only standby
    refuses temporary views), the layout is empty and connectorx's own mapping is used, with
    a note saying so.
    """
    describe = _DESCRIBERS.get(source_dialect(endpoint.dialect).catalog)
    return describe(endpoint, query) if describe is not None else SourceLayout(endpoint.dialect)


def _describe_pg(endpoint: Endpoint, query: str) -> SourceLayout:
    """The declared types through a temporary view and ``pg_catalog``."""
    try:
        rows, session = _pg_describe(endpoint, query)
    except Exception as exc:  # bad SQL is reported by the describe that follows
        text = redact(str(exc)).strip() or type(exc).__name__
        return SourceLayout(
            endpoint.dialect,
            _arrow_guarded(endpoint, query),
            (
                f"could not describe the query's types ({text.splitlines()[0]}); "
                "using connectorx's mapping (numeric scale above 10 would be refused)",
            ),
        )
    return SourceLayout(endpoint.dialect, tuple(_pg_column(r) for r in rows), (), session)


def _describe_table(
    columns: Callable[[Endpoint, str, pa.Schema], list[SourceColumn]],
) -> Callable[[Endpoint, str], SourceLayout]:
    """A describe from the Arrow schema connectorx reports plus a plain table's catalog."""

    def describe(endpoint: Endpoint, query: str) -> SourceLayout:
        sql = f"SELECT * FROM {source_sql(query, endpoint.dialect)} LIMIT 0"
        schema = read_arrow(endpoint, sql).schema
        return SourceLayout(endpoint.dialect, tuple(columns(endpoint, query, schema)))

    return describe


#: where each kind of catalog is read (``SourceDialect.catalog``; "none": no describe)
_DESCRIBERS: dict[str, Callable[[Endpoint, str], SourceLayout]] = {
    "pg_catalog": _describe_pg,
    "information_schema": _describe_table(_mysql_columns),
    "sqlite_pragma": _describe_table(_sqlite_columns),
}
