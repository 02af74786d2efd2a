"""A run of a recurring job (``name=``, ``cursor=``): which rows it loads.

Before planning, :func:`cursor_run` reads the name's mark from the target (none: a full load)
and the source's current ``MAX(cursor)`` as its exact text (the new mark), and bounds the query
to ``cursor > old AND cursor <= new``; the planner then cuts that query like any other. Rows
whose cursor is above the new mark when the run starts wait for the next run; rows with a NULL
cursor are never loaded (a note counts them). A resumed run loads the bounds it was claimed
with. The claim itself (:meth:`~arrowmapper.targets.marks.Marks.claim_run`) and the mark's
move (in the last chunk's transaction) are the target's.

Values are compared by the source server, as literals of the cursor's kind written from the
server's own text: integers and decimals as bare numbers, dates and timestamps as the
dialect's typed literals (microseconds kept), text as a string literal (the server's order).
"""

from __future__ import annotations

import difflib
import re
import time
from dataclasses import dataclass

import pyarrow as pa

from ..config import Endpoint, JobConfig
from ..errors import ConfigError
from ..identity import source_identity
from ..sources import SourceLayout, open_source, source_dialect
from ..sources.reader import rows_of
from ..sources.render import source_sql
from ..sql import quote_ident, string_literal
from ..targets import JobRecord, TableRef, open_target
from ..targets.marks import (
    MarkRecord,
    RunClaim,
    changed_message,
    definition_changes,
    unfinished_message,
)

KINDS = ("integer", "numeric", "timestamp", "timestamptz", "date", "text")
_NUMBER = {"integer": re.compile(r"-?\d+"), "numeric": re.compile(r"-?\d+(\.\d*)?")}


@dataclass(frozen=True)
class CursorRun:
    """What one run of a named job loads: the bounded query and its claim on the name."""

    job_id: str
    query: str  # the job's query bounded to (run_from, run_to]; the plan cuts this one
    claim: RunClaim | None  # None: the run was claimed before (a resume)
    notes: tuple[str, ...] = ()


def named_job_id(name: str, taken: set[str] | None = None) -> str:
    """A job id for a run of ``name``: the name and the UTC time (``orders-sync-20261202T013000Z``),
    with ``-2``, ``-3``, ... when an id of that second is ``taken``."""
    base = f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    taken = taken or set()
    n, job_id = 1, base
    while job_id in taken:
        n += 1
        job_id = f"{base}-{n}"
    return job_id


def cursor_kind(schema: pa.Schema, layout: SourceLayout | None, cursor: str) -> str:
    """The kind of the cursor column in the query's ``schema``; a ConfigError naming the column
    and the fix when the query lacks it or its type cannot be a cursor."""
    if cursor not in schema.names:
        close = difflib.get_close_matches(cursor, schema.names, n=1)
        folded = [n for n in schema.names if n.lower() == cursor.lower()]
        hint = folded or close
        raise ConfigError(
            f"cursor column {cursor!r} is not a column of the query (its columns: "
            f"{', '.join(schema.names)}){f'; did you mean {hint[0]!r}?' if hint else ''}: "
            "select it in the query, or pass the column's name as the query returns it"
        )
    t = schema.field(cursor).type
    column = layout.column(cursor) if layout is not None else None
    declared = (column.sql_type or "").lower() if column is not None else ""
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_decimal(t) or declared.startswith(("numeric", "decimal")):
        return "numeric"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    raise ConfigError(
        f"cursor column {cursor!r} is {t}; a cursor must be an integer, numeric, date, "
        "timestamp or text column (a float's text is not exact): cast it in the query, or pick "
        "another column"
    )


def literal(kind: str, text: str, dialect: str) -> str:
    """The source literal of a cursor value of ``kind`` given as the server's ``text``."""
    d = source_dialect(dialect)
    pattern = _NUMBER.get(kind)
    if pattern is not None:
        if not pattern.fullmatch(text):
            raise ConfigError(
                f"the cursor value {text!r} is not a plain {kind} (NaN or infinity?), so it "
                "cannot bound a run: filter such rows out in the query"
            )
        return text
    template = {"date": d.date, "timestamp": d.timestamp, "timestamptz": d.timestamptz}.get(kind)
    if template is not None:
        return template.format(text.replace("'", "''"))
    return string_literal(text, dialect)


def bounded_query(
    query: str, dialect: str, cursor: str, kind: str, lo: str | None, hi: str | None
) -> str:
    """``query`` restricted to ``lo < cursor <= hi`` (no ``lo``: no lower bound; no ``hi``:
    no rows), NULL cursors left out."""
    q = quote_ident(cursor, dialect)
    if hi is None:
        where = "1 = 0"
    else:
        where = f"{q} <= {literal(kind, hi, dialect)}"
        if lo is not None:
            where = f"{q} > {literal(kind, lo, dialect)} AND {where}"
    return f"SELECT * FROM {source_sql(query, dialect)} WHERE {where}"


