"""The type map: Arrow types <-> each target's column types, the storage schema a table is
created with, :func:`conform` (a batch cast to the table's exact types, safely) and the target
side of the type preflight (:func:`target_layout`, :func:`narrowing`; the source side is
:mod:`arrowmapper.sources.sqltypes`). What differs per system is read from :mod:`.dialects`::

    >>> sql_type_name(pa.int64(), "sqlite")
    'INTEGER'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import pyarrow as pa

from ..errors import TargetError
from ..sources import decimal_type, numeric_typmod
from .dialects import Dialect, dialect_of
from .values import (
    check_sqlite_numeric,
    check_sqlite_values,
    to_decimal_text,
    to_float32,
    to_instant_text,
    to_json,
    to_uuid,
)


class AnyType(pa.ExtensionType):  # type: ignore[misc]
    """Marks a SQLite column without a declared type (it stores whatever arrives), or
    ``numeric`` one with NUMERIC affinity (it turns number-like text into a number)."""

    def __init__(self, numeric: bool = False) -> None:
        self.numeric = numeric
        super().__init__(pa.null(), "arrowmapper.numeric" if numeric else "arrowmapper.any")

    def __arrow_ext_serialize__(self) -> bytes:
        return b"numeric" if self.numeric else b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> AnyType:
        return cls(serialized == b"numeric")


#: a column without a declared type, and one with NUMERIC affinity (see :class:`AnyType`)
ANY = AnyType()
NUMERIC_AFFINITY = AnyType(numeric=True)


def _storage_type(t: pa.DataType, d: Dialect, column: str) -> pa.DataType:
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
        return _storage_type(t.value_type, d, column)
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
        if not d.stores_lists:
            raise TargetError(
                f"column {column!r} is a list ({t}); {d.label} targets cannot store lists: "
                "cast it to a string in the transform (e.g. pl.col(c).cast(pl.String))"
            )
        return pa.list_(_storage_type(t.value_type, d, column))
    if d.text_types and (
        pa.types.is_decimal(t)
        or pa.types.is_time(t)
        or pa.types.is_duration(t)
        or pa.types.is_interval(t)
    ):
        return pa.string()  # exact text (the driver refuses these types)
    if pa.types.is_struct(t) or pa.types.is_map(t):
        raise TargetError(f"column {column!r} is a {t}; struct and map columns are not supported")
    return t


def sql_type_name(t: pa.DataType, dialect: str) -> str:
    """The column type a new table gets for an Arrow type (ADBC's mapping)."""
    d = dialect_of(dialect)
    if d.precise_types:
        if pa.types.is_timestamp(t):
            return "timestamptz" if t.tz else "timestamp"
        if pa.types.is_list(t):
            return sql_type_name(t.value_type, dialect) + "[]"
        if pa.types.is_decimal(t):
            return f"numeric({t.precision},{t.scale})"
    elif pa.types.is_decimal(t) and d.decimal_name is not None:
        return d.decimal_name(t.precision, t.scale)
    found = (name for name, checks in d.type_names.items() if any(c(t) for c in checks))
    return next(found, d.fallback_type or str(t))


def declared_columns(schema: pa.Schema, dialect: str) -> list[tuple[str, str]]:
    """(name, SQL type) of each column a new table gets where the type is named from the
    column's Arrow type (SQLite): the type the values *mean* (``DECIMAL(12,2)``, ``DATE``,
    ``TIMESTAMP WITH TIME ZONE``, ``BOOLEAN``), not the text some are stored as, so that SQLite
    tools and arrowmapper's SQLite source read them back as what they are."""
    d = dialect_of(dialect)
    out = []
    for f in schema:
        t = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        meaning = (
            pa.types.is_timestamp(t)
            or pa.types.is_decimal(t)
            or pa.types.is_date(t)
            or pa.types.is_time(t)
        )
        out.append((f.name, sql_type_name(t if meaning else _storage_type(t, d, f.name), dialect)))
    return out


def storage_schema(schema: pa.Schema, dialect: str) -> pa.Schema:
    """``schema`` with the types a ``dialect`` table is created and ingested with."""
    d = dialect_of(dialect)
    return pa.schema([pa.field(f.name, _storage_type(f.type, d, f.name)) for f in schema])


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


def _castable(src: pa.DataType, dst: pa.DataType, d: Dialect) -> bool:
    a, b = _family(src), _family(dst)
    if a == b or a == "null":
        return True
    if d.loose_columns and (b == "string" or (a == "bool" and b == "int")):
        return True  # no booleans, and text columns take any value as text
    return b in _SAFE_CASTS.get(a, set())


def conform(batch: pa.RecordBatch, target: pa.Schema, dialect: str) -> pa.RecordBatch:
    """Cast a batch to the target table's exact types (by column name), safely.

    Safely means: a cast that would change a value is refused with a terminal
    :class:`TargetError` naming the column (and the value, where one is to blame): integers a
    float cannot hold exactly, floats beyond float4's range (Arrow's own "safe" cast turns them
    into infinity), and, for SQLite, NaN and dates outside the years 0000-9999.
    """
    d = dialect_of(dialect)
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
            isinstance(want, AnyType)
            and want.numeric
            and (pa.types.is_decimal(column.type) or _family(column.type) == "string")
        ):
            check_sqlite_numeric(column, name)
        if isinstance(want, pa.BaseExtensionType):
            want = _storage_type(column.type, d, name)  # e.g. numeric: the driver decides
        if d.checks_values:
            check_sqlite_values(column, name, want)
        zoned = pa.types.is_timestamp(column.type) and column.type.tz
        if d.instant_text and zoned and _family(want) == "string":
            # a text column gets the text a typed one does; a timestamp column keeps the type
            # here (checksums compare instants), the target writes it as text (driver_batch)
            column = to_instant_text(column)
        if d.text_types and pa.types.is_decimal(column.type) and _family(want) == "string":
            column = to_decimal_text(column)
        if column.type != want:
            if not _castable(column.type, want, d):
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


