"""Writing the target with ADBC: create the table, conform batches, ingest a chunk exactly once.

A chunk's rows and its ledger row ``(job_id, chunk_id, bounds, rows)`` are committed in one
target transaction; a chunk whose ledger row exists is never loaded again, and a second writer of
the same chunk (a retry racing a zombie) finds the ledger row at commit and rolls back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..checksum import Checksum, align
from ..config import Endpoint
from ..errors import ConfigError, TargetError, VerificationError, redact
from ..plan import quote_ident
from ..sources import pg_columns_sql
from ..sql import derived_name, same_name, session_statements
from .typemap import WriteLayout, check_sqlite_values, to_float32, to_json, to_uuid


@dataclass(frozen=True)
class Written:
    """What one chunk committed: rows, checksum (with ``verify``) and where its rows are."""

    rows: int
    checksum: str | None
    locator: str


@dataclass(frozen=True)
class JobRecord:
    """A job's registration in the target's jobs table."""

    job_id: str
    target_table: str  # where its chunks load (a replace job's staging table)
    plan: str  # the stored plan (JSON)
    fingerprint: dict[str, str] | None  # what defines the job (None: an older arrowmapper's)
    finished_at: str | None  # set when every chunk committed (and a replace job swapped)


class _AnyType(pa.ExtensionType):  # type: ignore[misc]
    """Marks a SQLite column without a declared type (it stores whatever arrives), or
    ``numeric`` one with NUMERIC affinity (it turns number-like text into a number)."""

    def __init__(self, numeric: bool = False) -> None:
        self.numeric = numeric
        super().__init__(pa.null(), "arrowmapper.numeric" if numeric else "arrowmapper.any")

    def __arrow_ext_serialize__(self) -> bytes:
        return b"numeric" if self.numeric else b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> _AnyType:
        return cls(serialized == b"numeric")


_ANY = _AnyType()
_NUMERIC_AFFINITY = _AnyType(numeric=True)
#: SQLite keeps the first 15 significant digits of a number it converts from text (NUMERIC
#: affinity); a decimal with more is refused rather than rounded
_SQLITE_DIGITS = 15
_NUMBER_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _check_sqlite_numeric(column: pa.Array, name: str) -> None:
    """Refuse decimals a SQLite NUMERIC-affinity column would round (more than 15 digits)."""
    import decimal

    for value in column.unique().to_pylist():
        if isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
            value = decimal.Decimal(value.strip())  # SQLite converts number-like text too
        if not isinstance(value, decimal.Decimal) or not value.is_finite():
            continue
        digits = value.normalize().as_tuple().digits
        if len(digits) > _SQLITE_DIGITS:
            raise TargetError(
                f"column {name!r} holds {value}, which has {len(digits)} significant digits; the "
                "SQLite target column has NUMERIC affinity, which keeps only 15 of them (it "
                "turns the exact text into a REAL). Declare the column TEXT to keep the exact "
                "value, or round it in the query",
                transient=False,
                kind="data",
            )
LEDGER = "arrowmapper_ledger"
JOBS = "arrowmapper_jobs"
STAGE = "_am_chunk"  # the temporary table a staged chunk is COPYed into
_JOB_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


def _fault_point(name: str, chunk_id: int) -> None:
    """Test hook: ``ARROWMAPPER_FAULT=before_commit:3`` SIGKILLs this worker at that exact point
    of chunk 3, once (``ARROWMAPPER_FAULT_MARKER`` names the file that records it). Fault tests
    use it to kill a worker inside the commit window, which no outside timing can hit."""
    spec = os.environ.get("ARROWMAPPER_FAULT")
    if not spec or spec != f"{name}:{chunk_id}":
        return
    marker = os.environ.get("ARROWMAPPER_FAULT_MARKER", "")
    if not marker or os.path.exists(marker):
        return
    with open(marker, "w") as fh:
        fh.write(f"{name}:{chunk_id}:{os.getpid()}")
    os.kill(os.getpid(), signal.SIGKILL)


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def check_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise ConfigError(
            f"job_id must be 1-128 characters of letters, digits, '_', '.', ':' or '-', got {job_id!r}"
        )
    return job_id


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(endpoint: Endpoint) -> Any:
    """An ADBC connection (autocommit off) to a PostgreSQL or SQLite target."""
    try:
        if endpoint.dialect == "postgresql":
            from ..adbc import connect_postgresql

            uri = endpoint.uri
            if "application_name=" not in uri:
                uri += ("&" if "?" in uri else "?") + "application_name=arrowmapper"
            conn = connect_postgresql(uri)
            # every literal arrowmapper writes (names, job ids, plans in the ledger) means
            # what it says only with standard strings; a role or database may turn them off
            cur = conn.cursor()
            cur.execute("SET standard_conforming_strings = on")
            cur.close()
            conn.commit()
            return conn
        if endpoint.dialect == "sqlite":
            from ..adbc import connect_sqlite

            assert endpoint.path is not None
            conn = connect_sqlite(endpoint.path)
            cur = conn.cursor()
            cur.execute("PRAGMA busy_timeout = 60000")
            cur.fetchall()
            cur.close()
            return conn
    except Exception as exc:
        raise TargetError(
            f"cannot connect to the target {endpoint.redacted}: {redact(str(exc))}"
        ) from exc
    raise ConfigError(
        f"target {endpoint.redacted}: only postgresql:// and sqlite:/// targets are supported, "
        f"got {endpoint.dialect}"
    )


# --------------------------------------------------------------------------- types


def _storage_type(t: pa.DataType, dialect: str, column: str) -> pa.DataType:
    """The Arrow type a column is created and ingested with on this kind of target."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if (
        pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return pa.binary()
    if pa.types.is_dictionary(t):
        return _storage_type(t.value_type, dialect, column)
    if pa.types.is_null(t):
        return pa.string()
    if pa.types.is_unsigned_integer(t):
        # the next wider signed type; uint64 needs numeric(20,0) (ADBC would wrap it)
        return {8: pa.int16(), 16: pa.int32(), 32: pa.int64()}.get(
            t.bit_width, pa.decimal128(20, 0)
        )
    if pa.types.is_timestamp(t) and t.unit == "ns":
        return pa.timestamp("us", t.tz)
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        t = pa.list_(t.value_type)
    if pa.types.is_list(t):
        if dialect == "sqlite":
            raise TargetError(
                f"column {column!r} is a list ({t}); SQLite targets cannot store lists: "
                "cast it to a string in the transform (e.g. pl.col(c).cast(pl.String))"
            )
        return pa.list_(_storage_type(t.value_type, dialect, column))
    if dialect == "sqlite" and (
        pa.types.is_decimal(t)
        or pa.types.is_time(t)
        or pa.types.is_duration(t)
        or pa.types.is_interval(t)
    ):
        return pa.string()  # exact text; ADBC SQLite refuses these types
    if pa.types.is_struct(t) or pa.types.is_map(t):
        raise TargetError(f"column {column!r} is a {t}; struct and map columns are not supported")
    return t


