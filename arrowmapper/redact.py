"""Passwords never leave arrowmapper: in messages, exception chains and log lines.

:func:`redact` replaces every password in a text (URIs, ``password=...`` pairs, driver debug
structs); :func:`scrub` cleans an exception chain in place; :class:`RedactingFilter` sits on
the ``arrowmapper`` logger (installed on import). :func:`userinfo_end` is the one reading of
where a URI's userinfo ends, shared with URI parsing. Nothing here imports the rest of the
package; :mod:`arrowmapper.errors` re-exports these names.
"""

from __future__ import annotations

import logging
import re

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


def scrub(exc: BaseException, own: tuple[type[BaseException], ...] = ()) -> BaseException:
    """Make ``exc`` and every exception in its chain safe to print, in place: our own messages
    (``own``: the classes whose messages are ours, :class:`RedactedError` always) are redacted,
    and a foreign exception whose text holds a password is replaced in the chain by a
    :class:`RedactedError` (its traceback kept, for ``--debug``). Returns ``exc``.
    :func:`arrowmapper.errors.scrub` passes the error tree's root."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, (*own, RedactedError)):
            node.args = tuple(redact(a) if isinstance(a, str) else a for a in node.args)
            notes = getattr(node, "__notes__", None)
            if notes:
                node.__notes__ = [redact(n) for n in notes]
        for attr in ("__cause__", "__context__"):
            linked = getattr(node, attr)
            if linked is None:
                continue
            if not isinstance(linked, own) and not _is_clean(linked):
                linked = _stand_in(linked)
                setattr(node, attr, linked)
            todo.append(linked)
    return exc


def printable(exc: BaseException, own: tuple[type[BaseException], ...] = ()) -> BaseException:
    """``exc`` made safe for ``traceback.print_exception``: scrubbed, or a stand-in when its
    own text holds a password (``own`` as for :func:`scrub`)."""
    top = exc if isinstance(exc, own) or _is_clean(exc) else _stand_in(exc)
    return scrub(top, own)


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


__all__ = ["RedactedError", "RedactingFilter", "printable", "redact", "scrub", "userinfo_end"]
