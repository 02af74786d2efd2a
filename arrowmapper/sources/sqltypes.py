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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..config import Endpoint
from ..errors import SourceError, redact
from ..plan import source_sql
from ..sql import PG_PINNED, bare_table, quote_ident, string_literal

# connectorx reads these PostgreSQL base types exactly (by typname)
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

# Values connectorx cannot carry, by base type: the guard's SQL condition ({c}: the column) and
# what the reader makes of the worst of them. connectorx decodes dates and timestamps through
# chrono, whose range ends at 262142-12-31: it clamps infinity there, fails on -infinity and
# panics beyond; the lower end of PostgreSQL's range (4714-11-24 BC) is inside chrono's.
_GUARDS: dict[str, tuple[str, str]] = {
    "date": ("NOT isfinite({c}) OR {c} > DATE '262142-12-31'", "262142-12-31"),
    "timestamp": (
        "NOT isfinite({c}) OR {c} > TIMESTAMP '262142-12-31 23:59:59.999999'",
        "262142-12-31 23:59:59.999999",
    ),
    "timestamptz": (
        "NOT isfinite({c}) OR {c} > TIMESTAMPTZ '262142-12-31 23:59:59.999999+00'",
        "262142-12-31 23:59:59.999999+00",
    ),
    "time": ("{c} = TIME '24:00'", "00:00:00"),
}
_REFUSED = re.compile(r"\[arrowmapper\] column #(\d+) holds (.*?) \[/arrowmapper\]", re.S)


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


@dataclass(frozen=True)
class SourceColumn:
    """One result column of the source query and how it is read."""

    name: str
    sql_type: str | None  # the source's own type name, e.g. numeric(40,20); None when unknown
    as_text: bool = False  # the chunk query selects the column's exact text
    decode: pa.DataType | None = None  # the Arrow type that text is parsed into in the worker
    target_type: str | None = None  # the PostgreSQL type a created target column gets
    fallback_type: str | None = None  # used when target_type does not exist in the target
    note: str = ""
    guard: str | None = None  # PostgreSQL base type whose uncarriable values the server refuses


