"""Every error arrowmapper raises, and the one place driver errors are classified.

The tree::

    ArrowMapperError                 root: catch this to catch everything of ours
     +-- ConfigError                 bad argument, URI, strategy, mode, env var (before any work)
     +-- PlanError                   the plan cannot be made (missing key column, non-unique key)
     +-- SourceError                 the source cannot be reached or read
     +-- TargetError                 the target cannot be reached, created or written
     +-- ChunkFailed                 one chunk failed for good (carries its ChunkResult)
     +-- JobFailed                   some chunks failed; ``.result`` is the JobResult

(the classes live in :mod:`.exceptions`; import them from here). Every error has two more axes,
decided by data -- SQLSTATE, a MySQL error number, an ADBC status, the text of a connectorx
panic, a connection limit (53300) -- all in this module's one table, :data:`RULES`:

* ``kind`` (:data:`ErrorKind`): *what* went wrong. The CLI turns it into its exit code
  (:func:`exit_code`); the coordinator reads it from the :class:`ChunkResult` (a server out of
  connections runs fewer chunks at once; a verification mismatch is reported).
* ``transient``: whether a retry can help.

:func:`error_info` answers both for any exception (ours carry them, or inherit them from the
driver error they were raised from); a failed chunk crosses the process boundary as an
:class:`ErrorRecord`. Messages never contain a password: every message built from a URI or a
driver error goes through :func:`redact` (:mod:`.redact`, re-exported here with :func:`scrub`,
which cleans a whole exception chain before it leaves the API). :mod:`.driver_text` turns a
driver's error into the server's words (:func:`driver_message`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, ParamSpec, TypeVar

from . import redact as _redact
from .driver_text import driver_message as driver_message
from .driver_text import sqlstate_of as sqlstate_of
from .exceptions import ArrowMapperError as ArrowMapperError
from .exceptions import ChunkFailed as ChunkFailed
from .exceptions import ConfigError as ConfigError
from .exceptions import ErrorKind as ErrorKind
from .exceptions import JobFailed as JobFailed
from .exceptions import PlanError as PlanError
from .exceptions import SourceError as SourceError
from .exceptions import TargetError as TargetError
from .exceptions import VerificationError as VerificationError
from .redact import RedactedError as RedactedError
from .redact import RedactingFilter as RedactingFilter
from .redact import redact as redact
from .redact import userinfo_end as userinfo_end

#: each kind's default answer to "is a retry worth it?" (a rule may say otherwise).
KIND_TRANSIENT: dict[ErrorKind, bool] = {
    "config": False,
    "connect": True,
    "query": False,
    "data": False,
    "conflict": True,
    "timeout": True,
    "connection_limit": True,
    "verification": True,
    "worker": True,
    "failed": True,
}

#: the CLI's exit code per kind; every other kind exits 1 (the job failed).
EXIT_CODES: dict[ErrorKind, int] = {"config": 2, "connect": 3, "connection_limit": 3}
EXIT_FAILED = 1


def scrub(exc: BaseException) -> BaseException:
    """Make ``exc`` and its whole chain safe to print, in place (see :func:`.redact.scrub`;
    messages of :class:`ArrowMapperError` are ours: redacted, never replaced)."""
    return _redact.scrub(exc, (ArrowMapperError,))


def printable(exc: BaseException) -> BaseException:
    """``exc`` made safe for ``traceback.print_exception`` (see :func:`.redact.printable`)."""
    return _redact.printable(exc, (ArrowMapperError,))


# --------------------------------------------------------------------------- classification

Match = Literal["sqlstate", "mysql", "text", "status", "type"]


@dataclass(frozen=True)
class Rule:
    """One line of the classification table: an error whose ``by`` is ``key`` is ``kind``, and
    a retry helps if ``transient``. ``by`` is a SQLSTATE (or its class), a MySQL error number,
    a regular expression over the message, an ADBC status name, or a Python type's name;
    ``sqlstate`` is the SQLSTATE a text rule's message stands for."""

    by: Match
    key: str
    kind: ErrorKind
    transient: bool
    sqlstate: str | None = None


