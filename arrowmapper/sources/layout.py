"""How the source's columns are read, applied around every chunk query (:class:`SourceLayout`).

Some values of a type connectorx reads natively have no Arrow twin: PostgreSQL's
``infinity``/``-infinity`` dates and timestamps, dates past the year 262142 and ``time '24:00'``.
For a source whose server can refuse them (:attr:`.dialects.SourceDialect.guards`) the chunk
query guards such columns (:attr:`SourceColumn.guard`): a ``CASE`` that makes the *server* fail
on such a value with a marker naming the column and the value, at no extra scan;
:meth:`SourceLayout.stream` turns that failure into a terminal :class:`SourceError` that says
what to do. ``NaN``/``Infinity`` in a ``numeric(p,s)`` cannot be a decimal either and are
refused the same way by :meth:`SourceLayout.decode`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from ..errors import SourceError
from ..sql import quote_ident
from .dialects import source_dialect

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
        d = source_dialect(self.dialect)
        items = []
        for i, c in enumerate(self.columns):
            q = quote_ident(c.name, self.dialect)
            if c.guard and d.guards and not c.as_text:
                items.append(f"{_guarded(q, c.guard, i)} AS {q}")
            elif not c.as_text:
                items.append(q)
            else:
                items.append(f"{d.text(q)} AS {q}")
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
        if pa.types.is_timestamp(want) and want.tz is not None:
            value = _first_unparsed(column, want)
            return SourceError(
                f"column {name!r}{declared} holds {value!r}, which names no instant: a "
                "timestamp with time zone needs an explicit zone offset (e.g. "
                "2024-03-02T10:34:56+00:00, or Z); map it in the query (e.g. "
                f"{_sql_name(name)} || '+00:00' if the values are UTC) or select it as text",
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