@dataclass(frozen=True)
class SourceLayout:
    """How the source's columns are read; applied around every chunk query.

    ``session``: the settings the source renders text-read values under (its own TimeZone and
    IntervalStyle, and the output settings every source read pins, see
    :func:`pg_source_session`); the target parses and reads back that text under the same."""

    dialect: str
    columns: tuple[SourceColumn, ...] = ()
    notes: tuple[str, ...] = ()
    session: tuple[tuple[str, str], ...] = ()

    @property
    def rewrites(self) -> bool:
        """Whether the chunk query is wrapped (a column read as text, or a guarded one)."""
        return any(c.as_text or c.guard for c in self.columns)

    def column(self, name: str) -> SourceColumn | None:
        return next((c for c in self.columns if c.name == name), None)

    def wrap(self, sql: str) -> str:
        """``sql`` with its text-read columns cast to text and its guarded columns guarded
        (unchanged when there are none)."""
        if not self.rewrites:
            return sql
        items = []
        for i, c in enumerate(self.columns):
            q = quote_ident(c.name, self.dialect)
            if c.guard and self.dialect == "postgresql" and not c.as_text:
                items.append(f"{_guarded(q, c.guard, i)} AS {q}")
            elif not c.as_text:
                items.append(q)
            elif self.dialect == "mysql":
                items.append(f"CAST({q} AS CHAR) AS {q}")
            elif self.dialect == "sqlite":
                items.append(f"{_sqlite_text(q)} AS {q}")
            else:
                items.append(f"{q}::text AS {q}")
        return f"SELECT {', '.join(items)} FROM ({sql.strip().rstrip(';')}) AS _am_src"

    def decode(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Parse text-read columns into their exact Arrow types (numeric -> decimal(p,s)).

        Raises a terminal :class:`SourceError` naming the column and the value when one has
        no exact decimal (``NaN``, ``Infinity``)."""
        todo = {c.name: c.decode for c in self.columns if c.decode is not None}
        if not todo:
            return batch
        arrays = []
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            want = todo.get(name)
            if want is not None and column.type != want:
                try:
                    column = column.cast(want, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise self._undecodable(name, column, want, exc) from None
            arrays.append(column)
        return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)

    def _undecodable(
        self, name: str, column: pa.Array, want: pa.DataType, exc: Exception
    ) -> SourceError:
        import pyarrow.compute as pc

        col = self.column(name)
        declared = f" ({col.sql_type})" if col is not None and col.sql_type else ""
        special = pc.is_in(pc.utf8_lower(column.cast(pa.string())), pa.array(_NOT_DECIMAL))
        hits = column.filter(special)
        if len(hits):
            value, c = hits[0].as_py(), _sql_name(name)
            return SourceError(
                f"column {name!r}{declared} holds {value}, which no decimal can carry exactly; "
                f"map it in the query (e.g. NULLIF({c}, '{value}') or a CASE), or copy the "
                f"column into an unconstrained numeric column (select CAST({c} AS numeric) AS {c} "
                "into a new table, or a numeric target column): such values travel as text and "
                "the server parses them",
                transient=False,
                kind="data",
            )
        if pa.types.is_date(want) or pa.types.is_timestamp(want):
            value = _first_unparsed(column, want)
            return SourceError(
                f"column {name!r}{declared} holds {value!r}, which is no {want} value (MySQL's "
                f"zero date, or a date the reader cannot carry); map it in the query (e.g. "
                f"NULLIF({_sql_name(name)}, {value!r})) or select it as text",
                transient=False,
                kind="data",
            )
        if pa.types.is_boolean(want):
            return SourceError(
                f"column {name!r}{declared} holds a value that is not a boolean (0 or 1): "
                f"{exc}; map it in the query (e.g. CASE WHEN {_sql_name(name)} <> 0 THEN 1 "
                "ELSE 0 END) if any non-zero value means true",
                transient=False,
                kind="data",
            )
        return SourceError(
            f"column {name!r}{declared}: a value does not fit {want} ({exc})",
            transient=False,
            kind="data",
        )

    def refusal(self, exc: BaseException) -> SourceError | None:
        """The terminal error a guard's refusal means (None: ``exc`` is not one)."""
        found = _REFUSED.search(str(exc).replace('\\"', '"'))
        if found is None:
            return None
        i, value = int(found.group(1)), found.group(2)
        col = self.columns[i] if i < len(self.columns) else None
        if col is None or col.guard is None:
            return None
        name, kind = col.name, col.guard
        c = _sql_name(name)
        if kind == "time":
            why = f"which Arrow's time type cannot carry (the reader would read {_GUARDS[kind][1]})"
            how = f"CASE WHEN {c} = '24:00' THEN ... ELSE {c} END"
        elif "infinity" in value:
            why = "which Arrow and Polars cannot carry"
            if not value.startswith("-"):
                why += f" (the reader would read {_GUARDS[kind][1]})"
            how = f"CASE WHEN isfinite({c}) THEN {c} END"
        else:
            why = "past the year 262142, the end of what the reader can carry"
            how = f"CASE WHEN {c} < '262143-01-01' THEN {c} END"
        return SourceError(
            f"column {name!r} ({col.sql_type or kind}) holds {value}, {why}; nothing of this "
            f"chunk was written. Map it in the query (e.g. {how}), or select it as text "
            f"(CAST({c} AS text) AS {c}) into a target column created beforehand as "
            f"{kind}: the server then parses the text exactly",
            transient=False,
            kind="data",
        )

    def stream(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """``batches`` (a reader of a :meth:`wrap`-ped query), with a guard's refusal raised
        as the terminal :class:`SourceError` it stands for."""
        it = iter(batches)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except BaseException as exc:  # connectorx panics are BaseExceptions
                refused = self.refusal(exc)
                if refused is None:
                    raise
                raise refused from None
            yield batch


def _sql_name(name: str) -> str:
    """A column name as a hint's SQL spells it (quoted only where it must be)."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else quote_ident(name, "postgresql")


_NOT_DECIMAL = ["nan", "infinity", "-infinity", "+infinity", "inf", "-inf"]


def _guarded(q: str, kind: str, index: int) -> str:
    """A column expression equal to ``q``, except that the server fails on a value the reader
    cannot carry, with a message naming the column (by its index) and the value. The failing
    branch casts a text built from the value, so the planner cannot fold it into a constant
    and fail on every query."""
    cond = _GUARDS[kind][0].format(c=q)
    marker = (
        f"CAST('[arrowmapper] column #{index} holds ' || {q}::text || ' [/arrowmapper]' AS {kind})"
    )
    return f"CASE WHEN {cond} THEN {marker} ELSE {q} END"


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
    from .sql import read_arrow

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
            out.append(
                SourceColumn(f.name, kind or None, True, f.type, None, None, "text, parsed")
            )
        else:
            out.append(SourceColumn(f.name, kind or None))
    return out


def _sqlite_text(q: str) -> str:
    """A SQLite value's exact text: ``CAST(x AS TEXT)`` keeps only 15 significant digits of a
    REAL (0.30000000000000004 became 0.3), so a REAL is printed with 15 digits where they
    give the same number back, else with the 17 that always do."""
    return (
        f"CASE WHEN typeof({q}) = 'real' THEN CASE WHEN CAST(printf('%!.15g', {q}) AS REAL) = "
        f"{q} THEN printf('%!.15g', {q}) ELSE printf('%!.17g', {q}) END ELSE CAST({q} AS TEXT) END"
    )


def _sqlite_columns(endpoint: Endpoint, query: str, schema: pa.Schema) -> list[SourceColumn]:
    from .sql import read_arrow

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
            mod = numeric_typmod(decl)
            if mod is not None:
                dec = decimal_type(*mod)
                tt = f"numeric({mod[0]},{mod[1]})"
                out.append(SourceColumn(f.name, decl, True, dec, tt, None, "exact text"))
            else:
                out.append(SourceColumn(f.name, decl, True, None, "numeric", None, "exact text"))
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
    from .sql import read_arrow

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
    from .sql import read_arrow

    if endpoint.dialect == "postgresql":
        try:
            rows, session = _pg_describe(endpoint, query)
        except Exception as exc:  # bad SQL is reported by the describe that follows
            text = redact(str(exc)).strip() or type(exc).__name__
            return SourceLayout(
                "postgresql",
                _arrow_guarded(endpoint, query),
                (
                    f"could not describe the query's types ({text.splitlines()[0]}); "
                    "using connectorx's mapping (numeric scale above 10 would be refused)",
                ),
            )
        return SourceLayout("postgresql", tuple(_pg_column(r) for r in rows), (), session)
    if endpoint.dialect in ("mysql", "sqlite"):
        schema = read_arrow(
            endpoint, f"SELECT * FROM {source_sql(query, endpoint.dialect)} LIMIT 0"
        ).schema
        cols = (
            _mysql_columns(endpoint, query, schema)
            if endpoint.dialect == "mysql"
            else _sqlite_columns(endpoint, query, schema)
        )
        return SourceLayout(endpoint.dialect, tuple(cols))
    return SourceLayout(endpoint.dialect)


def _first_unparsed(column: pa.Array, want: pa.DataType) -> object:
    """The first value of ``column`` that does not cast to ``want`` (on the error path only)."""
    for value in column.to_pylist():
        if value is None:
            continue
        try:
            pa.array([value]).cast(want)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return value
    return "?"