#: every classification, in one table; :func:`error_info` looks an error up, in order, by MySQL
#: number, SQLSTATE, message text, ADBC status, then Python type (see :func:`_foreign_info`).
# fmt: off
RULES: tuple[Rule, ...] = (
    # SQLSTATE (5 characters) or its class (2): the exact code is looked up first
    Rule("sqlstate", "40001", "conflict", True),  # serialization failure
    Rule("sqlstate", "40P01", "conflict", True),  # deadlock detected
    Rule("sqlstate", "55P03", "conflict", True),  # lock not available
    Rule("sqlstate", "53300", "connection_limit", True),  # too many connections
    Rule("sqlstate", "57P01", "connect", True),  # admin shutdown
    Rule("sqlstate", "57P02", "connect", True),  # crash shutdown
    Rule("sqlstate", "57P03", "connect", True),  # cannot connect now (starting up)
    Rule("sqlstate", "57014", "timeout", True),  # query canceled (statement_timeout)
    Rule("sqlstate", "3D000", "connect", False),  # database does not exist
    Rule("sqlstate", "42S21", "config", False),  # MySQL: duplicate column name (the query's output)
    Rule("sqlstate", "08", "connect", True),  # connection exception
    Rule("sqlstate", "0A", "query", False),  # feature not supported
    Rule("sqlstate", "20", "data", False),  # case not found
    Rule("sqlstate", "21", "data", False),  # cardinality (ON CONFLICT affecting a row twice)
    Rule("sqlstate", "22", "data", False),  # data exception
    Rule("sqlstate", "23", "data", False),  # integrity constraint violation
    Rule("sqlstate", "24", "query", False),  # invalid cursor state
    Rule("sqlstate", "25", "query", False),  # invalid transaction state
    Rule("sqlstate", "26", "query", False),  # invalid SQL statement name
    Rule("sqlstate", "27", "data", False),  # triggered data change violation
    Rule("sqlstate", "28", "connect", False),  # invalid authorization (password, role)
    Rule("sqlstate", "2B", "query", False),
    Rule("sqlstate", "2D", "query", False),
    Rule("sqlstate", "2F", "query", False),
    Rule("sqlstate", "34", "query", False),  # invalid cursor name
    Rule("sqlstate", "3F", "query", False),  # invalid schema name
    Rule("sqlstate", "42", "query", False),  # syntax error or access rule violation
    Rule("sqlstate", "44", "data", False),  # WITH CHECK OPTION violation
    Rule("sqlstate", "54", "query", False),  # program limit exceeded
    # MySQL/MariaDB error numbers whose SQLSTATE says too little (1049 is 42000)
    Rule("mysql", "1044", "connect", False),  # access denied to the database
    Rule("mysql", "1045", "connect", False),  # access denied (password)
    Rule("mysql", "1049", "connect", False),  # unknown database
    Rule("mysql", "1698", "connect", False),  # access denied (no password for this user)
    Rule("mysql", "1040", "connection_limit", True),  # too many connections
    Rule("mysql", "1203", "connection_limit", True),  # user has too many connections
    Rule("mysql", "2002", "connect", True),  # cannot connect through the socket
    Rule("mysql", "2003", "connect", True),  # cannot connect to the server
    Rule("mysql", "2006", "connect", True),  # server has gone away
    Rule("mysql", "2013", "connect", True),  # lost connection during query
    Rule("mysql", "1205", "conflict", True),  # lock wait timeout
    Rule("mysql", "1213", "conflict", True),  # deadlock
    Rule("mysql", "1317", "timeout", True),  # query interrupted
    Rule("mysql", "3024", "timeout", True),  # max_execution_time exceeded
    Rule("mysql", "1060", "config", False),  # duplicate column name in the query's output
    # the message, when it carries no code (connectorx's "db error: FATAL: ...", SQLite,
    # libpq, Rust structs); the first match wins, so the specific come before the general
    Rule("text", r'database "[^"]*" does not exist|unknown database', "connect", False, "3D000"),
    Rule("text", r"password authentication failed|role \"[^\"]*\" does not exist|"
                 r"no pg_hba\.conf entry|access denied for user|authentication failed",
                 "connect", False, "28000"),
    Rule("text", r"too many connections|remaining connection slots are reserved|"
                 r"sorry, too many clients|connection limit exceeded",
                 "connection_limit", True, "53300"),
    Rule("text", r"terminating connection due to administrator command", "connect", True, "57P01"),
    Rule("text", r"the database system is (starting up|shutting down|in recovery mode)",
                 "connect", True, "57P03"),
    Rule("text", r"canceling statement due to (statement timeout|user request)|"
                 r"max_execution_time exceeded|query execution was interrupted",
                 "timeout", True, "57014"),
    Rule("text", r"could not serialize access", "conflict", True, "40001"),
    Rule("text", r"deadlock (detected|found)", "conflict", True, "40P01"),
    Rule("text", r"could not obtain lock|lock wait timeout|database is locked|"
                 r"database is busy|database table is locked", "conflict", True, None),
    Rule("text", r"cannot affect row a second time", "data", False, "21000"),
    Rule("text", r"duplicate key value|violates .* constraint|(UNIQUE|NOT NULL|CHECK|"
                 r"FOREIGN KEY) constraint failed|datatype mismatch", "data", False, "23000"),
    Rule("text", r"invalid input syntax|out of range|value too long|division by zero|"
                 r"numeric field overflow|invalid input value|invalid byte sequence|"
                 r"couldn't convert the value|InvalidColumnType|FromSqlConversionFailure|"
                 r"Utf8Error|kind: FromSql|incorrect \w+ value|data truncated",
                 "data", False, "22000"),
    Rule("text", r"not implemented|not supported|unsupported type", "data", False, None),
    Rule("text", r"\b(relation|column|function|operator|type|schema)\b.*\bdoes not exist|"
                 r"syntax error|there is no parameter \$\d|no such (table|column|function)|"
                 r"permission denied|unknown column|doesn't exist|error in your SQL syntax|"
                 r"is ambiguous", "query", False, "42000"),
    Rule("text", r"connection refused|connection reset|server closed the connection|"
                 r"could not connect|no connection to the server|"
                 r"connection to server .* failed|broken pipe|unexpected eof|end of file|"
                 r"connection closed|ssl syscall|kind: (io|closed|connect)\b|"
                 r"lost connection|gone away|can't connect|cannot connect|timed out|timeout",
                 "connect", True, None),
    # an ADBC status code (exc.status_code.name) when there is no SQLSTATE and no known text
    Rule("status", "NOT_IMPLEMENTED", "data", False),
    Rule("status", "NOT_FOUND", "query", False),
    Rule("status", "ALREADY_EXISTS", "query", False),
    Rule("status", "INVALID_ARGUMENT", "query", False),
    Rule("status", "INVALID_DATA", "data", False),
    Rule("status", "INTEGRITY", "data", False),
    Rule("status", "UNAUTHENTICATED", "connect", False),
    Rule("status", "UNAUTHORIZED", "query", False),
    Rule("status", "IO", "connect", True),
    Rule("status", "CANCELLED", "timeout", True),
    Rule("status", "TIMEOUT", "timeout", True),
    # Python exception types, by the names in the type's MRO (so no driver is imported here)
    Rule("type", "TimeoutError", "timeout", True),
    Rule("type", "ConnectionError", "connect", True),
    Rule("type", "PanicException", "data", False),  # connectorx: an unreadable value or type
    Rule("type", "ArrowInvalid", "data", False),
    Rule("type", "ArrowTypeError", "data", False),
    Rule("type", "ArrowNotImplementedError", "data", False),
    Rule("type", "ComputeError", "data", False),
    Rule("type", "InvalidOperationError", "data", False),
    Rule("type", "SchemaError", "data", False),
    Rule("type", "ShapeError", "data", False),
    Rule("type", "DuplicateError", "data", False),
    Rule("type", "ColumnNotFoundError", "data", False),
    Rule("type", "SchemaFieldNotFoundError", "data", False),
    Rule("type", "OutOfBoundsError", "data", False),
    Rule("type", "ValueError", "data", False),
    Rule("type", "TypeError", "data", False),
    Rule("type", "KeyError", "data", False),
    Rule("type", "AttributeError", "config", False),
    Rule("type", "ImportError", "config", False),
    Rule("type", "NameError", "config", False),
)
# fmt: on


