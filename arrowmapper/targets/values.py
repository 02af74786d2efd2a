"""Values a target would change or refuse, and the converters that make them exact: uuid,
JSON and float4 columns, and the SQLite checks (NaN, years outside 0000-9999, decimals a
NUMERIC-affinity column would round). Each raises a terminal :class:`TargetError` naming the
column and, where one is to blame, the value."""

from __future__ import annotations

import re

import pyarrow as pa

from ..errors import TargetError


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


def to_decimal_text(column: pa.Array) -> pa.Array:
    """Decimals as their exact text in plain notation with every scale digit
    (``-0.0000000001``, ``0.00``): Arrow's own cast writes ``-1E-10`` and ``0E-10``."""
    import polars as pl

    t = column.type
    if pa.types.is_decimal256(t) and t.precision <= 38:
        column = column.cast(pa.decimal128(t.precision, t.scale))  # Polars has no decimal256
    elif pa.types.is_decimal256(t):  # wider than any Polars decimal: Python's, value by value
        text = [None if v is None else format(v, "f") for v in column.to_pylist()]
        return pa.array(text, pa.string())
    out: pa.Array = pl.Series(column).cast(pl.String).to_arrow()
    return out.cast(pa.string())


def to_instant_text(column: pa.Array) -> pa.Array:
    """Zoned timestamps as the instant's UTC ISO-8601 text with an explicit offset,
    microseconds always written: ``2024-03-02T10:34:56.123456+00:00``.

    How a SQLite target stores a ``timestamptz``: the same text as the driver writes for a
    timestamp without a zone, plus the offset that says the value is an instant (the driver
    itself drops it). It is what Python's ``datetime.isoformat()`` gives for a UTC datetime;
    SQLite's date functions, ``datetime.fromisoformat``, Arrow, Polars and PostgreSQL read it
    back as the same instant, and with one width and one zone text order is time order."""
    import pyarrow.compute as pc

    # the UTC wall time through Arrow's own formatter ("2024-03-02 10:34:56.123456", six
    # fraction digits always): 5x faster than pc.strftime
    wall = column.cast(pa.timestamp("us", "UTC"), safe=True).cast(pa.timestamp("us"))
    text = pc.utf8_replace_slice(wall.cast(pa.string()), 10, 11, "T")
    return pc.binary_join_element_wise(text, pa.scalar("+00:00"), "")


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


#: SQLite keeps the first 15 significant digits of a number it converts from text (NUMERIC
#: affinity); a decimal with more is refused rather than rounded
_SQLITE_DIGITS = 15
_NUMBER_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def check_sqlite_numeric(column: pa.Array, name: str) -> None:
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
