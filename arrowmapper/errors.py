"""Every error arrowmapper raises, and the one place driver errors are classified.

The tree::

    ArrowMapperError                 root: catch this to catch everything of ours
     +-- ConfigError                 bad argument, URI, strategy, mode, env var (before any work)
     +-- PlanError                   the plan cannot be made (missing key column, non-unique key)
     +-- SourceError                 the source cannot be reached or read
     +-- TargetError                 the target cannot be reached, created or written
     +-- ChunkFailed                 one chunk failed for good (carries its ChunkResult)
     +-- JobFailed                   some chunks failed; ``.result`` is the JobResult

Errors have a second axis, *transient or terminal*, decided by data (SQLSTATE, status, text)
rather than by exception class: see :func:`classify`. Messages never contain a password; every
message built from a URI or a driver error goes through :func:`redact`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import ChunkResult, JobResult


class ArrowMapperError(Exception):
    """Root of every error arrowmapper raises.

    ``transient`` is the second axis: True (worth a retry), False (terminal), or None (decide
    from the driver error it wraps, see :func:`classify`).
    """

    transient: bool | None = None

    def __init__(self, message: str = "", *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class ConfigError(ArrowMapperError):
    """A bad argument, URI, strategy, mode or environment variable."""


class PlanError(ArrowMapperError):
    """The chunk plan cannot be built (missing key column, non-unique key, ...)."""


class SourceError(ArrowMapperError):
    """The source database cannot be reached or the query cannot be read."""


class TargetError(ArrowMapperError):
    """The target cannot be reached, its table created, or rows written."""


class ChunkFailed(ArrowMapperError):
    """One chunk failed for good; ``.result`` is its ChunkResult."""

    def __init__(self, message: str, result: ChunkResult | None = None) -> None:
        super().__init__(message, transient=False)
        self.result = result


class JobFailed(ArrowMapperError):
    """Some chunks failed after their retries; ``.result`` is the JobResult."""

    def __init__(self, message: str, result: JobResult) -> None:
        super().__init__(message, transient=False)
        self.result = result


# --------------------------------------------------------------------------- redaction

_URI_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?=@)")
_KV_PASSWORD = re.compile(r"(?i)(password\s*=\s*)('[^']*'|\S+)")


def redact(text: str) -> str:
    """Replace every password in URIs and ``password=...`` pairs by ``***``."""
    text = _URI_PASSWORD.sub(lambda m: m.group("head") + "***", text)
    return _KV_PASSWORD.sub(lambda m: m.group(1) + "***", text)


# --------------------------------------------------------------------------- classification

#: SQLSTATE classes/codes that are worth a retry.
TRANSIENT_SQLSTATE_PREFIXES: tuple[str, ...] = ("08",)
TRANSIENT_SQLSTATES: frozenset[str] = frozenset(
    {"40001", "40P01", "53300", "57P01", "57P02", "57P03", "55P03", "57014"}
)
#: SQLSTATE classes that never get better by retrying.
TERMINAL_SQLSTATE_CLASSES: frozenset[str] = frozenset({"22", "23", "28", "42"})

_TRANSIENT_TEXT = re.compile(
    r"(?i)(connection refused|connection reset|server closed the connection|"
    r"terminating connection|could not connect|timed out|timeout|broken pipe|"
    r"database is locked|database is busy|too many connections|"
    r"no connection to the server|connection to server .* failed|"
    r"the database system is (starting up|shutting down|in recovery mode)|"
    r"unexpected eof|end of file|connection closed|ssl syscall|kind: (io|closed|connect)\b)"
)
_SQLSTATE_IN_TEXT = re.compile(r"SQLSTATE[:\s]+([0-9A-Z]{5})|SqlState\(E([0-9A-Z]{5})\)")
_PG_TEXT_STATES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)relation .* does not exist|column .* does not exist|syntax error"), "42000"),
    (re.compile(r"(?i)duplicate key value|violates .* constraint"), "23000"),
    (re.compile(r"(?i)password authentication failed|role .* does not exist"), "28000"),
    (re.compile(r"(?i)terminating connection due to administrator command"), "57P01"),
    (
        re.compile(
            r"(?i)invalid input syntax|out of range|value too long|division by zero|"
            r"numeric field overflow|invalid input value"
        ),
        "22000",
    ),
    (re.compile(r"(?i)permission denied"), "42501"),
    (re.compile(r"(?i)canceling statement due to statement timeout"), "57014"),
)


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE carried by a driver error (ADBC attribute, or parsed from its text)."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and len(state) == 5 and state != "00000":
        return state
    text = str(exc)
    found = _SQLSTATE_IN_TEXT.search(text)
    if found:
        return found.group(1) or found.group(2)
    for pattern, code in _PG_TEXT_STATES:
        if pattern.search(text):
            return code
    return None


def classify(exc: BaseException) -> tuple[bool, str | None]:
    """Return ``(transient, sqlstate)`` for any exception raised while moving a chunk.

    Transient: SQLSTATE class 08 and 40001, 40P01, 53300, 57P01-03, 55P03, timeouts and
    connection loss. Terminal: classes 22, 23, 28, 42, our own configuration errors, and
    connectorx panics (unsupported types). Unknown errors are transient: a retry is cheap and
    bounded, a lost job is not.
    """
    if isinstance(exc, ConfigError | PlanError):
        return False, None
    marked = getattr(exc, "transient", None)
    if isinstance(exc, ArrowMapperError) and marked is not None:
        return bool(marked), None
    cause = exc.__cause__
    if isinstance(exc, ArrowMapperError) and cause is not None:
        return classify(cause)
    state = sqlstate_of(exc)
    if type(exc).__name__ == "PanicException" and state is None:
        # connectorx panics both for unsupported types (terminal) and for a connection lost
        # while streaming (transient): only the text tells them apart
        return bool(_TRANSIENT_TEXT.search(str(exc))), None
    if state is not None:
        if state in TRANSIENT_SQLSTATES or state.startswith(TRANSIENT_SQLSTATE_PREFIXES):
            return True, state
        if state[:2] in TERMINAL_SQLSTATE_CLASSES:
            return False, state
    if re.search(r"(?i)not implemented|not supported", str(exc)):
        return False, state  # an unsupported type conversion does not get better
    if isinstance(exc, TimeoutError | ConnectionError | OSError):
        return True, state
    if _TRANSIENT_TEXT.search(str(exc)):
        return True, state
    if isinstance(exc, TypeError | ValueError | KeyError | AttributeError | ImportError):
        return False, state
    # pyarrow cast errors (overflow, invalid values) are data errors.
    if type(exc).__name__ in {"ArrowInvalid", "ArrowTypeError", "ArrowNotImplementedError"}:
        return False, state
    return True, state


def describe(exc: BaseException) -> str:
    """One line naming the exception kind and its (redacted) message."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return redact(f"{type(exc).__name__}: {msg}")


def error_payload(exc: BaseException) -> dict[str, Any]:
    """A picklable summary of an exception for the trip from worker to parent."""
    transient, state = classify(exc)
    return {"message": describe(exc), "transient": transient, "sqlstate": state}
