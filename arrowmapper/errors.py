"""Every error arrowmapper raises, and the one place driver errors are classified.

The tree::

    ArrowMapperError                 root: catch this to catch everything of ours
     +-- ConfigError                 bad argument, URI, strategy, mode, env var (before any work)
     +-- PlanError                   the plan cannot be made (missing key column, non-unique key)
     +-- SourceError                 the source cannot be reached or read
     +-- TargetError                 the target cannot be reached, created or written
     +-- ChunkFailed                 one chunk failed for good (carries its ChunkResult)
     +-- JobFailed                   some chunks failed; ``.result`` is the JobResult

Every error has two more axes, decided by data -- SQLSTATE, a MySQL error number, an ADBC status,
the text of a connectorx panic -- and never by the exception's class, all in this module's
tables (:data:`SQLSTATE_RULES`, :data:`MYSQL_RULES`, :data:`TEXT_RULES`):

* ``kind`` (:data:`ErrorKind`): *what* went wrong. The CLI turns it into its exit code
  (:func:`exit_code`); the coordinator reads it from the :class:`ChunkResult` (a server out of
  connections runs fewer chunks at once; a verification mismatch is reported).
* ``transient``: whether a retry can help.

:func:`error_info` answers both for any exception (ours carry them, or inherit them from the
driver error they were raised from). Messages never contain a password: every message built from
a URI or a driver error goes through :func:`redact`, and :func:`scrub` cleans a whole exception
chain (``__cause__``/``__context__``) before it leaves the API.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

if TYPE_CHECKING:
    from .run.report import ChunkResult, JobResult

ErrorKind = Literal[
    "config",  # bad argument, URI, option, job file or target layout: fix the call
    "connect",  # cannot reach or log in to a server (refused, lost, no such database or role)
    "query",  # the server refused the statement (syntax, missing object, privilege)
    "data",  # a value cannot be read, converted or stored (22xxx, 23xxx, type panics)
    "conflict",  # serialization failure, deadlock, lock not available, database is locked
    "timeout",  # the statement was cancelled (statement_timeout, max_execution_time)
    "connection_limit",  # the server has no free connection slot (53300, MySQL 1040)
    "verification",  # what a chunk committed differs from what was read
    "worker",  # a worker process died or was killed by the watchdog
    "failed",  # anything else (a retry is cheap and bounded, a lost job is not)
]

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


class ArrowMapperError(Exception):
    """Root of every error arrowmapper raises.

    ``kind``, ``transient`` and ``sqlstate`` are None when not given: they are then decided from
    the driver error it was raised from (see :func:`error_info`).

    >>> ArrowMapperError("boom", kind="data").kind
    'data'
    """

    kind: ErrorKind | None = None
    transient: bool | None = None
    sqlstate: str | None = None

    def __init__(
        self,
        message: str = "",
        *,
        transient: bool | None = None,
        kind: ErrorKind | None = None,
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient
        if kind is not None:
            self.kind = kind
        if sqlstate is not None:
            self.sqlstate = sqlstate


class ConfigError(ArrowMapperError):
    """A bad argument, URI, strategy, mode or environment variable."""

    kind = "config"
    transient = False


class PlanError(ArrowMapperError):
    """The chunk plan cannot be built (missing key column, non-unique key, ...)."""

    kind = "config"
    transient = False


class SourceError(ArrowMapperError):
    """The source database cannot be reached or the query cannot be read."""


class TargetError(ArrowMapperError):
    """The target cannot be reached, its table created, or rows written."""


class VerificationError(TargetError):
    """What a chunk committed differs from what its worker read (count or checksum)."""

    kind = "verification"


class ChunkFailed(ArrowMapperError):
    """One chunk failed for good; ``.result`` is its ChunkResult."""

    kind = "failed"

    def __init__(self, message: str, result: ChunkResult | None = None) -> None:
        super().__init__(message, transient=False)
        self.result = result


class JobFailed(ArrowMapperError):
    """Some chunks failed after their retries; ``.result`` is the JobResult."""

    kind = "failed"

    def __init__(self, message: str, result: JobResult) -> None:
        super().__init__(message, transient=False)
        self.result = result


# --------------------------------------------------------------------------- redaction

_URI = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://(?P<rest>\S*)")
_HOST_THEN_PATH = re.compile(r"^[^/?#]*/")


def userinfo_end(rest: str, *, fallback: bool = False) -> int:
    """Where the userinfo of a URI ends in ``rest`` (what follows ``scheme://``): the index of
    its ``@``, or -1 when there is none.

    It is the last ``@`` that a host and a ``/database`` path follow (or that no ``/`` comes
    before), so a raw ``@ / ? #`` in a password is part of the password, and an ``@`` in the
    query string (``?application_name=a@b``) is not the end of the userinfo. With ``fallback``
    (redaction: hide too much rather than too little), the last ``@`` when none qualifies."""
    at = len(rest)
    while True:
        at = rest.rfind("@", 0, at)
        if at < 0:
            return rest.rfind("@") if fallback else -1
        if _HOST_THEN_PATH.match(rest[at + 1 :]) or "/" not in rest[:at]:
            return at


def _redact_uri(m: re.Match[str]) -> str:
    rest = m.group("rest")
    at = userinfo_end(rest, fallback=True)
    user, colon, _ = rest[:at].partition(":") if at >= 0 else ("", "", "")
    if not colon:
        return m.group(0)
    return m.group(0)[: m.start("rest") - m.start()] + f"{user}:***{rest[at:]}"


_KV_PASSWORD = re.compile(
    r"(?i)(?<!using )(\b(?:password|passwd|pwd)\s*[=:]\s*)(?!Some\(\*\*\*\))('[^']*'|\"[^\"]*\"|\S+)"
)
_DEBUG_PASSWORD = re.compile(r'(password: Some\()("(?:[^"\\]|\\.)*"|\[[^\]]*\]|[^)]*)(\))')


def redact(text: str) -> str:
    """Replace every password by ``***``: in URIs (the userinfo ends at its last ``@``, so a
    raw ``@`` in a password is covered), ``password=...`` pairs and driver debug structs.

    >>> redact("postgresql://app:s3cr@t@db:5432/shop")
    'postgresql://app:***@db:5432/shop'
    """
    text = _URI.sub(_redact_uri, text)
    text = _DEBUG_PASSWORD.sub(lambda m: m.group(1) + "***" + m.group(3), text)
    return _KV_PASSWORD.sub(lambda m: m.group(1) + "***", text)


class RedactedError(Exception):
    """Stands in, in an exception chain, for a driver error whose text held a password: same
    traceback, same place in the chain, its type's name and its message redacted."""


def _is_clean(exc: BaseException) -> bool:
    try:
        text, rep = str(exc), repr(exc)
    except Exception:
        return False
    notes = getattr(exc, "__notes__", None) or []
    return text == redact(text) and rep == redact(rep) and all(n == redact(n) for n in notes)


def _stand_in(exc: BaseException) -> BaseException:
    try:
        text = str(exc)
    except Exception:
        text = ""
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    clean = RedactedError(f"{name}: {redact(text)}").with_traceback(exc.__traceback__)
    clean.__cause__ = exc.__cause__
    clean.__context__ = exc.__context__
    clean.__suppress_context__ = exc.__suppress_context__
    return clean


def scrub(exc: BaseException) -> BaseException:
    """Make ``exc`` and every exception in its chain safe to print, in place: our own messages
    are redacted, and a foreign exception whose text holds a password is replaced in the chain by
    a :class:`RedactedError` (its traceback kept, for ``--debug``). Returns ``exc``."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ArrowMapperError | RedactedError):
            node.args = tuple(redact(a) if isinstance(a, str) else a for a in node.args)
            notes = getattr(node, "__notes__", None)
            if notes:
                node.__notes__ = [redact(n) for n in notes]
        for attr in ("__cause__", "__context__"):
            linked = getattr(node, attr)
            if linked is None:
                continue
            if not isinstance(linked, ArrowMapperError) and not _is_clean(linked):
                linked = _stand_in(linked)
                setattr(node, attr, linked)
            todo.append(linked)
    return exc


def printable(exc: BaseException) -> BaseException:
    """``exc`` made safe for ``traceback.print_exception``: scrubbed, or a stand-in when its
    own text holds a password."""
    top = exc if isinstance(exc, ArrowMapperError) or _is_clean(exc) else _stand_in(exc)
    return scrub(top)


class RedactingFilter(logging.Filter):
    """A logging filter that removes passwords from each record's message (installed on the
    ``arrowmapper`` logger, so a log line can never carry one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            # the traceback a handler would print: formatted once here, redacted
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_LOGGER = logging.getLogger("arrowmapper")
if not any(isinstance(f, RedactingFilter) for f in _LOGGER.filters):
    _LOGGER.addFilter(RedactingFilter())


# --------------------------------------------------------------------------- driver messages

_RUST_FIELD = r'{name}: (?:Some\()?"((?:[^"\\]|\\.)*)"'


def _rust_string(name: str, text: str) -> str | None:
    found = re.search(_RUST_FIELD.format(name=name), text)
    if found is None:
        return None
    return re.sub(r"\\(.)", lambda m: {"n": " ", "t": " "}.get(m.group(1), m.group(1)), found[1])


_ARROW_TYPES = {"NaiveDate": "a date", "NaiveDateTime": "a timestamp", "NaiveTime": "a time"}


def _panic_message(text: str) -> str | None:
    """The server's or driver's message inside a connectorx panic (a Rust debug struct)."""
    if "DbError {" in text:  # PostgreSQL: severity, SQLSTATE, message, detail, hint
        severity = _rust_string("severity", text) or "ERROR"
        code = re.search(r"code: SqlState\(E?([0-9A-Z]{5})\)", text)
        message = _rust_string("message", text) or "the server reported an error"
        out = f"{severity} {code[1]}: {message}" if code else f"{severity}: {message}"
        for part in ("detail", "hint"):
            value = _rust_string(part, text)
            if value:
                out += f" ({part}: {value})"
        return out
    mysql = re.search(r"ERROR (\d+) \(([0-9A-Z]{5})\): ([^}]*)", text)
    if mysql:
        return f"ERROR {mysql[1]} ({mysql[2]}): {mysql[3].strip()}"
    convert = re.search(
        r"Could not retrieve `(?:core::option::Option<)?(?:[\w:]+::)?(\w+)>?`: "
        r"Couldn't convert the value `\w+\(\"'?(.*?)'?\"\)`",
        text,
    )
    if convert:
        want = _ARROW_TYPES.get(convert[1], convert[1])
        return (
            f"the value {convert[2]!r} cannot be read as {want} (MySQL zero dates and negative "
            "or >24h TIME values have no Arrow equivalent): cast or filter the column in the query"
        )
    col_type = re.search(r'InvalidColumnType\((\d+), "((?:[^"\\]|\\.)*)", (\w+)\)', text)
    if col_type:
        return (
            f"column {col_type[2]!r} holds a {col_type[3]} value unlike the rest of the column "
            f"(SQLite stores any type in any column): CAST it in the query, e.g. "
            f"CAST({col_type[2]} AS TEXT), or clean the data"
        )
    if "FromSqlConversionFailure" in text and "Utf8Error" in text:
        col = re.search(r"FromSqlConversionFailure\((\d+)", text)
        where = f"result column #{int(col[1]) + 1}" if col else "a text column"
        return (
            f"{where} holds text that is not valid UTF-8: select it as a BLOB "
            "(CAST(col AS BLOB)) or fix the data"
        )
    conversion = re.search(r"kind: FromSql\((\d+)\), cause: Some\((\w+)\(\"(.*?)\"\)\)", text)
    if conversion:
        return (
            f"the value {conversion[3]!r} in result column #{int(conversion[1]) + 1} cannot be "
            "converted to its Arrow type (a numeric NaN or infinity has no decimal value): "
            "cast or filter it in the query"
        )
    unsupported = re.search(r"not implemented: (.+)", text)
    if unsupported:
        return (
            f"connectorx cannot read the type {unsupported[1].strip()}: cast the column in the "
            "query (col::text)"
        )
    sqlite = re.search(r'SqliteFailure\([^)]*\)\s*,\s*Some\("((?:[^"\\]|\\.)*)"\)', text)
    if sqlite:
        return f"SQLite: {sqlite[1]}"
    io = re.search(r'kind: (Io|Closed|Connect)\b.*?message: "((?:[^"\\]|\\.)*)"', text)
    if io:
        return f"connection lost ({io[2]})"
    if re.search(r"kind: Closed\b", text):
        return "connection closed by the server"
    return None


def driver_message(exc: BaseException) -> str:
    """One redacted line with what the server (or driver) said, without driver wrapping:
    ``DbError { severity: "ERROR", code: SqlState(E22012), message: "division by zero" ..}``
    becomes ``ERROR 22012: division by zero``."""
    try:
        text = str(exc)
    except Exception:
        text = ""
    message = _panic_message(text)
    if message is None:
        message = " ".join(text.split())
        message = re.sub(r"\s*Query was: .*$", "", message)  # ADBC repeats the statement
        message = re.sub(r"\.? SQLSTATE: [0-9A-Z]{5}$", "", message)
        server = re.search(r"\b(ERROR|FATAL|PANIC):\s+(.*)$", message)
        if server:  # libpq / tokio-postgres: keep what the server said, with its SQLSTATE
            state = sqlstate_of(exc)
            message = f"{server[1]} {state}: {server[2]}" if state else f"{server[1]}: {server[2]}"
        elif message.startswith("timed out waiting for connection: "):
            message = "cannot connect: " + message.removeprefix(
                "timed out waiting for connection: "
            )
    message = " ".join(message.split())
    if len(message) > 600:
        message = message[:600] + "..."
    return redact(message or type(exc).__name__)


# --------------------------------------------------------------------------- classification

Rule = tuple[ErrorKind, bool]

#: SQLSTATE (5 characters) or class (2 characters) -> (kind, transient); exact codes first.
SQLSTATE_RULES: dict[str, Rule] = {
    "40001": ("conflict", True),  # serialization failure
    "40P01": ("conflict", True),  # deadlock detected
    "55P03": ("conflict", True),  # lock not available
    "53300": ("connection_limit", True),  # too many connections
    "57P01": ("connect", True),  # admin shutdown
    "57P02": ("connect", True),  # crash shutdown
    "57P03": ("connect", True),  # cannot connect now (starting up)
    "57014": ("timeout", True),  # query canceled (statement_timeout)
    "3D000": ("connect", False),  # database does not exist
    "42S21": ("config", False),  # MySQL: duplicate column name (the query's output)
    "08": ("connect", True),  # connection exception
    "0A": ("query", False),  # feature not supported
    "20": ("data", False),  # case not found
    "21": ("data", False),  # cardinality (ON CONFLICT affecting a row twice)
    "22": ("data", False),  # data exception
    "23": ("data", False),  # integrity constraint violation
    "24": ("query", False),  # invalid cursor state
    "25": ("query", False),  # invalid transaction state
    "26": ("query", False),  # invalid SQL statement name
    "27": ("data", False),  # triggered data change violation
    "28": ("connect", False),  # invalid authorization (password, role)
    "2B": ("query", False),
    "2D": ("query", False),
    "2F": ("query", False),
    "34": ("query", False),  # invalid cursor name
    "3F": ("query", False),  # invalid schema name
    "42": ("query", False),  # syntax error or access rule violation
    "44": ("data", False),  # WITH CHECK OPTION violation
    "54": ("query", False),  # program limit exceeded
}

#: MySQL/MariaDB error numbers whose SQLSTATE says too little (1049 "unknown database" is 42000).
MYSQL_RULES: dict[int, Rule] = {
    1044: ("connect", False),  # access denied to the database
    1045: ("connect", False),  # access denied (password)
    1049: ("connect", False),  # unknown database
    1698: ("connect", False),  # access denied (no password for this user)
    1040: ("connection_limit", True),  # too many connections
    1203: ("connection_limit", True),  # user has too many connections
    2002: ("connect", True),  # cannot connect through the socket
    2003: ("connect", True),  # cannot connect to the server
    2006: ("connect", True),  # server has gone away
    2013: ("connect", True),  # lost connection during query
    1205: ("conflict", True),  # lock wait timeout
    1213: ("conflict", True),  # deadlock
    1317: ("timeout", True),  # query interrupted
    3024: ("timeout", True),  # max_execution_time exceeded
    1060: ("config", False),  # duplicate column name in the query's output
}

#: what a message says when it carries no code (connectorx's "db error: FATAL: ...", SQLite,
#: libpq, Rust structs); first match wins, so the specific come before the general.
_TEXT_RULES: tuple[tuple[str, ErrorKind, bool, str | None], ...] = (
    (r'database "[^"]*" does not exist|unknown database', "connect", False, "3D000"),
    (
        r"password authentication failed|role \"[^\"]*\" does not exist|"
        r"no pg_hba\.conf entry|access denied for user|authentication failed",
        "connect",
        False,
        "28000",
    ),
    (
        r"too many connections|remaining connection slots are reserved|"
        r"sorry, too many clients|connection limit exceeded",
        "connection_limit",
        True,
        "53300",
    ),
    (r"terminating connection due to administrator command", "connect", True, "57P01"),
    (
        r"the database system is (starting up|shutting down|in recovery mode)",
        "connect",
        True,
        "57P03",
    ),
    (
        r"canceling statement due to (statement timeout|user request)|"
        r"max_execution_time exceeded|query execution was interrupted",
        "timeout",
        True,
        "57014",
    ),
    (r"could not serialize access", "conflict", True, "40001"),
    (r"deadlock (detected|found)", "conflict", True, "40P01"),
    (
        r"could not obtain lock|lock wait timeout|database is locked|database is busy|"
        r"database table is locked",
        "conflict",
        True,
        None,
    ),
    (r"cannot affect row a second time", "data", False, "21000"),
    (
        r"duplicate key value|violates .* constraint|(UNIQUE|NOT NULL|CHECK|FOREIGN KEY) "
        r"constraint failed|datatype mismatch",
        "data",
        False,
        "23000",
    ),
    (
        r"invalid input syntax|out of range|value too long|division by zero|"
        r"numeric field overflow|invalid input value|invalid byte sequence|"
        r"couldn't convert the value|InvalidColumnType|FromSqlConversionFailure|Utf8Error|"
        r"kind: FromSql|incorrect \w+ value|data truncated",
        "data",
        False,
        "22000",
    ),
    (r"not implemented|not supported|unsupported type", "data", False, None),
    (
        r"\b(relation|column|function|operator|type|schema)\b.*\bdoes not exist|syntax error|"
        r"there is no parameter \$\d|no such (table|column|function)|permission denied|"
        r"unknown column|doesn't exist|error in your SQL syntax|is ambiguous",
        "query",
        False,
        "42000",
    ),
    (
        r"connection refused|connection reset|server closed the connection|could not connect|"
        r"no connection to the server|connection to server .* failed|broken pipe|"
        r"unexpected eof|end of file|connection closed|ssl syscall|kind: (io|closed|connect)\b|"
        r"lost connection|gone away|can't connect|cannot connect|timed out|timeout",
        "connect",
        True,
        None,
    ),
)
TEXT_RULES: tuple[tuple[re.Pattern[str], ErrorKind, bool, str | None], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind, transient, state)
    for pattern, kind, transient, state in _TEXT_RULES
)