_PG_NAMES = (
    (pa.types.is_int16, "smallint"),
    (pa.types.is_int32, "integer"),
    (pa.types.is_int64, "bigint"),
    (pa.types.is_float32, "real"),
    (pa.types.is_float64, "double precision"),
    (pa.types.is_string, "text"),
    (pa.types.is_binary, "bytea"),
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_date, "date"),
    (pa.types.is_decimal, "numeric"),
    (pa.types.is_time, "time"),
    (pa.types.is_duration, "interval"),
)
_SQLITE_NAMES = (
    (pa.types.is_integer, "INTEGER"),
    (pa.types.is_boolean, "INTEGER"),
    (pa.types.is_floating, "REAL"),
    (pa.types.is_string, "TEXT"),
    (pa.types.is_binary, "BLOB"),
)


def sql_type_name(t: pa.DataType, dialect: str) -> str:
    """The column type a new table gets for an Arrow type (ADBC's mapping)."""
    if dialect == "sqlite":
        return next((name for check, name in _SQLITE_NAMES if check(t)), "TEXT")
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_list(t):
        return sql_type_name(t.value_type, dialect) + "[]"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    return next((name for check, name in _PG_NAMES if check(t)), str(t))


def storage_schema(schema: pa.Schema, dialect: str) -> pa.Schema:
    return pa.schema([pa.field(f.name, _storage_type(f.type, dialect, f.name)) for f in schema])


