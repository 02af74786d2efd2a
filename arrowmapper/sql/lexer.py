"""The lexer: a query split into tokens the way one server reads it (see :mod:`arrowmapper.sql`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError
from .dialects import sql_dialect

# --------------------------------------------------------------------------- the lexer


@dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is space, comment, string, qident (a quoted identifier),
    word, number, param (a placeholder) or op (one punctuation character)."""

    kind: str
    text: str
    pos: int

    @property
    def end(self) -> int:
        return self.pos + len(self.text)

    @property
    def code(self) -> bool:
        return self.kind not in ("space", "comment")


_SPACE = " \t\n\r\f\v"
_NEWLINE = re.compile("\n")
_EOL = re.compile(r"[\n\r]")


def _ident_start(c: str) -> bool:
    return (c.isalpha() or c == "_") if c.isascii() else True


def _ident_char(c: str) -> bool:
    return _ident_start(c) or (c.isdigit() and c.isascii()) or c == "$"


_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")


def _unterminated(what: str, pos: int, sql: str) -> ConfigError:
    snippet = sql[pos : pos + 30]
    return ConfigError(
        f"the query has an unterminated {what} at position {pos} ({snippet!r}...); close it"
    )


def tokenize(sql: str, dialect: str, *, backslash: bool | None = None) -> list[Token]:
    """Split ``sql`` into tokens the way ``dialect``'s server reads it.

    ``backslash``: whether a backslash escapes the next character in plain ``'...'`` strings
    (MySQL's default, PostgreSQL with ``standard_conforming_strings = off``); None takes the
    server's default (True on MySQL, False elsewhere). Raises :class:`ConfigError` for an
    unterminated string, quoted identifier or block comment, and for MySQL's executable
    comments (``/*! ... */``), whose text the server runs.
    """
    d = sql_dialect(dialect)
    if backslash is None:
        backslash = d.strings.backslash_default
    out: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        start = i
        if c in _SPACE:
            while i < n and sql[i] in _SPACE:
                i += 1
            out.append(Token("space", sql[start:i], start))
            continue
        # line comments
        if (c == "-" and nxt == "-") or (c == "#" and d.comments.hash):
            if (
                c == "-"
                and d.comments.dash_needs_space
                and i + 2 < n
                and ord(sql[i + 2]) > 32
                and sql[i + 2] != "\x7f"
            ):
                # MySQL: "--" starts a comment only when a space or a control character
                # (DEL included) follows
                out.append(Token("op", c, i))
                i += 1
                continue
            # where it ends is each server's own rule, exactly: a lexer that ends it anywhere
            # else can be shown a string the server reads as code. PostgreSQL ends it at a
            # newline or a carriage return, MySQL/MariaDB and SQLite at a newline only
            m = (_EOL if d.comments.ends_at_cr else _NEWLINE).search(sql, i)
            i = m.start() if m else n
            out.append(Token("comment", sql[start:i], start))
            continue
        # block comments (nested on PostgreSQL)
        if c == "/" and nxt == "*":
            if d.comments.executable and (sql.startswith("/*!", i) or sql.startswith("/*M!", i)):
                raise ConfigError(
                    f"the query has a MySQL executable comment at position {i} "
                    f"({sql[i : i + 20]!r}): the server runs its text as SQL; write that SQL "
                    "without the comment"
                )
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("*/", i):
                    depth -= 1
                    i += 2
                elif d.comments.nested and sql.startswith("/*", i):
                    depth += 1
                    i += 2
                else:
                    i += 1
            if depth:
                raise _unterminated("/* comment", start, sql)
            out.append(Token("comment", sql[start:i], start))
            continue
        # strings
        if c == "'" or (c == '"' and d.strings.double_quoted):
            escapes = backslash
            prev = out[-1] if out else None
            if (
                d.strings.e_strings
                and prev is not None
                and prev.kind == "word"
                and prev.end == i
                and prev.text in ("E", "e")
            ):
                escapes = True
            i = _quoted_end(sql, i, c, escapes)
            if i < 0:
                raise _unterminated("string", start, sql)
            out.append(Token("string", sql[start:i], start))
            continue
        # quoted identifiers
        if c == '"' or (c == "`" and d.names.backtick):
            i = _quoted_end(sql, i, c, False)
            if i < 0:
                raise _unterminated("quoted name", start, sql)
            out.append(Token("qident", sql[start:i], start))
            continue
        if c == "[" and d.names.bracket:
            end = sql.find("]", i + 1)
            if end < 0:
                raise _unterminated("[name]", start, sql)
            i = end + 1
            out.append(Token("qident", sql[start:i], start))
            continue
        # dollar: quotes and $1 on PostgreSQL, $name parameters on SQLite
        if c == "$":
            if d.strings.dollar_quotes:
                m = _DOLLAR_TAG.match(sql, i)
                if m:
                    tag = m.group(0)
                    end = sql.find(tag, m.end())
                    if end < 0:
                        raise _unterminated(f"{tag}-quoted string", start, sql)
                    i = end + len(tag)
                    out.append(Token("string", sql[start:i], start))
                    continue
                if nxt.isdigit():
                    i += 1
                    while i < n and sql[i].isdigit():
                        i += 1
                    out.append(Token("param", sql[start:i], start))
                    continue
            if d.params.dollar and nxt and _ident_start(nxt):
                i += 1
                while i < n and (_ident_char(sql[i]) or sql[i] == ":"):
                    i += 1
                out.append(Token("param", sql[start:i], start))
                continue
        if c == "?" and d.params.question:  # not PostgreSQL: jsonb operators ? ?| ?&
            i += 1
            while i < n and sql[i].isdigit():
                i += 1
            out.append(Token("param", sql[start:i], start))
            continue
        if _ident_start(c):
            i += 1
            while i < n and _ident_char(sql[i]):
                i += 1
            out.append(Token("word", sql[start:i], start))
            continue
        if c.isdigit():
            i += 1
            while i < n and (sql[i].isalnum() or sql[i] in "_."):
                i += 1
            out.append(Token("number", sql[start:i], start))
            continue
        out.append(Token("op", c, i))
        i += 1
    return out


def _quoted_end(sql: str, i: int, quote: str, escapes: bool) -> int:
    """The index after the quote that closes the one at ``i`` (doubled quotes and, with
    ``escapes``, backslashes escape), or -1."""
    j, n = i + 1, len(sql)
    while j < n:
        c = sql[j]
        if escapes and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return -1


def modes(sql: str, dialect: str) -> list[bool]:
    """The backslash readings a server might apply (both when the text has a backslash and a
    setting decides)."""
    d = sql_dialect(dialect)
    first = d.strings.backslash_default
    return [first, not first] if "\\" in sql and d.strings.backslash_setting else [first]