def _index(by: Match) -> dict[str, Rule]:
    return {rule.key: rule for rule in RULES if rule.by == by}


_BY_SQLSTATE, _BY_MYSQL, _BY_STATUS = _index("sqlstate"), _index("mysql"), _index("status")
_BY_TEXT = tuple((re.compile(r.key, re.IGNORECASE), r) for r in RULES if r.by == "text")
_BY_TYPE = tuple(rule for rule in RULES if rule.by == "type")

_MYSQL_CODE = re.compile(r"ERROR (\d{4}) \(")


@dataclass(frozen=True)
class ErrorRecord:
    """A classified error as plain data: what :func:`error_info` finds out about an exception,
    and what a worker sends back for a failed chunk (:func:`error_record`), picklable.

    >>> worker_lost("worker pid 7 died (signal SIGSEGV)", transient=True).kind
    'worker'
    """

    kind: ErrorKind
    transient: bool
    sqlstate: str | None
    message: str  # one redacted line: the server's words for a driver error


ErrorInfo = ErrorRecord  # the name error_info's callers know


def rule_for_sqlstate(state: str) -> Rule | None:
    """The table's rule for a SQLSTATE (the exact code, else its class), or None."""
    return _BY_SQLSTATE.get(state) or _BY_SQLSTATE.get(state[:2])


