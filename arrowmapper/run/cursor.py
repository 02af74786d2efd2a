"""A run of a recurring job (``name=``, ``cursor=``): which rows it loads.

Before planning, :func:`cursor_run` reads the name's mark from the target (none: a full load)
and the source's current ``MAX(cursor)`` as its exact text (the new mark), and bounds the query
to ``cursor > old AND cursor <= new``; the planner then cuts that query like any other. Rows
whose cursor is above the new mark when the run starts wait for the next run; rows with a NULL
cursor are never loaded (a note counts them). A resumed run loads the bounds it was claimed
with. The claim itself (:meth:`~arrowmapper.targets.marks.Marks.claim_run`) and the mark's
move (in the last chunk's transaction) are the target's.

The source writes the SQL (:meth:`~arrowmapper.sources.Source.cursor_max`, ``cursor_bounded``,
``cursor_above``): values are compared by its server, from the server's own text.
"""

from __future__ import annotations

import difflib
import os
import time
from dataclasses import dataclass

import pyarrow as pa

from ..config import Endpoint, JobConfig
from ..errors import ConfigError
from ..identity import source_identity
from ..sources import SourceLayout, open_source
from ..sources.cursor import lagged
from ..targets import JobRecord, TableRef, Target, open_target
from ..targets.marks import (
    MarkRecord,
    RunClaim,
    changed_message,
    definition_changes,
    unfinished_message,
)

KINDS = ("integer", "numeric", "timestamp", "timestamptz", "date", "text")


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
        replaced = rec is not None and rec.mark is not None and not c.reset and not c.resume
        if replaced and rec is not None and _table_replaced(tgt, rec):
            raise ConfigError(
                f"job name {c.name!r} has a mark ({rec.mark}) for table {display}, but the "
                "table the mark belongs to was dropped or recreated since the mark moved, "
                "so the rows up to the mark are not in it: pass reset=True to load "
                "everything again (or restore the table)"
            )
        return _run(c, src, rec, record, job_id, display, busy)
    finally:
        tgt.close()


def _table_replaced(tgt: Target, rec: MarkRecord) -> bool:
    """Whether the table ``rec``'s mark was moved for is gone, or is another table now (its
    identity differs from the one the run that moved the mark recorded)."""
    if not tgt.table_exists():
        return True
    mover = tgt.job_record(rec.job_id) if rec.job_id else None
    stored = (mover.fingerprint or {}).get("table_identity") if mover is not None else None
    now = tgt.table_identity()
    return stored is not None and now is not None and str(stored) != now


