"""CSV numbers read exactly: a value that its column's type would change is refused, naming it.

Types are inferred from a sample (the first MiB of the first files), and the rest of a file is
read into them. pyarrow's converter parses ``00501`` into an ``int64`` as 501, ``1e400`` into a
double as infinity and ``1234567890123456.78`` as 1234567890123456.8 without a word; the sample
rules (:func:`problem`, used by ``schema._careful``) keep such a column text, but a value after
the sample reaches the converter. So the reader reads the number columns whose values can be
changed as text and converts them here (:func:`exact_batch`): the same parse, then a check that
the number is the one the text writes.

What is checked, for a column whose type was **inferred**: an integer or a float written with a
leading zero (``007``: the type keeps 7), a float with more significant digits than a double
keeps (the double nearest to it prints differently), and a float beyond a double's range
(``1e400``: infinity; ``1e-400``: zero). For a float column typed by ``columns=`` only the range
is checked (rounding to the type's precision is what the type asks for; an overflow to infinity
is not). Decimal columns need no check (the converter refuses a value it would round), nor do
integers typed by ``columns=`` (``int64`` was asked for).

The values that need a closer look are found with vectorized kernels (a prefix, a length, the
parsed value); only those few are looked at one by one.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "Inexact",
    "checked_columns",
    "convert_column",
    "decimal_for",
    "exact_batch",
    "first_problem",
    "fix_for",
    "problem",
    "read_types",
]

_LEADING_ZERO = re.compile(r"^[+-]?0[0-9]")
_INFINITY = ("inf", "infinity")
#: blanks the CSV converter trims around a number (and only these)
_BLANKS = " \t"
#: the smallest positive normal double: below it a double keeps fewer digits
_TINY = 2.2250738585072014e-308


class Inexact(pa.ArrowInvalid):  # type: ignore[misc]
    """A value its column's type would change (or cannot hold): the column, the row (in the
    batch), the value's text and why."""

    def __init__(self, column: str, index: int, value: str, reason: str, typ: pa.DataType) -> None:
        self.column = column
        self.index = index
        self.value = value
        self.reason = reason
        self.type = typ
        super().__init__(f"column {column!r}: {value!r} {reason}")

    def message(self) -> str:
        """What is wrong and what to do, in words."""
        return f"column {self.column!r}: {self.value!r} {self.reason}; {fix_for(self.column, self.value)}"


def fix_for(column: str, value: str) -> str:
    """What to pass to read ``column`` (holding ``value``) exactly: text, or a decimal type
    that holds the value (not for a leading zero: a decimal drops it too)."""
    dec = None if _LEADING_ZERO.match(value.strip(_BLANKS)) else decimal_for(value)
    if dec:
        return (
            f"pass columns={{{column!r}: 'string'}} to keep the text, or "
            f"columns={{{column!r}: '{dec}'}} for an exact number"
        )
    return f"pass columns={{{column!r}: 'string'}} to keep the text"


def decimal_for(value: str) -> str | None:
    """A decimal128 type that holds ``value`` exactly (precision 38, its scale), or None."""
    try:
        d = Decimal(value.strip(_BLANKS))
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    scale = max(0, -exp)
    whole = max(1, d.adjusted() + 1)
    if scale > 38 or whole + scale > 38:
        return None
    return f"decimal128(38, {scale})"


def _is_float(typ: pa.DataType) -> bool:
    return bool(pa.types.is_floating(typ))


def checked_columns(
    types: dict[str, pa.DataType], forced: set[str] | dict[str, Any]
) -> dict[str, bool]:
    """Column -> whether its type was inferred (True) or given (False), for the columns read as
    text and converted here: inferred integers and floats, and every float."""
    out: dict[str, bool] = {}
    for name, typ in types.items():
        inferred = name not in forced
        if (pa.types.is_integer(typ) and inferred) or _is_float(typ):
            out[name] = inferred
    return out


def read_types(types: dict[str, pa.DataType], checked: dict[str, bool]) -> dict[str, pa.DataType]:
    """``types`` as the CSV reader is given them: the checked columns as text."""
    return {n: (pa.string() if n in checked else t) for n, t in types.items()}