def _rule_for(exc: BaseException, text: str, state: str | None) -> Rule | None:
    """The first rule of the table that ``exc`` matches, in the order of :data:`RULES`' kinds."""
    mysql = _MYSQL_CODE.search(text)
    if mysql and mysql[1] in _BY_MYSQL:
        return _BY_MYSQL[mysql[1]]
    rule = rule_for_sqlstate(state) if state is not None else None
    if rule is not None:
        return rule
    for pattern, rule in _BY_TEXT:
        if pattern.search(text):
            return rule
    status = getattr(getattr(exc, "status_code", None), "name", None)
    if isinstance(status, str) and status in _BY_STATUS:
        return _BY_STATUS[status]
    names = {cls.__name__ for cls in type(exc).__mro__}
    return next((rule for rule in _BY_TYPE if rule.key in names), None)


def _foreign_info(exc: BaseException) -> ErrorInfo:
    text = str(exc)
    message = driver_message(exc)
    state = sqlstate_of(exc)
    rule = _rule_for(exc, text, state)
    if rule is None:  # unknown: a retry is cheap and bounded, a lost job is not
        return ErrorInfo("failed", True, state, message)
    return ErrorInfo(rule.kind, rule.transient, state or rule.sqlstate, message)


def error_info(exc: BaseException) -> ErrorInfo:
    """Kind, transience, SQLSTATE and a one-line redacted message for any exception.

    Ours say what they are, or inherit it from the driver error they were raised from
    (``raise SourceError(...) from exc``); a driver error is looked up, in order, by MySQL
    error number, SQLSTATE, known message text, ADBC status, then Python type. Unknown errors
    are transient: a retry is cheap and bounded, a lost job is not.

    >>> error_info(SourceError("x", sqlstate="40P01")).transient
    True
    """
    if not isinstance(exc, ArrowMapperError):
        return _foreign_info(exc)
    inner: ErrorInfo | None = None
    if exc.__cause__ is not None:
        inner = error_info(exc.__cause__)
    elif exc.sqlstate is None and (exc.kind is None or exc.transient is None):
        found = _foreign_info(exc)  # our message may quote the driver's (raised "from None")
        inner = found if found.kind != "failed" or found.sqlstate else None
    state = exc.sqlstate or (inner.sqlstate if inner else None)
    rule = rule_for_sqlstate(exc.sqlstate) if exc.sqlstate else None
    kind: ErrorKind = (
        exc.kind or (rule.kind if rule else None) or (inner.kind if inner else "failed")
    )
    if exc.transient is not None:
        transient = bool(exc.transient)
    elif rule is not None:
        transient = rule.transient
    elif inner is not None and (exc.kind is None or exc.kind == inner.kind):
        transient = inner.transient
    else:
        transient = KIND_TRANSIENT[kind]
    message = redact(" ".join(str(exc).split()) or type(exc).__name__)
    return ErrorInfo(kind, transient, state, message)


def classify(exc: BaseException) -> tuple[bool, str | None]:
    """Return ``(transient, sqlstate)`` for any exception raised while moving a chunk.

    Transient: SQLSTATE class 08 and 40001, 40P01, 53300, 57P01-03, 55P03, 57014, timeouts and
    connection loss. Terminal: classes 0A, 2x (data, integrity, cardinality, authorization),
    3D, 42, our own configuration errors, and connectorx panics on values or types it cannot
    read. See :func:`error_info` for the kind as well.
    """
    info = error_info(exc)
    return info.transient, info.sqlstate


def exit_code(exc: BaseException) -> int:
    """The CLI's exit code for an error: 2 bad usage or configuration, 3 cannot connect (the
    server is down, refuses the login, or has no free connection), 1 anything else (the job
    failed)."""
    return EXIT_CODES.get(error_info(exc).kind, EXIT_FAILED)


def describe(exc: BaseException) -> str:
    """One line naming the exception kind and its (redacted) message: the server's words for
    a driver error (``SourceError: ... ERROR 22012: division by zero``)."""
    name = type(exc).__name__
    if name == "PanicException":
        name = "SourceError"  # a connectorx panic is the source failing to deliver a value
    return f"{name}: {error_info(exc).message}"


def error_record(exc: BaseException) -> ErrorRecord:
    """What a worker sends back for ``exc``: its classification, and :func:`describe`'s line."""
    info = error_info(exc)
    return ErrorRecord(info.kind, info.transient, info.sqlstate, describe(exc))


