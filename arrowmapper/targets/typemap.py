"""The target side of the type preflight: per target column, the Arrow type a batch is cast to
or a staged server-side cast (see :mod:`arrowmapper.sources.sqltypes` for the source side)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from ..errors import TargetError
from ..sources import decimal_type, numeric_typmod

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
        return pa.schema([pa.field(c.name, c.arrow) for c in self.columns])

    @property
    def staged(self) -> dict[str, str]:
        return {c.name: c.sql_type for c in self.columns if c.staged}

    @property
    def needs_stage(self) -> bool:
        return bool(self.merge_key) or any(c.staged for c in self.columns)


_STRINGISH = ("S", "E")  # PostgreSQL type categories a string is COPYed into as is


def target_layout(
    dialect: str,
    adbc_schema: pa.Schema,
    pg_columns: list[tuple[str, ...]] | None,
    out_schema: pa.Schema,
    storage: pa.Schema,
) -> WriteLayout:
    """Decide, for each target column, the Arrow type batches are cast to, or a staged cast.

    ``out_schema`` is what the transform produces; ``storage`` the same with the types a
    target stores (string for large_string, ...). Columns the output lacks keep the target's
    default. Raises :class:`TargetError` for a column with no exact path.
    """
    if dialect != "postgresql" or pg_columns is None:
        return WriteLayout(tuple(TargetColumn(f.name, "", f.type) for f in adbc_schema))
    out_types = {f.name: storage.field(f.name).type for f in out_schema}
    cols = []
    for name, sql_type, base, typname, typtype, category, _ in pg_columns:
        category = "E" if typtype == "e" else category
        adbc = adbc_schema.field(name).type if name in adbc_schema.names else pa.string()
        have = out_types.get(name)
        arrow: pa.DataType = adbc
        staged = False
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


def to_uuid(column: pa.Array, name: str) -> pa.Array:
    """Strings ('da1b...-...') or 16-byte binaries as ``arrow.uuid``."""
    if isinstance(column.type, pa.UuidType):
        return column
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        import polars as pl

        series = pl.Series(pa.array(column).cast(pa.large_string()))
        hexed = series.str.replace_all("-", "", literal=True).str.strip_chars("{}")
        bad = hexed.is_not_null() & (hexed.str.len_bytes() != 32)
        if bad.any():
            raise TargetError(
                f"column {name!r}: {series.filter(bad)[0]!r} is not a uuid",
                transient=False,
                kind="data",
            )
        try:
            raw = hexed.str.decode("hex").to_arrow()
        except Exception:
            raise TargetError(
                f"column {name!r}: a value is not a uuid", transient=False, kind="data"
            ) from None
        column = raw.cast(pa.binary(16))
    elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        column = column.cast(pa.binary(16))
    if not pa.types.is_fixed_size_binary(column.type):
        raise TargetError(
            f"column {name!r}: cannot store {column.type} as a uuid", transient=False, kind="data"
        )
    return pa.ExtensionArray.from_storage(pa.uuid(), column)


def to_json(column: pa.Array, name: str) -> pa.Array:
    """Strings as ``arrow.json`` (the server checks they are JSON)."""
    if isinstance(column.type, pa.JsonType):
        return column
    if not (
        pa.types.is_string(column.type)
        or pa.types.is_large_string(column.type)
        or pa.types.is_string_view(column.type)
    ):
        raise TargetError(
            f"column {name!r}: cannot store {column.type} as JSON; make it a JSON string in "
            "the transform",
            transient=False,
        )
    return pa.ExtensionArray.from_storage(pa.json_(), column.cast(pa.string()))


# --------------------------------------------------------------------------- values a target refuses

_FLOAT4_MAX = 3.4028234663852886e38


def _shown(value: pa.Array) -> str:
    """One value as text, also where Python's datetime cannot hold it (year 0, 262142)."""
    if pa.types.is_temporal(value.type):
        import polars as pl

        return str(pl.Series(value).cast(pl.String)[0])
    return repr(value[0].as_py())


def to_float32(column: pa.Array, name: str) -> pa.Array:
    """``column`` (integers, decimals or floats) as float32, refusing what float4 cannot hold.

    Arrow's "safe" float64 -> float32 cast rounds 1e39 to infinity and 1e-50 to zero; PostgreSQL
    refuses both ("value out of range: overflow/underflow") and so does this. NaN and +-infinity
    stay exactly what they are; values between float32 steps round to the nearest, as
    PostgreSQL's own float8 -> float4 cast does.
    """
    import pyarrow.compute as pc

    if pa.types.is_decimal(column.type):
        # through the decimal's text, parsed to the nearest float (Arrow's own decimal cast
        # rounds twice: 393817424.487548 became 393817408, PostgreSQL says 393817440)
        column = column.cast(pa.string())
    narrow = column.cast(pa.float32(), safe=True)
    wide = column if pa.types.is_float64(column.type) else column.cast(pa.float64(), safe=False)
    over = pc.and_(pc.is_inf(narrow), pc.invert(pc.is_inf(wide)))
    under = pc.and_(pc.equal(narrow, 0.0), pc.not_equal(wide, 0.0))
    bad = pc.fill_null(pc.or_(over, under), False)
    if pc.any(bad).as_py():
        value = _shown(column.filter(bad))
        raise TargetError(
            f"column {name!r} holds {value}, outside what the target's real (float4) can hold "
            f"(magnitudes from 1.4e-45 to {_FLOAT4_MAX:.8g}); PostgreSQL refuses it too. Change "
            "the target column to double precision, or map the value in the query or transform",
            transient=False,
            kind="data",
        )
    return narrow


# what the ADBC SQLite driver writes exactly: ISO dates and times of the years 0000-9999 (it
# fails on later years and writes garbage for earlier ones)
_SQLITE_DAYS = (-719528, 2932896)  # 0000-01-01, 9999-12-31
_SQLITE_US = (-62167219200000000, 253402300799999999)


def check_sqlite_values(column: pa.Array, name: str, stored: pa.DataType) -> None:
    """Refuse values a SQLite target would not hold exactly: NaN stored as a REAL (SQLite
    makes it NULL) and dates or timestamps outside the years 0000-9999 (``column``: the
    values before they are cast to ``stored``, the type they are written as)."""
    import pyarrow.compute as pc

    t = column.type
    if pa.types.is_floating(t):
        if not pa.types.is_floating(stored):
            return
        bad = pc.fill_null(pc.is_nan(column), False)
        if pc.any(bad).as_py():
            raise TargetError(
                f"column {name!r} holds NaN, which SQLite cannot store (it would become NULL); "
                f"map it in the query or transform (e.g. pl.col({name!r}).fill_nan(None) to "
                "store NULL on purpose), or use a PostgreSQL target",
                transient=False,
                kind="data",
            )
        return
    if pa.types.is_date32(t):
        lo, hi, raw = *_SQLITE_DAYS, column.cast(pa.int32())
    elif pa.types.is_timestamp(t):
        per_us = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0}[t.unit]
        raw = column.cast(pa.int64())
        if per_us:
            lo, hi = _SQLITE_US[0] // per_us, _SQLITE_US[1] // per_us
        else:
            return  # nanoseconds: int64 spans 1677-2262, inside the range
    else:
        return
    bad = pc.fill_null(pc.or_(pc.less(raw, lo), pc.greater(raw, hi)), False)
    if pc.any(bad).as_py():
        raise TargetError(
            f"column {name!r} holds {_shown(column.filter(bad))}, outside the years 0000-9999 "
            "a SQLite target stores as text; map it in the query or transform, or use a "
            "PostgreSQL target",
            transient=False,
            kind="data",
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