def problem(text: str, value: Any, typ: pa.DataType, inferred: bool) -> str | None:
    """Why ``value`` (``text`` parsed as ``typ``) is not the number ``text`` writes, or None.

    ``inferred``: the type was inferred from a sample (every rule), not given (the range only).
    """
    t = text.strip(_BLANKS)
    if inferred and _LEADING_ZERO.match(t):
        return f"has a leading zero, which {typ} drops (it would be stored as {_shown(value)})"
    if not _is_float(typ) or value is None:
        return None
    v = float(value)
    if math.isinf(v):
        if t.lstrip("+-").lower() in _INFINITY:
            return None
        return (
            f"is beyond the range of {typ} (it would be stored as {'-' if v < 0 else ''}Infinity)"
        )
    if math.isnan(v) or not inferred:
        return None
    try:
        d = Decimal(t)
    except InvalidOperation:  # pragma: no cover - parsed as a float, so a decimal
        return None
    if d == Decimal(repr(v)):
        return None
    if v == 0.0 or abs(v) < _TINY:
        return f"is too small for {typ} (it would be stored as {v!r})"
    return f"has more significant digits than {typ} keeps (it would be stored as {v!r})"


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _mask(array: Any) -> pa.Array:
    return pc.fill_null(array, False)


def _candidates(text: pa.Array, out: pa.Array, typ: pa.DataType, inferred: bool) -> list[int]:
    """The rows of ``text`` (trimmed, parsed as ``out``) that :func:`problem` must look at:
    a superset of those it refuses, found with kernels; sorted."""
    found: list[pa.Array] = []
    length = pc.binary_length(text)

    def narrowed(mask: pa.Array, pattern: str) -> None:
        at = pc.indices_nonzero(_mask(mask))
        if len(at):
            keep = pc.indices_nonzero(_mask(pc.match_substring_regex(text.take(at), pattern)))
            if len(keep):
                found.append(at.take(keep))

    if inferred:
        zero = pc.or_(
            pc.and_(pc.starts_with(text, "0"), pc.greater(length, 1)),
            pc.and_(
                pc.or_(pc.starts_with(text, "-0"), pc.starts_with(text, "+0")),
                pc.greater(length, 2),
            ),
        )
        narrowed(zero, r"^[+-]?0[0-9]")
    if _is_float(typ):
        found.append(pc.indices_nonzero(_mask(pc.is_inf(out))))
        if inferred:
            # 16 or more significant digits, unless the text is the double's own shortest form
            at = pc.indices_nonzero(_mask(pc.greater_equal(length, 16)))
            if len(at):
                long = text.take(at)
                many = _mask(pc.match_substring_regex(long, r"[1-9](?:\.?[0-9]){15}"))
                shortest = out.take(at).cast(pa.string())
                differs = pc.and_(many, pc.invert(_mask(pc.equal(long, shortest))))
                found.append(at.take(pc.indices_nonzero(_mask(differs))))
            # below the normal range (zero included): a nonzero digit in the text
            narrowed(pc.less(pc.abs(out), _TINY), r"^[+-]?[0-9]*\.?[0-9]*[1-9]")
    rows: set[int] = set()
    for a in found:
        rows.update(a.to_pylist())
    return sorted(rows)


def convert_column(column: pa.Array, typ: pa.DataType, inferred: bool, name: str) -> pa.Array:
    """A text column read by the CSV reader as ``typ``, as the CSV converter parses it (blanks
    trimmed); :class:`Inexact` for the first value that does not parse or that the type would
    change (see the module)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    text = column
    try:  # a number with a blank around it does not cast: then none has one
        out = text.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        text = pc.ascii_trim(column, _BLANKS)
        try:
            out = text.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            i = _first_failing(text, typ)
            raise Inexact(name, i, column[i].as_py(), f"is not {typ}", typ) from None
    found = first_problem(text, out, typ, inferred)
    if found is not None:
        raise Inexact(name, found[0], column[found[0]].as_py(), found[1], typ)
    return out


def first_problem(
    text: pa.Array, out: pa.Array, typ: pa.DataType, inferred: bool
) -> tuple[int, str] | None:
    """The first row of ``text`` (blanks trimmed) whose value parsed as ``typ`` (``out``) is
    not the number the text writes, and why (:func:`problem`); None when every one is."""
    if len(text) == 0:
        return None
    for i in _candidates(text, out, typ, inferred):
        why = problem(text[i].as_py(), out[i].as_py(), typ, inferred)
        if why:
            return i, why
    return None


def _first_failing(text: pa.Array, typ: pa.DataType) -> int:
    """The first row whose text does not cast to ``typ`` (halving)."""
    start, end = 0, len(text)
    while end - start > 1:
        mid = (start + end) // 2
        try:
            text.slice(start, mid - start).cast(typ)
            start = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            end = mid
    return start


def exact_batch(
    batch: pa.RecordBatch, types: dict[str, pa.DataType], checked: dict[str, bool]
) -> pa.RecordBatch:
    """``batch`` (read with :func:`read_types`) with its checked columns converted to their
    types; :class:`Inexact` for a value that does not parse or would change."""
    if not checked:
        return batch
    arrays = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if name in checked and column.type != types[name]:
            column = convert_column(column, types[name], checked[name], name)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