#: an ADBC status code (``exc.status_code.name``) when there is no SQLSTATE and no known text.
ADBC_STATUS_RULES: dict[str, Rule] = {
    "NOT_IMPLEMENTED": ("data", False),
    "NOT_FOUND": ("query", False),
    "ALREADY_EXISTS": ("query", False),
    "INVALID_ARGUMENT": ("query", False),
    "INVALID_DATA": ("data", False),
    "INTEGRITY": ("data", False),
    "UNAUTHENTICATED": ("connect", False),
    "UNAUTHORIZED": ("query", False),
    "IO": ("connect", True),
    "CANCELLED": ("timeout", True),
    "TIMEOUT": ("timeout", True),
}

#: Python exception types (by name, so no driver is imported here) that are data errors.
_DATA_TYPES = frozenset(
    {
        "ArrowInvalid",
        "ArrowTypeError",
        "ArrowNotImplementedError",
        "ComputeError",
        "InvalidOperationError",
        "SchemaError",
        "ShapeError",
        "DuplicateError",
        "ColumnNotFoundError",
        "SchemaFieldNotFoundError",
        "OutOfBoundsError",
    }
)

_SQLSTATE_IN_TEXT = re.compile(
    r"SQLSTATE[:\s]+([0-9A-Z]{5})|SqlState\(E?([0-9A-Z]{5})\)|ERROR \d+ \(([0-9A-Z]{5})\)"
)
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
    """``(kind, transient)`` for a SQLSTATE, or None when the table does not know it."""
    return SQLSTATE_RULES.get(state) or SQLSTATE_RULES.get(state[:2])


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE carried by a driver error (ADBC attribute, or found in its text)."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and len(state) == 5 and state != "00000":
        return state
    found = _SQLSTATE_IN_TEXT.search(str(exc))
    if found:
        return found.group(1) or found.group(2) or found.group(3)
    return None