# --------------------------------------------------------------------------- the target side


@dataclass(frozen=True)
class TargetColumn:
    """One target column: its SQL type and the Arrow type batches are cast to for it."""

    name: str
    sql_type: str
    arrow: pa.DataType
    staged: bool = False  # exact text the server casts (INSERT ... SELECT col::sql_type)


@dataclass(frozen=True)
class WriteLayout:
    """How chunks are written: per-column types, staged casts and the merge key."""

    columns: tuple[TargetColumn, ...]
    merge_key: tuple[str, ...] = ()
    session: tuple[tuple[str, str], ...] = ()  # the source's rendering (SourceLayout.session)

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema batches are cast to (staged columns: their text)."""
        return pa.schema([pa.field(c.name, c.arrow) for c in self.columns])

    @property
    def staged(self) -> dict[str, str]:
        """Column -> SQL type, for the columns the server casts from text."""
        return {c.name: c.sql_type for c in self.columns if c.staged}

    @property
    def needs_stage(self) -> bool:
        """Whether chunks go through a temporary table (a staged cast or a merge)."""
        return bool(self.merge_key) or any(c.staged for c in self.columns)


_STRINGISH = ("S", "E")  # PostgreSQL type categories a string is COPYed into as is


class CatalogColumn(NamedTuple):
    """One column of a PostgreSQL table as its catalog describes it (``pg_columns_sql``)."""

    name: str
    sql_type: str  # format_type of the column
    base: str  # a domain's underlying type (the column's own type otherwise)
    typname: str  # the base type's name
    typtype: str  # the base type's kind (b base, e enum, r range, ...)
    category: str  # the base type's typcategory
    own_kind: str  # the column type's own typtype (d: a domain)


def target_layout(
    dialect: str,
    adbc_schema: pa.Schema,
    pg_columns: list[CatalogColumn] | None,
    out_schema: pa.Schema,
    storage: pa.Schema,
) -> WriteLayout:
    """Decide, for each target column, the Arrow type batches are cast to, or a staged cast.

    ``out_schema`` is what the transform produces; ``storage`` the same with the types a
    target stores (string for large_string, ...). Columns the output lacks keep the target's
    default. Raises :class:`TargetError` for a column with no exact path.
    """
    if not dialect_of(dialect).describes_columns or pg_columns is None:
        return WriteLayout(tuple(TargetColumn(f.name, "", f.type) for f in adbc_schema))
    out_types = {f.name: storage.field(f.name).type for f in out_schema}
    cols = []
    for name, sql_type, base, typname, typtype, category, _ in pg_columns:
        category = "E" if typtype == "e" else category
        adbc = adbc_schema.field(name).type if name in adbc_schema.names else pa.string()
        have = out_types.get(name)
        arrow: pa.DataType = adbc
        staged = False
        if typname == "numeric" and have is not None and pa.types.is_floating(have):
            raise TargetError(
                f"column {name!r}: the target's {sql_type} holds exact decimals, and the "
                f"column is {have} (binary floating point: 0.1 is not exactly 0.1), so a value "
                "could change; read it as exact text or a decimal -- a file source: "
                f"columns={{{name!r}: 'text'}} (the server parses the digits) or a decimal128 "
                "type; a query: select it as numeric or text -- or make the target column "
                "double precision",
                transient=False,
            )
        if typname == "numeric":
            mod = numeric_typmod(base)
            dec = decimal_type(*mod) if mod else None
            if dec is not None:
                arrow = dec
            elif have is not None and pa.types.is_decimal(have):
                arrow = have  # unconstrained numeric from a decimal: ADBC writes the value
            else:
                arrow, staged = pa.string(), True
        elif typname == "uuid":
            arrow = pa.uuid()
        elif typname in ("json", "jsonb"):
            arrow = pa.json_()
        elif category in _STRINGISH:
            arrow = pa.string()
        elif have is not None and pa.types.is_string(have) and _text_castable(adbc, category):
            arrow, staged = pa.string(), True
        elif isinstance(adbc, pa.BaseExtensionType) or category == "A" or typname == "money":
            if have is None:
                arrow = pa.string()
            else:
                raise TargetError(
                    f"column {name!r}: the target's {sql_type} cannot be written from {have}; "
                    f"select it as text in the query or transform (e.g. pl.col({name!r})"
                    ".cast(pl.String)) and the server will cast it",
                    transient=False,
                )
        cols.append(TargetColumn(name, sql_type, arrow, staged))
    return WriteLayout(tuple(cols))


def _text_castable(adbc: pa.DataType, category: str) -> bool:
    """Target types a string reaches through a server-side cast, not an Arrow cast: those
    Arrow cannot carry exactly (interval, arrays, timetz, money, inet, geometric, ranges...),
    and dates and times given as text (the server parses ``infinity``, ``24:00``, BC years)."""
    return (
        isinstance(adbc, pa.BaseExtensionType)
        or pa.types.is_interval(adbc)
        or pa.types.is_list(adbc)
        or category in ("A", "D", "T", "G", "I", "R", "U", "V", "X")
        or (category == "N" and pa.types.is_int64(adbc))  # money
    )


# --------------------------------------------------------------------------- narrower targets

_FRACTIONAL = re.compile(r"^(timestamp|time|interval)\b([^(]*?)(?:\((\d+)\))?(?P<rest>[^()]*)$")
_LENGTH = re.compile(r"^(character varying|character|bit varying|bit)(?:\((\d+)\))?$")
_NUMERIC_MOD = re.compile(r"^numeric(?:\((\d+),(\d+)\))?$")
_INTERVAL_FIELDS = re.compile(r"\b(year|month|day|hour|minute|second)\b")


def narrowing(source_type: str | None, target_type: str, staged: bool) -> str | None:
    """Why a target column type keeps less of a value than the source's type, or None.

    A value written into a narrower type is changed without an error: ``timestamp(0)`` and
    ``time(0)`` round fractional seconds, ``interval hour to minute`` drops seconds; through a
    server-side cast (``staged``: arrays and other text-read types) ``varchar(3)``, ``bit(3)``
    and ``numeric(5,2)`` also cut or round. Types that differ otherwise are judged elsewhere.
    """
    if not source_type:
        return None
    src, dst = source_type.strip(), target_type.strip()
    if src.endswith("[]") != dst.endswith("[]"):
        return None
    src, dst = src.removesuffix("[]"), dst.removesuffix("[]")
    if src == "text":
        src = "character varying"  # unbounded
    fs, fd = _FRACTIONAL.match(src), _FRACTIONAL.match(dst)
    if fs and fd and fs.group(1) == fd.group(1):
        keep_s = int(fs.group(3)) if fs.group(3) else 6
        keep_d = int(fd.group(3)) if fd.group(3) else 6
        if keep_d < keep_s:
            return f"keeps {keep_d} fractional digits of a second where the source has {keep_s}"
        if fs.group(1) == "interval":
            f_s = _INTERVAL_FIELDS.findall(fs.group(2) + fs.group("rest"))
            f_d = _INTERVAL_FIELDS.findall(fd.group(2) + fd.group("rest"))
            if f_d and f_d != f_s:
                return f"keeps only the fields {' to '.join(f_d)} of an interval"
        return None
    if not staged:
        return None  # COPY checks lengths and scales itself (an error, not a cut)
    ls, ld = _LENGTH.match(src), _LENGTH.match(dst)
    same_kind = ls and ld and ld.group(2) and ls.group(1).split()[0] == ld.group(1).split()[0]
    if (
        ls
        and ld
        and same_kind
        and (
            not ls.group(2)
            or int(ld.group(2)) < int(ls.group(2))
            or (ld.group(1) == "bit" and ls.group(1) == "bit varying")
        )
    ):
        return f"holds {ld.group(2)} characters or bits, and a cast cuts longer values"
    ns, nd = _NUMERIC_MOD.match(src), _NUMERIC_MOD.match(dst)
    if (
        ns
        and nd
        and nd.group(2) is not None
        and (ns.group(2) is None or int(nd.group(2)) < int(ns.group(2)))
    ):
        return f"keeps {nd.group(2)} decimal places, and a cast rounds the rest"
    return None
