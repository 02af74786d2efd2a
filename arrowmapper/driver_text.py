"""What a driver said, as one redacted line: the server's words, without the driver's wrapping.

connectorx panics carry Rust debug structs (``DbError { severity: "ERROR", code:
SqlState(E22012), message: "division by zero" .. }``), ADBC repeats the statement, libpq
prefixes ``ERROR:``; :func:`driver_message` keeps what the server said (``ERROR 22012: division
by zero``) and :func:`sqlstate_of` finds the SQLSTATE. Classification is not here: it is the
table in :mod:`arrowmapper.errors`, which re-exports these names.
"""

from __future__ import annotations

import re

from .redact import redact

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


def _severity(exc: BaseException) -> str | None:
    """The server's severity (ERROR, FATAL) a driver error carries as a field (psycopg's
    ``diag``), or None."""
    diag = getattr(exc, "diag", None)
    severity = getattr(diag, "severity_nonlocalized", None) or getattr(diag, "severity", None)
    return severity if isinstance(severity, str) and severity else None


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
        elif _severity(exc):  # psycopg: the server's fields, not in its text
            state = sqlstate_of(exc)
            primary = getattr(getattr(exc, "diag", None), "message_primary", None) or message
            head = f"{_severity(exc)} {state}" if state else _severity(exc)
            message = f"{head}: {primary}"
        elif message.startswith("timed out waiting for connection: "):
            message = "cannot connect: " + message.removeprefix(
                "timed out waiting for connection: "
            )
    message = " ".join(message.split())
    if len(message) > 600:
        message = message[:600] + "..."
    return redact(message or type(exc).__name__)


_SQLSTATE_IN_TEXT = re.compile(
    r"SQLSTATE[:\s]+([0-9A-Z]{5})|SqlState\(E?([0-9A-Z]{5})\)|ERROR \d+ \(([0-9A-Z]{5})\)"
)


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE carried by a driver error (ADBC attribute, or found in its text)."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and len(state) == 5 and state != "00000":
        return state
    found = _SQLSTATE_IN_TEXT.search(str(exc))
    if found:
        return found.group(1) or found.group(2) or found.group(3)
    return None


__all__ = ["driver_message", "sqlstate_of"]