def _foreign_info(exc: BaseException) -> ErrorInfo:
    text = str(exc)
    message = driver_message(exc)
    state = sqlstate_of(exc)
    mysql = _MYSQL_CODE.search(text)
    if mysql and int(mysql[1]) in MYSQL_RULES:
        kind, transient = MYSQL_RULES[int(mysql[1])]
        return ErrorInfo(kind, transient, state, message)
    if state is not None:
        rule = rule_for_sqlstate(state)
        if rule is not None:
            return ErrorInfo(rule[0], rule[1], state, message)
    for pattern, kind, transient, implied in TEXT_RULES:
        if pattern.search(text):
            return ErrorInfo(kind, transient, state or implied, message)
    status = getattr(getattr(exc, "status_code", None), "name", None)
    if isinstance(status, str) and status in ADBC_STATUS_RULES:
        kind, transient = ADBC_STATUS_RULES[status]
        return ErrorInfo(kind, transient, state, message)
    if isinstance(exc, TimeoutError):
        return ErrorInfo("timeout", True, state, message)
    if isinstance(exc, ConnectionError):
        return ErrorInfo("connect", True, state, message)
    if type(exc).__name__ == "PanicException":
        return ErrorInfo("data", False, state, message)  # connectorx: an unreadable value or type
    if type(exc).__name__ in _DATA_TYPES or isinstance(exc, ValueError | TypeError | KeyError):
        return ErrorInfo("data", False, state, message)
    if isinstance(exc, AttributeError | ImportError | NameError):
        return ErrorInfo("config", False, state, message)
    return ErrorInfo("failed", True, state, message)


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
    kind: ErrorKind = exc.kind or (rule[0] if rule else None) or (inner.kind if inner else "failed")
    if exc.transient is not None:
        transient = bool(exc.transient)
    elif rule is not None:
        transient = rule[1]
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
            try:
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