def _source_max(src: Endpoint, query: str, cursor: str) -> tuple[str | None, int]:
    """The cursor's highest value as the server's exact text (None: no non-NULL value) and
    how many rows have a NULL cursor, in one scan."""
    q = quote_ident(cursor, src.dialect)
    text = source_dialect(src.dialect).text(f"MAX({q})")
    # never a NULL column: a reader that types a result by its values (SQLite) cannot type one
    row = rows_of(
        src,
        f"SELECT COALESCE({text}, '') AS m, COUNT({q}) AS n, COUNT(*) - COUNT({q}) AS nulls "
        f"FROM {source_sql(query, src.dialect)}",
    )[0]
    return (str(row["m"]) if int(row["n"] or 0) else None), int(row["nulls"] or 0)


def cursor_run(
    c: JobConfig, src: Endpoint, dst: Endpoint, ref: TableRef, display: str
) -> CursorRun:
    """The job id and bounded query of this run of ``c.name`` (``display``: the table the
    chunks load, as the marks table stores it). Refuses, before anything is written, a run
    whose name has an unfinished run, whose definition changed (without ``reset``), or whose
    cursor is missing from the query or changed type."""
    assert c.name is not None
    tgt = open_target(dst, ref)
    try:
        rec = tgt.mark_record(c.name)
        record = tgt.job_record(c.job_id) if c.job_id else None
        job_id = c.job_id or named_job_id(c.name, tgt.job_ids(c.name + "-"))
        if not c.cursor:
            return CursorRun(job_id, c.query, None)
        busy = rec is not None and rec.run_job != job_id and tgt.unfinished_run(rec)
        return _run(c, src, rec, record, job_id, display, busy)
    finally:
        tgt.close()


def _run(
    c: JobConfig,
    src: Endpoint,
    rec: MarkRecord | None,
    record: JobRecord | None,
    job_id: str,
    display: str,
    busy: bool,
) -> CursorRun:
    assert c.name is not None and c.cursor is not None
    definition = {
        "source": source_identity(src),
        "query": c.query.strip(),
        "target_table": display,
        "cursor_column": c.cursor,
    }
    if rec is not None and not c.reset:
        changed = definition_changes(rec, definition)
        if changed:
            raise ConfigError(changed_message(c.name, changed))
    source = open_source(src)
    try:
        layout = source.describe(c.query)
        schema = source.probe(c.query, layout).schema()
    finally:
        source.close()
    kind = cursor_kind(schema, layout, c.cursor)
    if c.resume and record is not None:
        if rec is None or rec.run_job != job_id:
            stored = (record.fingerprint or {}).get("query")
            if stored is None:
                raise ConfigError(
                    f"cannot resume job {job_id!r}: it is not the last run of name {c.name!r}, "
                    "whose bounds the marks table keeps; run the name again without resume"
                )
            return CursorRun(job_id, stored, None)
        if rec.run_type not in (None, kind):
            raise _type_changed(c.cursor, rec.run_type, kind)
        query = bounded_query(c.query, src.dialect, c.cursor, kind, rec.run_from, rec.run_to)
        return CursorRun(job_id, query, None)
    notes: list[str] = []
    old = None if rec is None or c.reset else rec.mark
    if rec is not None and not c.reset:
        if rec.mark_type not in (None, kind):
            raise _type_changed(c.cursor, rec.mark_type, kind)
        if busy:
            raise ConfigError(unfinished_message(c.name, str(rec.run_job)))
    new, nulls = _source_max(src, c.query, c.cursor)
    if nulls:
        notes.append(f"{nulls} rows have a NULL {c.cursor!r}: runs with a cursor never load them")
    if new is None:
        notes.append(f"no row has a {c.cursor!r} yet: nothing to load, the mark stays unset")
        hi, lo = None, None
    elif old is not None and _not_above(src, kind, new, old):
        notes.append(f"nothing new: no {c.cursor!r} above the mark {old}")
        lo = hi = old
    else:
        lo, hi = old, new
        notes.append(
            f"loading {c.cursor!r} "
            + (f"> {old} and " if old is not None else "")
            + f"<= {new}"
            + ("" if old is not None else " (no mark yet: a full load)")
        )
    claim = RunClaim(
        c.name, job_id, definition, None if rec is None else rec.mark, lo, hi, kind, c.reset
    )
    query = bounded_query(c.query, src.dialect, c.cursor, kind, lo, hi)
    return CursorRun(job_id, query, claim, tuple(notes))


def _not_above(src: Endpoint, kind: str, new: str, old: str) -> bool:
    """Whether the source's ``new`` maximum is not above ``old`` (rows deleted, or none new),
    compared by the server."""
    a, b = literal(kind, new, src.dialect), literal(kind, old, src.dialect)
    row = rows_of(src, f"SELECT CASE WHEN {a} > {b} THEN 1 ELSE 0 END AS above")[0]
    return not int(row["above"])


def _type_changed(cursor: str, was: str | None, now: str) -> ConfigError:
    return ConfigError(
        f"cursor column {cursor!r} was {was} when the mark was stored and is {now} now; the "
        "mark cannot bound it: cast the column in the query back to its old type, or pass "
        "reset=True (--reset-mark) to start over with a full load"
    )
