"""Why a query may return other rows when it runs again (:func:`nondeterministic`)."""

from __future__ import annotations

from ..errors import ConfigError
from .dialects import sql_dialect
from .lexer import Token, tokenize

# --------------------------------------------------------------------------- determinism

#: Functions whose result changes from one execution to the next (any dialect).
VOLATILE_FUNCTIONS = frozenset(
    {
        "random",
        "rand",
        "random_normal",
        "randomblob",
        "random_bytes",
        "gen_random_uuid",
        "gen_random_bytes",
        "uuid",
        "uuid_short",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "newid",
        "sys_guid",
        "now",
        "clock_timestamp",
        "statement_timestamp",
        "transaction_timestamp",
        "timeofday",
        "sysdate",
        "curdate",
        "curtime",
        "current_timestamp",
        "unix_timestamp",
        "utc_timestamp",
        "utc_date",
        "utc_time",
        "nextval",
        "setseed",
        "txid_current",
        "pg_current_xact_id",
        "changes",
        "last_insert_rowid",
    }
)
#: SQL's niladic date/time functions, volatile without parentheses.
VOLATILE_WORDS = frozenset(
    {"current_timestamp", "current_time", "current_date", "localtime", "localtimestamp"}
)
_NOW_STRINGS = frozenset({"now", "today", "tomorrow", "yesterday"})  # PostgreSQL's


def nondeterministic(query: str, dialect: str) -> str | None:
    """Why ``query`` may return other rows each time it runs, or None.

    Conservative and simple: a ``LIMIT``, ``OFFSET``, ``FETCH FIRST/NEXT`` or ``TOP`` anywhere
    in the query (even with an ORDER BY: rows written between two chunks move the cut), a
    volatile function (``random()``, ``rand()``, ``gen_random_uuid()``, ``now()``,
    ``CURRENT_TIMESTAMP``, ``nextval()``, ...), ``TABLESAMPLE``, or the ``'now'``/``'today'``
    date strings. A user-defined volatile function is not recognised.
    """
    try:
        tokens = tokenize(query, dialect)
    except ConfigError:
        return None  # check_query reports it
    d = sql_dialect(dialect)
    code = [t for t in tokens if t.code]
    date_calls = {
        t.text.lower()
        for t, u in zip(code, code[1:], strict=False)
        if t.kind == "word" and u.text == "("
    } & _SQLITE_DATE_FUNCTIONS
    for k, t in enumerate(code):
        nxt = code[k + 1] if k + 1 < len(code) else None
        prev = code[k - 1] if k else None
        if t.kind == "string":
            if d.volatile.now_strings and _now_string(
                t, prev, nxt, code[k + 2] if k + 2 < len(code) else None
            ):
                return f"the date string {t.text} stands for the time the query runs"
            if (
                d.volatile.now_date_functions
                and date_calls
                and t.text[1:-1].strip().lower() == "now"
            ):
                return f"it calls {sorted(date_calls)[0]}() with 'now', the time the query runs"
            continue
        if t.kind == "qident" and nxt is not None and nxt.text == "(":
            name = t.text[1:-1]  # "now"() calls now() on every server
            # PostgreSQL's quoted names keep their case ("NOW" is another function)
            if name.lower() in VOLATILE_FUNCTIONS and (
                not d.volatile.quoted_calls_keep_case or name == name.lower()
            ):
                return f"it calls {t.text}(), which returns something else each time"
        if t.kind != "word":
            continue
        w = t.text.lower()
        if w in VOLATILE_FUNCTIONS and nxt is not None and nxt.text == "(":
            return f"it calls {t.text}(), which returns something else each time"
        if w in VOLATILE_WORDS and (prev is None or prev.text != "."):
            return f"it uses {t.text}, the time the query runs"
        if w == "tablesample":
            return "it uses TABLESAMPLE, which picks other rows each time"
        if w in ("limit", "offset") and nxt is not None and _starts_expression(nxt):
            return (
                f"it has {t.text.upper()}: which rows it keeps can change between two runs "
                "(rows written meanwhile, ties in the ORDER BY, or no ORDER BY)"
            )
        if w == "fetch" and nxt is not None and nxt.text.lower() in ("first", "next"):
            return "it has FETCH FIRST: which rows it keeps can change between two runs"
        if (
            w == "top"
            and nxt is not None
            and _starts_expression(nxt)
            and prev is not None
            and prev.text.lower() in ("select", "distinct", "all")
        ):
            return "it has TOP: which rows it keeps can change between two runs"
    return None


def _starts_expression(t: Token) -> bool:
    # not LIMIT ALL / LIMIT NULL (no limit at all)
    return t.kind in ("number", "param") or t.text == "("


_SQLITE_DATE_FUNCTIONS = frozenset(
    {"date", "time", "datetime", "julianday", "strftime", "unixepoch", "timediff"}
)
_PG_TIME_TYPES = frozenset({"timestamp", "timestamptz", "date", "time", "timetz"})


def _now_string(t: Token, prev: Token | None, nxt: Token | None, after: Token | None) -> bool:
    """PostgreSQL's special date strings, cast to a date/time type: ``'now'::timestamp``,
    ``timestamp 'now'``, ``CAST('today' AS date)``."""
    if t.text[1:-1].strip().lower() not in _NOW_STRINGS:
        return False
    if prev is not None and prev.kind == "word" and prev.text.lower() in _PG_TIME_TYPES:
        return True
    if nxt is not None and nxt.text == ":":
        return True
    return (
        nxt is not None
        and nxt.text.lower() == "as"
        and after is not None
        and after.text.lower() in _PG_TIME_TYPES
    )