def _family(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):  # a Polars Categorical/Enum: its values decide
        return _family(t.value_type)
    checks = (
        ("int", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("decimal", pa.types.is_decimal),
        (
            "string",
            lambda x: (
                pa.types.is_string(x) or pa.types.is_large_string(x) or pa.types.is_string_view(x)
            ),
        ),
        (
            "binary",
            lambda x: (
                pa.types.is_binary(x)
                or pa.types.is_large_binary(x)
                or pa.types.is_binary_view(x)
                or pa.types.is_fixed_size_binary(x)
            ),
        ),
        ("bool", pa.types.is_boolean),
        ("date", pa.types.is_date),
        ("timestamp", pa.types.is_timestamp),
        ("time", pa.types.is_time),
        ("duration", pa.types.is_duration),
        ("null", pa.types.is_null),
        ("list", lambda x: pa.types.is_list(x) or pa.types.is_large_list(x)),
    )
    for name, check in checks:
        if check(t):
            return name
    return str(t)


# Casts that keep a value's meaning (range overflow is still checked by a safe cast).
_SAFE_CASTS = {
    "int": {"int", "float", "decimal"},
    "float": {"float"},
    "decimal": {"decimal", "float"},
    "date": {"date", "timestamp"},
    "string": {"decimal", "float"},  # exact text (an unconstrained numeric), parsed or refused
    "timestamp": {"timestamp"},
}


def _castable(src: pa.DataType, dst: pa.DataType, dialect: str) -> bool:
    a, b = _family(src), _family(dst)
    if a == b or a == "null":
        return True
    if dialect == "sqlite" and (b == "string" or (a == "bool" and b == "int")):
        return True  # SQLite has no booleans, and TEXT columns take any value as text
    return b in _SAFE_CASTS.get(a, set())


def conform(batch: pa.RecordBatch, target: pa.Schema, dialect: str) -> pa.RecordBatch:
    """Cast a batch to the target table's exact types (by column name), safely.

    Safely means: a cast that would change a value is refused with a terminal
    :class:`TargetError` naming the column (and the value, where one is to blame): integers a
    float cannot hold exactly, floats beyond float4's range (Arrow's own "safe" cast turns them
    into infinity), and, for SQLite, NaN and dates outside the years 0000-9999.
    """
    arrays, fields = [], []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        idx = target.get_field_index(name)
        if idx < 0:
            raise TargetError(
                f"column {name!r} is not in the target table (its columns: "
                f"{', '.join(target.names)}); rename it in the transform or add it to the table",
                transient=False,
            )
        want = target.field(idx).type
        if isinstance(want, pa.UuidType):
            arrays.append(to_uuid(column, name))
            fields.append(pa.field(name, want))
            continue
        if isinstance(want, pa.JsonType):
            arrays.append(to_json(column, name))
            fields.append(pa.field(name, want))
            continue
        if (
            isinstance(want, _AnyType)
            and want.numeric
            and (pa.types.is_decimal(column.type) or _family(column.type) == "string")
        ):
            _check_sqlite_numeric(column, name)
        if isinstance(want, pa.BaseExtensionType):
            want = _storage_type(column.type, dialect, name)  # e.g. numeric: the driver decides
        if dialect == "sqlite":
            check_sqlite_values(column, name, want)
        if column.type != want:
            if not _castable(column.type, want, dialect):
                raise TargetError(
                    f"column {name!r}: cannot store {column.type} in the target's {want} without "
                    "changing its meaning; cast it in the transform or change the target column",
                    transient=False,
                )
            try:
                if pa.types.is_float32(want):
                    column = to_float32(column, name)  # range-checked, as PostgreSQL does
                elif pa.types.is_decimal(column.type) and pa.types.is_floating(want):
                    # through the decimal's text: parsed to the nearest float, as PostgreSQL's
                    # numeric -> float8 cast does (Arrow's own cast rounds twice)
                    column = column.cast(pa.string()).cast(want)
                else:
                    column = column.cast(want, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise TargetError(
                    f"column {name!r}: cannot store {column.type} in the target's {want} "
                    f"({exc}); cast it in the transform or change the target column",
                    transient=False,
                ) from None
        arrays.append(column)
        fields.append(pa.field(name, want))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


# --------------------------------------------------------------------------- the target


@dataclass(frozen=True)
class TableRef:
    schema: str | None
    table: str
    dialect: str

    def qualified(self, name: str | None = None) -> str:
        q = quote_ident(name or self.table, self.dialect)
        return f"{quote_ident(self.schema, self.dialect)}.{q}" if self.schema else q

    @property
    def display(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table


class Target:
    """One ADBC connection to the target, with the operations the engine needs."""

    def __init__(self, endpoint: Endpoint, ref: TableRef, conn: Any = None) -> None:
        self.endpoint = endpoint
        self.ref = ref
        self.conn = conn if conn is not None else connect(endpoint)
        self._sqlite_shape: bool | None = None  # see untracked

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def _exec(self, sql: str) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
            try:
                return list(cur.fetchall())
            except Exception:
                return []
        finally:
            cur.close()

    def _read(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a statement and end its transaction (a SQLite reader must not hold a lock)."""
        rows = self._exec(sql)
        self.conn.commit()
        return rows

    def rollback(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.rollback()

    # -- table
    def schema_exists(self) -> bool:
        """Whether the schema this table is in exists (SQLite: always)."""
        if self.ref.dialect == "sqlite" or not self.ref.schema:
            return True
        return bool(self._read(f"SELECT 1 FROM pg_namespace WHERE nspname = {_lit(self.ref.schema)}"))

    def table_exists(self) -> bool:
        if self.ref.dialect == "sqlite":
            rows = self._exec(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                f"{_lit(self.ref.table)} COLLATE NOCASE"  # SQLite ignores ASCII case in names
            )
        else:
            rows = self._exec(f"SELECT to_regclass({_lit(self.ref.qualified())}) IS NOT NULL")
            rows = [r for r in rows if r[0]]
        self.conn.commit()
        return bool(rows)

    def arrow_schema(self) -> pa.Schema:
        if self.ref.dialect == "sqlite":
            return self._sqlite_schema()
        kwargs = {"db_schema_filter": self.ref.schema} if self.ref.schema else {}
        schema = self.conn.adbc_get_table_schema(self.ref.table, **kwargs)
        self.conn.commit()
        return pa.schema([pa.field(f.name, f.type) for f in schema])

    def _sqlite_schema(self) -> pa.Schema:
        """SQLite declares affinities, not types: map them (the ADBC driver guesses from data)."""
        rows = self._read(f"SELECT name, type FROM pragma_table_info({_lit(self.ref.table)})")
        fields = []
        for name, decl in rows:
            d = str(decl or "").upper()
            if "INT" in d:
                t: pa.DataType = pa.int64()
            elif any(x in d for x in ("CHAR", "CLOB", "TEXT")):
                t = pa.string()
            elif "BLOB" in d:
                t = pa.binary()
            elif any(x in d for x in ("REAL", "FLOA", "DOUB")):
                t = pa.float64()
            elif not d:  # no declared type: stores what arrives
                t = _ANY
            else:  # NUMERIC affinity (NUMERIC, DECIMAL, BOOLEAN, DATE, ...)
                t = _NUMERIC_AFFINITY
            fields.append(pa.field(str(name), t))
        return pa.schema(fields)

    def create_table(self, schema: pa.Schema) -> pa.Schema:
        """Create the table (never appending) with the storage types of ``schema``."""
        storage = storage_schema(schema, self.ref.dialect)
        cur = self.conn.cursor()
        try:
            kwargs = {"db_schema_name": self.ref.schema} if self.ref.schema else {}
            cur.adbc_ingest(self.ref.table, storage.empty_table(), mode="create", **kwargs)
            self.conn.commit()
        except Exception as exc:
            self.rollback()
            raise TargetError(
                f"cannot create target table {self.ref.display}: {redact(str(exc))}"
            ) from exc
        finally:
            cur.close()
        return self.arrow_schema()

    def create_table_sql(self, columns: list[tuple[str, str]], key: tuple[str, ...] = ()) -> None:
        """Create the table with these exact SQL types (and a primary key on ``key``)."""
        d = self.ref.dialect
        parts = [f"{quote_ident(n, d)} {t}" for n, t in columns]
        if key:
            parts.append(f"PRIMARY KEY ({', '.join(quote_ident(k, d) for k in key)})")
        try:
            self._exec(f"CREATE TABLE {self.ref.qualified()} ({', '.join(parts)})")
            self.conn.commit()
        except Exception as exc:
            self.rollback()
            raise TargetError(
                f"cannot create target table {self.ref.display}: {redact(str(exc))}",
                transient=False,
            ) from exc

    def type_exists(self, sql_type: str) -> bool:
        """Whether a PostgreSQL type name (an enum, a domain, ...) exists in the target."""
        try:
            rows = self._read(f"SELECT to_regtype({_lit(sql_type)}) IS NOT NULL")
        except Exception:
            self.rollback()
            return False
        return bool(rows and rows[0][0])

    def pg_columns(self) -> list[tuple[str, ...]]:
        """The target's columns with their exact types (see :func:`pg_columns_sql`)."""
        rows = self._read(pg_columns_sql(f"to_regclass({_lit(self.ref.qualified())})"))
        return [tuple(str(v) for v in row) for row in rows]

    def required_columns(self) -> list[str]:
        """Columns a row must be given a value for: NOT NULL, no default, not an identity or
        generated column (SQLite: NOT NULL without a default, not the INTEGER PRIMARY KEY)."""
        if self.ref.dialect == "sqlite":
            rows = self._read(
                f"SELECT name, type, pk FROM pragma_table_info({_lit(self.ref.table)}) "
                'WHERE "notnull" = 1 AND dflt_value IS NULL'
            )
            keys = [r for r in rows if int(r[2]) > 0]
            rowid = len(keys) == 1 and str(keys[0][1]).upper() == "INTEGER"
            return [str(r[0]) for r in rows if not (rowid and int(r[2]) > 0)]
        rows = self._read(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = "
            f"to_regclass({_lit(self.ref.qualified())}) AND attnum > 0 AND NOT attisdropped "
            "AND attnotnull AND NOT atthasdef AND attidentity = '' AND attgenerated = '' "
            "ORDER BY attnum"
        )
        return [str(r[0]) for r in rows]

    def unique_keys(self) -> list[tuple[str, ...]]:
        """Column sets with a unique index (primary key first): what ON CONFLICT can use."""
        if self.ref.dialect == "sqlite":
            t = _lit(self.ref.table)
            idx = self._exec(
                f'SELECT name, origin FROM pragma_index_list({t}) WHERE "unique" = 1 '
                "AND partial = 0 ORDER BY origin = 'pk' DESC"
            )
            keys = []
            for name, _ in idx:
                cols = self._exec(
                    f"SELECT name FROM pragma_index_info({_lit(str(name))}) ORDER BY seqno"
                )
                keys.append(tuple(str(c[0]) for c in cols))
            pk = self._exec(f"SELECT name FROM pragma_table_info({t}) WHERE pk > 0 ORDER BY pk")
            if pk and not any(k == tuple(str(r[0]) for r in pk) for k in keys):
                keys.insert(0, tuple(str(r[0]) for r in pk))  # INTEGER PRIMARY KEY: no index
            self.conn.commit()
            return keys
        rows = self._exec(
            "SELECT i.indisprimary, array_to_string(ARRAY(SELECT a.attname FROM "
            "unnest(i.indkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON "
            "a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o), chr(1)) "
            f"FROM pg_index i WHERE i.indrelid = to_regclass({_lit(self.ref.qualified())}) "
            "AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL "
            "ORDER BY i.indisprimary DESC"
        )
        self.conn.commit()
        return [tuple(str(c) for c in str(cols).split(chr(1))) for _, cols in rows]

    def add_primary_key(self, key: tuple[str, ...]) -> None:
        d = self.ref.dialect
        cols = ", ".join(quote_ident(k, d) for k in key)
        if d == "sqlite":
            name = quote_ident(derived_name(self.ref.table, "key", d), d)
            sql = f"CREATE UNIQUE INDEX {name} ON {self.ref.qualified()} ({cols})"
        else:
            sql = f"ALTER TABLE {self.ref.qualified()} ADD PRIMARY KEY ({cols})"
        try:
            self._exec(sql)
            self.conn.commit()
        except Exception as exc:
            self.rollback()
            raise TargetError(
                f"cannot add the merge key ({', '.join(key)}) to {self.ref.display}: "
                f"{redact(str(exc))}",
                transient=False,
            ) from exc

    def create_like(self, other: TableRef) -> None:
        """Create this (staging) table with ``other``'s columns and types."""
        if self.ref.dialect == "sqlite":
            sql = (
                f"CREATE TABLE {self.ref.qualified()} AS SELECT * FROM {other.qualified()} WHERE 0"
            )
        else:
            sql = (
                f"CREATE TABLE {self.ref.qualified()} (LIKE {other.qualified()} INCLUDING DEFAULTS)"
            )
        self._exec(sql)
        self.conn.commit()

    def check_can_empty(self, mode: str, in_transaction: bool = False) -> None:
        """Refuse, before any row moves, a ``replace`` or ``truncate`` that could not empty
        this table without touching another: a foreign key pointing at it that would cascade
        (ON DELETE CASCADE / SET NULL / SET DEFAULT changes the other table's rows), or one
        with rows that reference it (the emptying would fail after every chunk loaded)."""
        if self.ref.dialect == "sqlite":
            return  # ADBC's SQLite connections do not enforce foreign keys
        read = self._exec if in_transaction else self._read  # never end the caller's
        rows = read(
            "SELECT c.conname::text, c.conrelid::regclass::text, c.confdeltype::text, "
            "array_to_string(ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.conkey) k(n) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n), ',') "
            "FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid <> c.confrelid "
            f"AND c.confrelid = to_regclass({_lit(self.ref.qualified())})"
        )
        actions = {"c": "ON DELETE CASCADE", "n": "ON DELETE SET NULL", "d": "ON DELETE SET DEFAULT"}
        for name, child, action, cols in rows:
            if action in actions:
                raise ConfigError(
                    f"{self.ref.display} is referenced by foreign key {name} of {child} "
                    f"({actions[action]}): mode={mode!r} empties {self.ref.display}, which "
                    f"would change or delete rows of {child}; use mode='merge' or 'append', or "
                    "drop or alter the constraint first"
                )
            where = " AND ".join(f"{c} IS NOT NULL" for c in str(cols).split(","))
            if read(f"SELECT EXISTS (SELECT 1 FROM {child} WHERE {where})")[0][0]:
                raise ConfigError(
                    f"{self.ref.display} is referenced by foreign key {name} of {child}, which "
                    f"has rows pointing at it: mode={mode!r} cannot empty {self.ref.display}; "
                    "use mode='merge' or 'append', or empty the referencing rows first"
                )

    def _referenced(self) -> bool:
        """Whether a foreign key elsewhere points at this table (TRUNCATE would refuse)."""
        if self.ref.dialect == "sqlite":
            return False
        rows = self._exec(
            "SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = "
            f"to_regclass({_lit(self.ref.qualified())})"
        )
        return bool(rows)

    def _empty_sql(self) -> str:
        if self.ref.dialect == "sqlite" or self._referenced():
            return f"DELETE FROM {self.ref.qualified()}"
        return f"TRUNCATE {self.ref.qualified()}"

    def _register_sql(self, job_id: str, plan_json: str, fingerprint: dict[str, str]) -> str:
        return (
            f"INSERT INTO {self.ref.qualified(JOBS)} (job_id, target_table, plan, fingerprint) "
            f"VALUES ({_lit(job_id)}, {_lit(self.ref.display)}, {_lit(plan_json)}, "
            f"{_lit(json.dumps(fingerprint, sort_keys=True))}) "
            "ON CONFLICT DO NOTHING RETURNING job_id"
        )

    def register_job(self, job_id: str, plan_json: str, fingerprint: dict[str, str]) -> bool:
        """Claim ``job_id`` for this run: True when this call registered it, False when another
        run (earlier or concurrent) already had. PostgreSQL makes a concurrent claim of the
        same key wait for the first and then find it."""
        rows = self._exec(self._register_sql(job_id, plan_json, fingerprint))
        self.conn.commit()
        return bool(rows)

    def truncate_and_register(
        self, job_id: str, plan_json: str, fingerprint: dict[str, str]
    ) -> bool:
        """Claim ``job_id`` and empty the table in one transaction, so a resumed job (which
        finds its registration) never empties the table again, and a run that loses the claim
        to another empties nothing. Returns whether this call claimed the job."""
        try:
            if not self._exec(self._register_sql(job_id, plan_json, fingerprint)):
                self.rollback()
                return False
            self._exec(self._empty_sql())
            self.conn.commit()
            return True
        except Exception as exc:
            self.rollback()
            raise TargetError(
                f"cannot empty {self.ref.display} for mode='truncate': {redact(str(exc))}",
                transient=False,
            ) from exc

    def drop_table(self, quiet: bool = False) -> None:
        """Drop this table (only ever a staging table arrowmapper created)."""
        self.rollback()
        try:
            self._exec(f"DROP TABLE IF EXISTS {self.ref.qualified()}")
            self.conn.commit()
        except Exception:
            self.rollback()
            if not quiet:
                raise

    def swap_in(
        self,
        stage: TableRef,
        columns: list[str],
        existed: bool,
        job_id: str,
        empty_with: str = "truncate",
    ) -> bool:
        """Make the loaded staging table the target and mark ``job_id`` finished, in one
        transaction: a reader sees the old rows or the new ones, never a mix. An existing
        target keeps its definition (indexes, constraints, grants, triggers, dependent views):
        its rows are replaced by the stage's. A new one is the stage, renamed.

        The target is emptied only here, and only after checking, inside the transaction, that
        the stage is another table than the target and holds every row the job's ledger says
        it committed. ``empty_with="delete"`` empties the old rows with DELETE instead of
        TRUNCATE: slower, but a REPEATABLE READ reader whose snapshot predates the swap keeps
        seeing the old rows (after TRUNCATE it sees an empty table). Returns False (and changes
        nothing) when the job was already finished by another run."""
        d = self.ref.dialect
        try:
            if not self._exec(self._finish_sql(job_id)):
                self.rollback()
                return False
            self._check_stage(stage, job_id)
            if existed:
                # a constraint added while the job ran (inside this transaction: a read that
                # ended it would commit the job as finished before anything was swapped)
                self.check_can_empty("replace", in_transaction=True)
                cols = ", ".join(quote_ident(c, d) for c in columns)
                if d != "sqlite":
                    self._exec(f"LOCK TABLE {self.ref.qualified()} IN ACCESS EXCLUSIVE MODE")
                empty = (
                    f"DELETE FROM {self.ref.qualified()}"
                    if empty_with == "delete"
                    else self._empty_sql()
                )
                self._exec(empty)
                self._exec(
                    f"INSERT INTO {self.ref.qualified()} ({cols}) SELECT {cols} FROM "
                    f"{stage.qualified()}"
                )
                self._exec(f"DROP TABLE {stage.qualified()}")
                # the rows now carry this transaction's id (SQLite: new rowids): every chunk's
                # locator becomes the whole swapped table
                locator = (
                    _lit("rowid:1:9223372036854775807")
                    if d == "sqlite"
                    else "'xid:' || pg_current_xact_id()::xid::text"
                )
                self._exec(
                    f"UPDATE {self.ref.qualified(LEDGER)} SET locator = {locator} "
                    f"WHERE job_id = {_lit(job_id)}"
                )
            else:
                self._exec(
                    f"ALTER TABLE {stage.qualified()} RENAME TO {quote_ident(self.ref.table, d)}"
                )
            # the job's rows are in the target now: verify and the ledger name it
            for table in (JOBS, LEDGER):
                self._exec(
                    f"UPDATE {self.ref.qualified(table)} SET target_table = "
                    f"{_lit(self.ref.display)} WHERE job_id = {_lit(job_id)}"
                )
            self.conn.commit()
            return True
        except Exception as exc:
            self.rollback()
            raise TargetError(
                f"loaded every chunk into {stage.display} but could not swap it into "
                f"{self.ref.display}: {redact(str(exc))}; the old table is untouched, fix the "
                "cause and resume the job to retry the swap",
                transient=False,
            ) from exc

    def _check_stage(self, stage: TableRef, job_id: str) -> None:
        """Refuse a swap that could lose the target: a stage that resolves to the target
        itself, or one that lacks rows the ledger says were committed."""
        d = self.ref.dialect
        if d == "sqlite":
            same = same_name(stage.table, self.ref.table, d)
        else:
            rows = self._exec(
                f"SELECT to_regclass({_lit(stage.qualified())})::oid = "
                f"to_regclass({_lit(self.ref.qualified())})::oid"
            )
            same = bool(rows and rows[0][0])
        if same:
            raise TargetError(
                f"the staging table {stage.display} is the target {self.ref.display} itself; "
                "refusing to swap (the target is untouched)",
                transient=False,
            )
        held = int(self._exec(f"SELECT COUNT(*) FROM {stage.qualified()}")[0][0])
        want = self._exec(
            f"SELECT COALESCE(SUM(rows), 0) FROM {self.ref.qualified(LEDGER)} "
            f"WHERE job_id = {_lit(job_id)}"
        )
        expected = int(want[0][0]) if want else 0
        if held != expected:
            raise TargetError(
                f"the staging table {stage.display} holds {held} rows where job {job_id!r} "
                f"committed {expected}; refusing to swap it in (the target is untouched)",
                transient=False,
            )

    def column_types(self, name: str | None = None) -> dict[str, str]:
        """Column name -> the database's own type name (``numeric(12,2)``, ``TEXT``, ...) of
        this table, or of the table ``name`` beside it (empty when it does not exist)."""
        if self.ref.dialect == "sqlite":
            table = _lit(name or self.ref.table)
            rows = self._read(f"SELECT name, type FROM pragma_table_info({table})")
        else:
            rows = self._read(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute "
                f"WHERE attrelid = to_regclass({_lit(self.ref.qualified(name))}) AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum"
            )
        return {str(n): str(t or "") for n, t in rows}

    def ledger(self, job_id: str) -> dict[int, tuple[int, int | None, str | None, str | None]]:
        """chunk_id -> (rows written, rows read, checksum, locator) from the ledger."""
        rows = self._read(
            f"SELECT chunk_id, rows, rows_read, checksum, locator FROM "
            f"{self.ref.qualified(LEDGER)} WHERE job_id = {_lit(job_id)}"
        )
        return {int(c): (int(w), None if r is None else int(r), s, loc) for c, w, r, s, loc in rows}

    def row_count(self) -> int:
        rows = self._read(f"SELECT COUNT(*) FROM {self.ref.qualified()}")
        return int(rows[0][0])

    # -- ledger and stored plans
    def ensure_ledger(self) -> None:
        ts = (
            "timestamptz NOT NULL DEFAULT now()"
            if self.ref.dialect != "sqlite"
            else "TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP"
        )
        stmts = [
            f"CREATE TABLE IF NOT EXISTS {self.ref.qualified(LEDGER)} (job_id TEXT NOT NULL, "
            "chunk_id INTEGER NOT NULL, target_table TEXT NOT NULL, bounds TEXT, "
            f"rows BIGINT NOT NULL, rows_read BIGINT, checksum TEXT, locator TEXT, committed_at {ts}, "
            "PRIMARY KEY (job_id, chunk_id))",
            f"CREATE TABLE IF NOT EXISTS {self.ref.qualified(JOBS)} (job_id TEXT PRIMARY KEY, "
            f"target_table TEXT NOT NULL, plan TEXT NOT NULL, created_at {ts}, "
            "fingerprint TEXT, finished_at TEXT)",
        ]
        for sql in stmts:
            try:
                self._exec(sql)
                self.conn.commit()
            except Exception as exc:  # a concurrent job created it first
                self.rollback()
                if "already exists" not in str(exc) and "duplicate key" not in str(exc):
                    raise TargetError(
                        f"cannot create the ledger table: {redact(str(exc))}"
                    ) from exc
        self._migrate_jobs()

    def _migrate_jobs(self) -> None:
        """Add the columns a jobs table made by an older arrowmapper lacks."""
        have = set(self._job_columns())
        for column in ("fingerprint", "finished_at"):
            if column in have:
                continue
            try:
                self._exec(f"ALTER TABLE {self.ref.qualified(JOBS)} ADD COLUMN {column} TEXT")
                self.conn.commit()
            except Exception as exc:  # a concurrent job added it first
                self.rollback()
                if column not in self._job_columns():
                    raise TargetError(
                        f"cannot upgrade the jobs table: {redact(str(exc))}", transient=False
                    ) from exc

    def _job_columns(self) -> list[str]:
        return list(self.column_types(JOBS))

    def has_ledger(self) -> bool:
        """Whether this schema has arrowmapper's jobs table (any job ever ran here)."""
        return bool(self._job_columns())

    def job_record(self, job_id: str) -> JobRecord | None:
        """The stored registration of ``job_id`` in this schema, or None."""
        if not self.has_ledger():
            return None
        self._migrate_jobs()
        rows = self._read(
            f"SELECT target_table, plan, fingerprint, finished_at FROM "
            f"{self.ref.qualified(JOBS)} WHERE job_id = {_lit(job_id)}"
        )
        if not rows:
            return None
        table, plan, fingerprint, finished = rows[0]
        return JobRecord(
            job_id,
            str(table),
            str(plan),
            json.loads(fingerprint) if fingerprint else None,
            None if finished is None else str(finished),
        )

    def unregister_job(self, job_id: str) -> None:
        """Forget a job that failed before its first chunk (so its id can be used again)."""
        try:
            self._exec(
                f"DELETE FROM {self.ref.qualified(JOBS)} WHERE job_id = {_lit(job_id)} AND NOT "
                f"EXISTS (SELECT 1 FROM {self.ref.qualified(LEDGER)} WHERE job_id = {_lit(job_id)})"
            )
            self.conn.commit()
        except Exception:
            self.rollback()

    def set_fingerprint(self, job_id: str, fingerprint: dict[str, str]) -> None:
        self._exec(
            f"UPDATE {self.ref.qualified(JOBS)} SET fingerprint = "
            f"{_lit(json.dumps(fingerprint, sort_keys=True))} WHERE job_id = {_lit(job_id)}"
        )
        self.conn.commit()

    def _finish_sql(self, job_id: str) -> str:
        now = "CURRENT_TIMESTAMP" if self.ref.dialect == "sqlite" else "now()::text"
        return (
            f"UPDATE {self.ref.qualified(JOBS)} SET finished_at = {now} "
            f"WHERE job_id = {_lit(job_id)} AND finished_at IS NULL RETURNING job_id"
        )

    def mark_finished(self, job_id: str) -> None:
        """Record that every chunk of ``job_id`` committed: resuming it is then a no-op."""
        self._exec(self._finish_sql(job_id))
        self.conn.commit()

    def table_identity(self) -> str | None:
        """What tells this table from one dropped and created again under its name: the
        PostgreSQL oid (None on SQLite, which has no such id: there the committed rows are
        checked instead)."""
        if self.ref.dialect == "sqlite":
            return None
        rows = self._read(f"SELECT to_regclass({_lit(self.ref.qualified())})::oid::text")
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def missing_chunks(self, job_id: str) -> list[tuple[int, int, int]]:
        """``(chunk_id, rows the ledger says, rows the table holds)`` for every committed chunk
        of ``job_id`` whose rows are no longer all in this table (emptied, deleted, or a table
        of the same name created again). Chunks merged into a table are not counted: a later
        upsert may have moved their rows."""
        entries = self.ledger(job_id)
        want: dict[str, tuple[int, int]] = {}
        for cid, (rows, _, _, locator) in entries.items():
            if locator and not locator.startswith("none:") and rows > 0:
                want[locator] = (cid, rows)
        if not want:
            return []
        held: dict[str, int] = {}
        if self.ref.dialect == "sqlite":
            for locator in want:
                found = self._read(
                    f"SELECT COUNT(*) FROM {self.ref.qualified()} WHERE "
                    f"{self.locator_predicate(locator)}"
                )
                held[locator] = int(found[0][0])
        else:  # one pass over the table, whatever the number of chunks
            xids = ", ".join(_lit(loc.partition(":")[2]) for loc in want if loc.startswith("xid:"))
            if xids:
                for xid, n in self._read(
                    f"SELECT xmin::text, COUNT(*) FROM {self.ref.qualified()} "
                    f"WHERE xmin::text IN ({xids}) GROUP BY 1"
                ):
                    held[f"xid:{xid}"] = int(n)
        return sorted(
            (cid, rows, held.get(loc, 0))
            for loc, (cid, rows) in want.items()
            if held.get(loc, 0) != rows
        )

    def committed(self, job_id: str) -> dict[int, int]:
        """chunk_id -> rows for every chunk of ``job_id`` already committed."""
        rows = self._read(
            f"SELECT chunk_id, rows FROM {self.ref.qualified(LEDGER)} WHERE job_id = {_lit(job_id)}"
        )
        return {int(c): int(r) for c, r in rows}

    def settled_rows(self, job_id: str, chunk_id: int) -> int | None:
        """The rows ``chunk_id`` committed, or None when it did not -- waiting, first, for a
        commit still in progress. A worker killed during its COMMIT leaves the server to
        finish (or abort) that transaction; a plain read would not see it yet, and a chunk
        split on that reading would load the same rows twice. Claiming the chunk's ledger
        row waits on the dying transaction's lock; the claim is rolled back at once."""
        ledger = self.ref.qualified(LEDGER)
        try:
            claimed = self._exec(
                f"INSERT INTO {ledger} (job_id, chunk_id, target_table, bounds, rows) VALUES "
                f"({_lit(job_id)}, {int(chunk_id)}, {_lit(self.ref.display)}, '', -1) "
                "ON CONFLICT DO NOTHING RETURNING chunk_id"
            )
        finally:
            self.rollback()
        if claimed:
            return None
        return self.committed(job_id).get(chunk_id)

    def stored_plan(self, job_id: str) -> tuple[str, str] | None:
        rows = self._read(
            f"SELECT target_table, plan FROM {self.ref.qualified(JOBS)} WHERE job_id = {_lit(job_id)}"
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    def store_plan(self, job_id: str, plan_json: str) -> None:
        self._exec(
            f"INSERT INTO {self.ref.qualified(JOBS)} (job_id, target_table, plan) VALUES "
            f"({_lit(job_id)}, {_lit(self.ref.display)}, {_lit(plan_json)})"
        )
        self.conn.commit()

    def update_plan(self, job_id: str, plan_json: str) -> None:
        """Store a job's changed plan (a chunk was split), so resume finds the halves."""
        self._exec(
            f"UPDATE {self.ref.qualified(JOBS)} SET plan = {_lit(plan_json)} "
            f"WHERE job_id = {_lit(job_id)}"
        )
        self.conn.commit()

    # -- the exactly-once write
    def write_chunk(
        self,
        job_id: str,
        chunk_id: int,
        bounds: str,
        batches: Iterable[pa.RecordBatch],
        rows_read: Callable[[], int] | None = None,
        verify: bool = False,
        layout: WriteLayout | None = None,
    ) -> Written | None:
        """Ingest ``batches`` and the chunk's ledger row in one transaction.

        The ledger row goes in first: on PostgreSQL its key makes a second writer of the same
        chunk wait and then find it; on SQLite it takes the write lock, so the rowid range the
        chunk gets is its own. With ``verify``, the rows are read back inside the transaction
        and compared (count and order-independent checksum) with what was sent; a mismatch
        rolls everything back and raises a transient :class:`VerificationError`.

        Returns None when the chunk was already committed (by an earlier attempt, an earlier
        run, or a zombie worker): then nothing is written.
        """
        # before the chunk's transaction: the lookup reads (and ends its own transaction)
        untracked = self.untracked(layout)
        if chunk_id in self._committed_one(job_id, chunk_id):
            return None
        counted = [0]
        raised: list[BaseException] = []
        digest = Checksum() if verify else None
        sent: list[pa.Schema] = []

        def counting() -> Iterable[pa.RecordBatch]:
            try:
                for batch in batches:
                    counted[0] += batch.num_rows
                    if digest is not None:
                        digest.add(batch)
                    if not sent:
                        sent.append(batch.schema)
                    yield batch
            except BaseException as exc:  # the driver would swallow the original error
                raised.append(exc)
                raise

        ledger = self.ref.qualified(LEDGER)
        key = f"job_id = {_lit(job_id)} AND chunk_id = {int(chunk_id)}"
        cur = self.conn.cursor()
        try:
            cur.execute(
                f"INSERT INTO {ledger} (job_id, chunk_id, target_table, bounds, rows) VALUES "
                f"({_lit(job_id)}, {int(chunk_id)}, {_lit(self.ref.display)}, {_lit(bounds)}, -1) "
                "ON CONFLICT DO NOTHING RETURNING chunk_id"
            )
            if not cur.fetchall():
                self.conn.rollback()
                return None
            start = "" if untracked else self._locator_start(cur)
            stream = iter(counting())
            first = next(stream, None)  # an empty chunk writes only its ledger row
            if first is not None:
                reader = pa.RecordBatchReader.from_batches(first.schema, _chain(first, stream))
                kwargs = {"db_schema_name": self.ref.schema} if self.ref.schema else {}
                try:
                    if layout is not None and layout.needs_stage:
                        self._ingest_staged(cur, reader, layout, first.schema.names)
                    else:
                        cur.adbc_ingest(self.ref.table, reader, mode="append", **kwargs)
                except BaseException:
                    if raised:
                        raise raised[0] from None
                    raise
            locator = "none:" if untracked else self._locator_end(cur, start)
            checksum = digest.digest if digest is not None else None
            if digest is not None:
                staged = set(layout.staged) if layout is not None else set()
                session = layout.session if layout is not None else ()
                self._check_written(cur, chunk_id, locator, sent, digest, staged, session)
            read = int(rows_read()) if rows_read is not None else None
            cur.execute(
                f"UPDATE {ledger} SET rows = {counted[0]}, "
                f"rows_read = {'NULL' if read is None else read}, "
                f"checksum = {'NULL' if checksum is None else _lit(checksum)}, "
                f"locator = {_lit(locator)} WHERE {key}"
            )
            _fault_point("before_commit", chunk_id)
            self.conn.commit()
            _fault_point("after_commit", chunk_id)
            return Written(counted[0], checksum, locator)
        except BaseException:
            self.rollback()
            raise
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def _ingest_staged(
        self, cur: Any, reader: pa.RecordBatchReader, layout: WriteLayout, names: list[str]
    ) -> None:
        """COPY the chunk into a temporary table, then move it into the target with the
        server's casts (exact text -> interval, numeric, ...) and, for ``merge``, an upsert:
        all inside the chunk's transaction."""
        d = self.ref.dialect
        cur.adbc_ingest(STAGE, reader, mode="replace", temporary=True)
        types = {c.name: c.sql_type for c in layout.columns if c.sql_type}
        cols = ", ".join(quote_ident(c, d) for c in names)
        exprs = ", ".join(
            f"{quote_ident(c, d)}::{types[c]}"
            if c in types and d != "sqlite"
            else quote_ident(c, d)
            for c in names
        )
        for setting in session_statements(layout.session) if d != "sqlite" else []:
            cur.execute(setting)  # parse the text as the source rendered it
        tmp = f"pg_temp.{STAGE}" if d != "sqlite" else f"temp.{STAGE}"
        sql = f"INSERT INTO {self.ref.qualified()} ({cols}) SELECT {exprs} FROM {tmp}"
        if layout.merge_key:
            keys = ", ".join(quote_ident(k, d) for k in layout.merge_key)
            rest = [c for c in names if c not in layout.merge_key]
            if d == "sqlite":
                sql += " WHERE true"  # SQLite's parser needs it before ON CONFLICT
            action = (
                "UPDATE SET "
                + ", ".join(f"{quote_ident(c, d)} = excluded.{quote_ident(c, d)}" for c in rest)
                if rest
                else "NOTHING"
            )
            sql += f" ON CONFLICT ({keys}) DO {action}"
        cur.execute(sql)

    # -- where a chunk's rows are: a PostgreSQL transaction id, or a SQLite rowid range
    def untracked(self, layout: WriteLayout | None = None) -> bool:
        """SQLite: whether a chunk's rows cannot be found again by a rowid range -- a merge
        (updated rows keep their rowids), a table WITHOUT ROWID, or one whose INTEGER PRIMARY
        KEY is the rowid (rows land where their key says, not after the last one).

        Reads the catalog and ends that read's transaction: never call it inside a chunk's
        transaction (write_chunk asks before it starts)."""
        if self.ref.dialect != "sqlite":
            return False
        if layout is not None and layout.merge_key:
            return True
        if self._sqlite_shape is None:
            sql = self._read(
                f"SELECT sql FROM sqlite_master WHERE type = 'table' AND name = "
                f"{_lit(self.ref.table)} COLLATE NOCASE"
            )
            text = str(sql[0][0] or "") if sql else ""
            keys = self._read(
                f"SELECT type FROM pragma_table_info({_lit(self.ref.table)}) WHERE pk > 0"
            )
            alias = len(keys) == 1 and str(keys[0][0]).upper() == "INTEGER"
            self._sqlite_shape = alias or "WITHOUT ROWID" in text.upper()
        return self._sqlite_shape

    def _locator_start(self, cur: Any) -> str:
        if self.ref.dialect == "sqlite":
            cur.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {self.ref.qualified()}")
        else:
            cur.execute("SELECT pg_current_xact_id()::xid::text")
        return str(cur.fetchall()[0][0])

    def _locator_end(self, cur: Any, start: str) -> str:
        if self.ref.dialect != "sqlite":
            return f"xid:{start}"
        cur.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {self.ref.qualified()}")
        return f"rowid:{int(start) + 1}:{int(cur.fetchall()[0][0])}"

    @staticmethod
    def locator_predicate(locator: str) -> str:
        """The WHERE clause that selects the rows a chunk committed."""
        kind, _, rest = locator.partition(":")
        if kind == "xid":
            return f"xmin = '{int(rest)}'::xid"
        if kind == "rowid":
            lo, _, hi = rest.partition(":")
            return f"rowid BETWEEN {int(lo)} AND {int(hi)}"
        if kind == "none":
            raise TargetError(
                "the rows of this chunk cannot be told apart in the SQLite target (a merge, a "
                "table WITHOUT ROWID, or an INTEGER PRIMARY KEY the job fills), so they cannot "
                "be checked one chunk at a time; verify needs a PostgreSQL target there",
                transient=False,
            )
        raise TargetError(f"unknown chunk locator {locator!r}")

    def read_rows(
        self,
        locator: str,
        columns: list[str],
        cur: Any = None,
        as_text: set[str] | None = None,
        session: tuple[tuple[str, str], ...] = (),
    ) -> pa.Table:
        """The rows a chunk committed (or, inside its transaction, is committing); columns in
        ``as_text`` are read as their text (what a staged cast was given), rendered under the
        source's ``session`` settings so that it compares with the source's text."""
        own = cur is None
        cur = cur or self.conn.cursor()
        d = self.ref.dialect
        try:
            if as_text and d != "sqlite":
                for setting in session_statements(session):
                    cur.execute(setting)
            cols = (
                ", ".join(
                    f"{quote_ident(c, d)}::text AS {quote_ident(c, d)}"
                    if as_text and c in as_text and d != "sqlite"
                    else quote_ident(c, d)
                    for c in columns
                )
                or "1"
            )
            cur.execute(
                f"SELECT {cols} FROM {self.ref.qualified()} WHERE {self.locator_predicate(locator)}"
            )
            table: pa.Table = cur.fetch_arrow_table()
            return table
        finally:
            if own:
                cur.close()
                self.conn.commit()

    def _check_written(
        self,
        cur: Any,
        chunk_id: int,
        locator: str,
        sent: list[pa.Schema],
        digest: Checksum,
        as_text: set[str] | None = None,
        session: tuple[tuple[str, str], ...] = (),
    ) -> None:
        names = sent[0].names if sent else []
        back = self.read_rows(locator, names, cur, as_text, session)
        found = Checksum()
        if sent and back.num_rows:
            found.add(align(back, sent[0]))
        if back.num_rows != digest.rows or found.digest != digest.digest:
            raise VerificationError(
                f"chunk {chunk_id}: the target holds {back.num_rows} rows (checksum "
                f"{found.digest}) where {digest.rows} were sent (checksum {digest.digest}); "
                "rolled back, to be retried",
                transient=True,
            )

    def _committed_one(self, job_id: str, chunk_id: int) -> set[int]:
        rows = self._read(
            f"SELECT chunk_id FROM {self.ref.qualified(LEDGER)} WHERE job_id = {_lit(job_id)} "
            f"AND chunk_id = {int(chunk_id)}"
        )  # _read ends the read transaction before a SQLite writer starts
        return {int(r[0]) for r in rows}