def resumed_run(c: JobConfig, dst: Endpoint, ref: TableRef) -> tuple[JobConfig, str | None]:
    """A resume (``resume=True`` and ``job_id``) of a job that is a run of a recurring job
    moves that name's mark when it completes, whichever options it was given: the config
    to prepare (the name and cursor filled in when the query is the name's own) and the name
    whose mark the chunks move when the query given is another (the run's bounded query, as
    older ``status`` printed it). A resume naming another name or cursor is refused."""
    assert c.job_id is not None
    if dst.rules.file and not (dst.path and os.path.exists(dst.path)):
        return c, None  # no database yet (never created here): no run of a name in it
    tgt = open_target(dst, ref)
    try:
        owner = tgt.run_owner(c.job_id)
    finally:
        tgt.close()
    if owner is None:
        return c, None
    cursor = owner.definition["cursor_column"]
    if c.name and c.name != owner.name:
        raise ConfigError(
            f"job {c.job_id!r} is a run of the job name {owner.name!r}, not {c.name!r}: resume "
            f"it with name={owner.name!r}, or without name and cursor"
        )
    if c.cursor and c.cursor != cursor:
        raise ConfigError(
            f"job {c.job_id!r} is a run of {owner.name!r} with cursor {cursor!r}, not "
            f"{c.cursor!r}: resume it with cursor={cursor!r}, or without name and cursor"
        )
    if c.query.strip() == owner.definition["query"]:
        return c.with_(name=owner.name, cursor=cursor), None
    return c.with_(name=None, cursor=None), owner.name


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
        kind = cursor_kind(source.probe(c.query, layout).schema(), layout, c.cursor)
        if c.resume and record is not None:  # the bounds it was claimed with
            if rec is None or rec.run_job != job_id:
                stored = (record.fingerprint or {}).get("query")
                if stored is None:
                    raise ConfigError(
                        f"cannot resume job {job_id!r}: it is not the last run of name "
                        f"{c.name!r}, whose bounds the marks table keeps; run the name again "
                        "without resume"
                    )
                return CursorRun(job_id, stored, None)
            if rec.run_type not in (None, kind):
                raise _type_changed(c.cursor, rec.run_type, kind)
            query = source.cursor_bounded(c.query, c.cursor, kind, rec.run_from, rec.run_to)
            return CursorRun(job_id, query, None)
        old = None if rec is None or c.reset else rec.mark
        if rec is not None and not c.reset:
            if rec.mark_type not in (None, kind):
                raise _type_changed(c.cursor, rec.mark_type, kind)
            if busy:
                raise ConfigError(unfinished_message(c.name, str(rec.run_job)))
        notes: list[str] = []
        folds = source.cursor_collation(c.query, c.cursor) if kind == "text" else None
        if folds is not None:
            exact = folds == "binary" or (
                folds.endswith("_bin") and ("nopad" in folds or "0900" in folds)
            )
            if not exact:
                notes.append(
                    f"text cursor {c.cursor!r} compares under collation {folds}: a value that "
                    "arrives after the mark moved and equals it in that order ('B' = 'b' "
                    "case-insensitively, 'b ' = 'b' with PAD SPACE) is never loaded; cast "
                    "the cursor to a NO PAD binary collation in the query (MariaDB: "
                    f"{c.cursor} COLLATE utf8mb4_nopad_bin AS {c.cursor}; MySQL 8: "
                    "utf8mb4_0900_bin) or use an integer or timestamp cursor"
                )
        new, nulls = source.cursor_max(c.query, c.cursor)
        if nulls:
            notes.append(f"some rows have a NULL {c.cursor!r}: runs with a cursor never load them")
        if c.cursor_lag is not None and new is not None:
            below = lagged(kind, new, c.cursor_lag)
            held, _ = source.cursor_max(c.query, c.cursor, (kind, below))
            notes.append(
                f"cursor_lag {c.cursor_lag:g}: rows with {c.cursor!r} above {below} (the "
                f"highest is {new}) wait for the next run"
            )
            if held is None or (old is not None and not source.cursor_above(kind, held, old)):
                held = old  # every row above the mark is within the lag
            new = held
        lo, hi = old, new
        if new is None:
            notes.append(f"no row has a {c.cursor!r} yet: nothing to load, the mark stays unset")
            lo = hi = None
        elif old is not None and (
            new == old if folds is not None else not source.cursor_above(kind, new, old)
        ):  # a collated cursor: the bounded query compares in the column's own order
            notes.append(f"nothing new: no {c.cursor!r} above the mark {old}")
            lo = hi = old
        else:
            first = " (no mark yet: a full load)" if old is None else ""
            since = f"> {old} and " if old is not None else ""
            notes.append(f"loading {c.cursor!r} {since}<= {new}{first}")
        query = source.cursor_bounded(c.query, c.cursor, kind, lo, hi)
    finally:
        source.close()
    planned = None if rec is None else rec.mark
    claim = RunClaim(c.name, job_id, definition, planned, lo, hi, kind, c.reset)
    return CursorRun(job_id, query, claim, tuple(notes))


def _type_changed(cursor: str, was: str | None, now: str) -> ConfigError:
    return ConfigError(
        f"cursor column {cursor!r} was {was} when the mark was stored and is {now} now; the "
        "mark cannot bound it: cast the column in the query back to its old type, or pass "
        "reset=True to start over with a full load"
    )