def worker_lost(message: str, *, transient: bool) -> ErrorRecord:
    """The record of a chunk whose worker died or was killed (kind ``worker``)."""
    return ErrorRecord("worker", transient, None, message)


def error_payload(exc: BaseException) -> dict[str, Any]:
    """:func:`error_record` as a dict (kept for callers of the old name)."""
    return asdict(error_record(exc))


def translate(
    exc: BaseException,
    error: type[ArrowMapperError],
    context: str,
) -> ArrowMapperError:
    """``error(f"{context}: <what the server said>")``, with the kind, transience and SQLSTATE
    of ``exc``; raise it ``from exc`` (then :func:`scrub` keeps the chain printable)."""
    info = error_info(exc)
    return error(
        f"{context}: {info.message}",
        kind=info.kind,
        transient=info.transient,
        sqlstate=info.sqlstate,
    )


PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)


def at_boundary(exc: BaseException, where: str) -> ArrowMapperError:
    """What leaves the public API for ``exc``: ours scrubbed, anything else (a driver error, a
    connectorx panic, a bug) wrapped in an :class:`ArrowMapperError` of its kind, with the
    server's message. The caller raises the result ``from`` the scrubbed original."""
    if isinstance(exc, ArrowMapperError):
        scrub(exc)
        return exc
    info = error_info(exc)
    cls: type[ArrowMapperError] = ConfigError if info.kind == "config" else ArrowMapperError
    name = "SourceError" if type(exc).__name__ == "PanicException" else type(exc).__name__
    return cls(
        f"{where} failed: {name}: {info.message}",
        kind=info.kind,
        transient=info.transient,
        sqlstate=info.sqlstate,
    )


_P = ParamSpec("_P")
_R = TypeVar("_R")


def boundary(where: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorator for a public entry point: only :class:`ArrowMapperError` leaves it (Ctrl-C and
    ``SystemExit`` pass through), every message and chained exception redacted."""
    import functools

    def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(fn)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            from .adbc import shared_databases

            try:
                with shared_databases():  # one catalog load per server, not per connection
                    return fn(*args, **kwargs)
            except PASS_THROUGH:
                raise
            except BaseException as exc:
                err = at_boundary(exc, where)
                if err is exc:
                    raise
                raise err from printable(exc)

        return guarded

    return wrap


# --------------------------------------------------------------------------- the CLI's words

_KEYWORD_VALUE = r"(True\b|False\b|'([^'\n]*)'|\"([^\"\n]*)\"|\.\.\.|(\w(?:[\w.:/-]*[\w/])?))?"


def in_flags(message: str, flags: dict[str, str]) -> str:
    """``message`` as the command line says it: a Python keyword of the API (``resume=True``,
    ``key='id'``, ``job_id='j-1'``, ``key=``) becomes its flag (``--resume``, ``--key id``,
    ``--job-id j-1``, ``--key``); ``flags`` maps each keyword to its flag. A bare ``job_id``
    becomes ``--job-id`` too. Messages are written once, for the API; the CLI prints them
    through this."""
    import shlex

    if not flags:
        return message
    names = "|".join(re.escape(n) for n in sorted(flags, key=len, reverse=True))
    keyword = re.compile(rf"(?<![\w.\-/?&])({names})={_KEYWORD_VALUE}")

    def flag(m: re.Match[str]) -> str:
        name, value = flags[m[1]], m[2]
        if value is None:
            return name
        if value == "True":
            return name
        if value == "False":
            return "--no-" + name.removeprefix("--")
        if value == "...":
            return f"{name} ..."
        text = next(v for v in (m[3], m[4], m[5]) if v is not None)
        return f"{name} {shlex.quote(text) if text else repr('')}"

    out = keyword.sub(flag, message)
    # a bare keyword: one with an underscore anywhere (``chunk_size``, ``job_id``: no English
    # word), any other where it opens a sentence about its value ("workers must be ...")
    joined = "|".join(re.escape(n) for n in sorted(flags, key=len, reverse=True) if "_" in n)
    if joined:
        out = re.sub(rf"(?<![\w.\-/'\"])({joined})(?![\w='\"])", lambda m: flags[m[1]], out)
    out = re.sub(
        rf"(^|[:;] )({names}) (?=must |is )", lambda m: m[1] + flags[m[2]] + " ", out
    )
    # "--job-id j-1, --resume": one command line
    return re.sub(r"(--[a-z-]+(?: [^\s,-][^\s,]*)?), (?=--)", r"\1 ", out)
