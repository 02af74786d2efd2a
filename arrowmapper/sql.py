"""Identifiers and queries with each server's own rules.

Names
    *Unquoted* names fold as the server folds them: PostgreSQL lowers ASCII ``A-Z`` only (its
    ``downcase_identifier`` in a UTF-8 database: unquoted ``ÉTÉ`` is ``ÉtÉ``);
    MySQL/MariaDB keep the case (whether ``Orders`` and ``orders`` are one table is the
    server's ``lower_case_table_names``; backticks do not change it); SQLite keeps the case and
    compares names without regard to ASCII case, quoted or not. Quoting is per dialect (double
    quotes; backticks on MySQL). Limits are the server's: PostgreSQL keeps ``NAMEDATALEN - 1``
    = 63 *bytes* of a name and cuts the rest silently, MySQL takes 64 characters, SQLite has no
    limit. A user's table or schema name over the limit is refused (:func:`validate_identifier`),
    never cut; a name arrowmapper makes up from a user's name (a staging table, an index) comes
    from :func:`derived_name`, which always fits and always carries the reserved marker
    ``__am_``.

Queries
    Exactly one statement reaches a source. :func:`check_query` runs a small lexer that knows
    each dialect's strings (``'...'`` with ``''``; ``E'...'`` and dollar quotes on PostgreSQL;
    backslash escapes on MySQL), quoted identifiers and comments (``--``; ``#`` on MySQL;
    ``/* */``, nested on PostgreSQL), and refuses a ``;`` that is not the trailing terminator,
    parentheses that do not balance (a query that closes the wrapping ``(...) AS _am_src``),
    placeholders (``$1``, ``?``, ``%s``, ``:name``) and MySQL's executable comments. Where the
    server's reading depends on a setting (``standard_conforming_strings``, MySQL's
    ``NO_BACKSLASH_ESCAPES``), the query is lexed both ways and must pass both; where the
    servers differ (a ``--`` comment ends at ``\\n`` or ``\\r`` on PostgreSQL, at ``\\n``
    only on MySQL and SQLite; MySQL's ``--`` needs a space or control character after it),
    the lexer follows each server's own rule exactly. A trailing ``;`` or comment is dropped,
    so the query can be wrapped.

    :func:`nondeterministic` says why a query may return other rows when it runs again (a
    ``LIMIT``/``OFFSET``/``FETCH FIRST``/``TOP`` anywhere, a volatile function such as
    ``random()`` or ``now()``, ``TABLESAMPLE``, the ``'now'`` date string): such a query is
    read in one chunk, since every chunk runs the query again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .errors import ConfigError

__all__ = [
    "DERIVED_MARKER",
    "VOLATILE_FUNCTIONS",
    "VOLATILE_WORDS",
    "Token",
    "bare_table",
    "check_query",
    "derived_name",
    "fold_ident",
    "name_limit",
    "nondeterministic",
    "quote_ident",
    "same_name",
    "server_name",
    "string_literal",
    "tokenize",
    "validate_identifier",
    "wrap_query",
]

#: Every name arrowmapper derives from a user's name contains this; user names may not.
DERIVED_MARKER = "__am_"

_SERVER = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB", "sqlite": "SQLite"}


# --------------------------------------------------------------------------- names


def fold_ident(name: str, dialect: str) -> str:
    """The name the server means by ``name`` written *unquoted*.

    PostgreSQL lowers ASCII ``A-Z`` (non-ASCII letters keep their case in a UTF-8 database);
    Oracle raises to upper case; MySQL, SQLite and the rest keep the case as written (SQLite
    then compares case-insensitively: see :func:`same_name`).
    """
    if dialect == "postgresql":
        return name.translate(_ASCII_LOWER)
    if dialect == "oracle":
        return name.upper()
    return name


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def same_name(a: str, b: str, dialect: str) -> bool:
    """Whether two stored names denote the same object (SQLite ignores ASCII case)."""
    if dialect == "sqlite":
        return a.translate(_ASCII_LOWER) == b.translate(_ASCII_LOWER)
    return a == b


def quote_ident(name: str, dialect: str = "postgresql") -> str:
    """``name`` as a quoted identifier: backticks on MySQL, double quotes elsewhere.

    The quoted name means exactly ``name`` (no folding). A NUL cannot be part of a name.
    """
    if "\x00" in name:
        raise ConfigError(f"the name {name!r} contains a NUL character, which no server allows")
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def string_literal(value: str, dialect: str) -> str:
    """``value`` as a SQL string literal that means ``value`` whatever the session's settings.

    A backslash is where servers disagree: PostgreSQL reads it as an escape in a plain literal
    when ``standard_conforming_strings`` is off (so ``'a\\z'`` would be ``az``, and a key
    value ending in a backslash would end the string early), MySQL unless
    ``NO_BACKSLASH_ESCAPES`` is set. Text with a backslash is therefore written as PostgreSQL's
    ``E'...'`` (backslashes doubled: read the same under either setting) or MySQL's
    ``_utf8mb4 X'...'`` (hex: no escapes at all); SQLite never escapes."""
    if "\x00" in value:
        raise ConfigError(f"the text {value!r} contains a NUL character")
    text = value.replace("'", "''")
    if "\\" in value and dialect == "postgresql":
        return "E'" + text.replace("\\", "\\\\") + "'"
    if "\\" in value and dialect == "mysql":
        return "_utf8mb4 X'" + value.encode().hex() + "'"
    return "'" + text + "'"


def name_limit(dialect: str) -> tuple[int | None, int | None]:
    """``(max_bytes, max_chars)`` of a name: PostgreSQL 63 bytes (NAMEDATALEN - 1, UTF-8),
    MySQL 64 characters, SQLite none."""
    if dialect == "postgresql":
        return 63, None
    if dialect == "mysql":
        return None, 64
    return None, None


def _utf8(name: str) -> bytes:
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            f"the name {name!r} is not valid Unicode (a lone surrogate); pass a proper string"
        ) from None


def _clip_bytes(name: str, limit: int) -> str:
    """The longest prefix of ``name`` of at most ``limit`` UTF-8 bytes (whole characters)."""
    raw = _utf8(name)
    if len(raw) <= limit:
        return name
    return raw[: max(0, limit)].decode("utf-8", errors="ignore")


def server_name(name: str, dialect: str) -> str:
    """What the server keeps of a name: PostgreSQL cuts it to 63 bytes on a character
    boundary (silently); the others keep it (MySQL refuses one that is too long)."""
    max_bytes, _ = name_limit(dialect)
    return _clip_bytes(name, max_bytes) if max_bytes is not None else name


def validate_identifier(name: object, what: str, dialect: str = "postgresql") -> str:
    """Check a user's table or schema name: a non-empty string without NUL, within the
    server's limit (PostgreSQL: 63 bytes, by default for every target since it is the
    strictest), and without the marker ``__am_`` arrowmapper reserves for derived names.
    Returns it unchanged: these names are used exactly as given (quoted, never folded)."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what} must be a non-empty name, got {name!r}")
    if "\x00" in name:
        raise ConfigError(f"{what} {name!r} contains a NUL character, which no server allows")
    size = len(_utf8(name))
    max_bytes, max_chars = name_limit(dialect)
    server = _SERVER.get(dialect, dialect)
    if max_bytes is not None and size > max_bytes:
        raise ConfigError(
            f"{what} {name!r} is {size} bytes in UTF-8 ({len(name)} characters); {server} keeps "
            f"at most {max_bytes} bytes of a name and would cut the rest silently: choose a "
            f"name of at most {max_bytes} bytes"
        )
    if max_chars is not None and len(name) > max_chars:
        raise ConfigError(
            f"{what} {name!r} is {len(name)} characters; {server} allows at most {max_chars}: "
            "choose a shorter name"
        )
    if DERIVED_MARKER in name:
        raise ConfigError(
            f"{what} {name!r} contains {DERIVED_MARKER!r}, which arrowmapper reserves for the "
            "tables it derives from yours (staging tables, keys): choose a name without it"
        )
    return name


_TAG = re.compile(r"^[a-z][a-z0-9_]{0,15}$")


def derived_name(base: str, tag: str, dialect: str = "postgresql", *, salt: str = "") -> str:
    """A name arrowmapper makes from a user's name: ``<base, shortened>__am_<tag>_<hash>``.

    The hash covers the whole ``base``, ``tag`` and ``salt`` (a job id, say), so two long names
    that share a prefix get different derived names. ``base`` is shortened on a character
    boundary until the whole name fits the server's limit (63 bytes on PostgreSQL, 64
    characters on MySQL), so the server never cuts it; and since it always contains the
    reserved marker ``__am_`` (:func:`validate_identifier` refuses it in user names), it can
    never equal, or be cut to, a user's table name. ``tag``: 1-16 of ``[a-z0-9_]``.
    """
    if not _TAG.match(tag):
        raise ValueError(f"derived_name tag must match {_TAG.pattern}, got {tag!r}")
    seed = "\x00".join((base, tag, salt)).encode("utf-8", errors="surrogatepass")
    suffix = f"{DERIVED_MARKER}{tag}_{hashlib.sha256(seed).hexdigest()[:10]}"
    max_bytes, max_chars = name_limit(dialect)
    keep = base
    if max_bytes is not None:
        keep = _clip_bytes(keep, max_bytes - len(suffix))
    if max_chars is not None:
        keep = keep[: max_chars - len(suffix)]
    return keep + suffix


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
    if backslash is None:
        backslash = dialect == "mysql"
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
        if (c == "-" and nxt == "-") or (c == "#" and dialect == "mysql"):
            if (
                c == "-"
                and dialect == "mysql"
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
            m = (_EOL if dialect == "postgresql" else _NEWLINE).search(sql, i)
            i = m.start() if m else n
            out.append(Token("comment", sql[start:i], start))
            continue
        # block comments (nested on PostgreSQL)
        if c == "/" and nxt == "*":
            if dialect == "mysql" and (sql.startswith("/*!", i) or sql.startswith("/*M!", i)):
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
                elif dialect == "postgresql" and sql.startswith("/*", i):
                    depth += 1
                    i += 2
                else:
                    i += 1
            if depth:
                raise _unterminated("/* comment", start, sql)
            out.append(Token("comment", sql[start:i], start))
            continue
        # strings
        if c == "'" or (c == '"' and dialect == "mysql"):
            escapes = backslash
            prev = out[-1] if out else None
            if (
                dialect == "postgresql"
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
        if c == '"' or (c == "`" and dialect in ("mysql", "sqlite")):
            i = _quoted_end(sql, i, c, False)
            if i < 0:
                raise _unterminated("quoted name", start, sql)
            out.append(Token("qident", sql[start:i], start))
            continue
        if c == "[" and dialect in ("sqlite", "mssql"):
            end = sql.find("]", i + 1)
            if end < 0:
                raise _unterminated("[name]", start, sql)
            i = end + 1
            out.append(Token("qident", sql[start:i], start))
            continue
        # dollar: quotes and $1 on PostgreSQL, $name parameters on SQLite
        if c == "$":
            if dialect == "postgresql":
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
            if dialect == "sqlite" and nxt and _ident_start(nxt):
                i += 1
                while i < n and (_ident_char(sql[i]) or sql[i] == ":"):
                    i += 1
                out.append(Token("param", sql[start:i], start))
                continue
        if c == "?" and dialect != "postgresql":  # PostgreSQL: jsonb operators ? ?| ?&
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


def _modes(sql: str, dialect: str) -> list[bool]:
    """The backslash readings a server might apply (both when the text has a backslash)."""
    first = dialect == "mysql"
    return [first, not first] if "\\" in sql and dialect != "sqlite" else [first]


# --------------------------------------------------------------------------- queries

_INLINE = "arrowmapper runs the query as is, without parameters: inline the values"


def check_query(query: object, dialect: str) -> str:
    """Refuse anything but one statement; return it without a trailing ``;`` or comment.

    Raises :class:`ConfigError` before anything runs for: an empty query; a ``;`` followed by
    more SQL; parentheses that do not balance outside strings and comments (a ``)`` that would
    close arrowmapper's ``(query) AS _am_src``); a placeholder; an unterminated string or
    comment; MySQL's executable ``/*! */`` comments.
    """
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("query must be a non-empty SQL query or table name")
    if "\x00" in query:
        raise ConfigError("the query contains a NUL character; remove it")
    primary: list[Token] | None = None
    for backslash in _modes(query, dialect):
        try:
            tokens = tokenize(query, dialect, backslash=backslash)
            _check_tokens(tokens, query, dialect)
        except ConfigError as exc:
            if primary is None:
                raise
            setting = (
                "sql_mode NO_BACKSLASH_ESCAPES"
                if dialect == "mysql"
                else "standard_conforming_strings"
            )
            raise ConfigError(
                f"the query reads differently when a backslash escapes a quote than when it "
                f"does not (the server's {setting} decides), and one reading is refused: "
                f"{exc}. Write a quote inside a string as '' instead of \\'"
            ) from None
        if primary is None:
            primary = tokens
    assert primary is not None
    last = [t for t in primary if t.code and t.text != ";"]
    if not last:
        raise ConfigError("the query holds no SQL (only comments or ';'); pass a query")
    first = next(t for t in primary if t.kind != "space")
    return query[first.pos : last[-1].end]


def _check_tokens(tokens: list[Token], sql: str, dialect: str) -> None:
    code = [t for t in tokens if t.code]
    for k, t in enumerate(code):
        if t.kind == "op" and t.text == ";":
            rest = [u for u in code[k + 1 :] if u.text != ";"]
            if rest:
                tail = sql[rest[0].pos : rest[0].pos + 40]
                raise ConfigError(
                    f"the query holds more than one statement (a ';' at position {t.pos}, then "
                    f"{tail!r}); arrowmapper sends exactly one query to the source: remove "
                    "everything after the first statement"
                )
    depth = 0
    brackets = 0
    for k, t in enumerate(code):
        if t.kind == "op" and t.text == "(":
            depth += 1
        elif t.kind == "op" and t.text == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(
                    f"the query's parentheses do not balance: the ')' at position {t.pos} "
                    "closes nothing. arrowmapper reads the query as a subquery, "
                    "SELECT * FROM (query) AS _am_src, so a query may not close it; fix the "
                    "parentheses"
                )
        elif t.kind == "op" and t.text == "[":
            brackets += 1
        elif t.kind == "op" and t.text == "]":
            brackets = max(0, brackets - 1)
        placeholder = _placeholder(code, k, dialect, brackets)
        if placeholder:
            raise ConfigError(
                f"the query has a placeholder ({placeholder} at position {t.pos}); {_INLINE} "
                "(e.g. WHERE id > 100)"
                + (
                    " — if '%' is the modulo operator, put a space after it"
                    if placeholder.startswith("%")
                    else ""
                )
            )
    if depth:
        raise ConfigError(
            f"the query's parentheses do not balance ({depth} '(' not closed); fix the parentheses"
        )


def _placeholder(code: list[Token], k: int, dialect: str, brackets: int) -> str | None:
    t = code[k]
    if t.kind == "param":
        return t.text
    nxt = code[k + 1] if k + 1 < len(code) else None
    adjacent = nxt is not None and nxt.pos == t.end
    if t.kind != "op" or not adjacent or nxt is None:
        return None
    if t.text == "%":
        if nxt.kind == "word" and nxt.text == "s":
            return "%s"
        after = code[k + 2 : k + 5]
        if (
            nxt.text == "("
            and len(after) == 3
            and after[0].kind == "word"
            and after[1].text == ")"
            and after[2].text == "s"
            and after[2].pos == after[1].end
        ):
            return f"%({after[0].text})s"
        return None
    if t.text == ":" and nxt.kind == "word" and not brackets:
        prev = code[k - 1] if k else None
        if prev is not None and prev.text == ":" and prev.end == t.pos:
            return None  # the second colon of a :: cast
        return ":" + nxt.text
    if t.text == "@" and dialect == "sqlite" and nxt.kind == "word":
        return "@" + nxt.text
    return None


def _name(token: Token, dialect: str) -> str | None:
    """The object name a token denotes, as the server resolves it; None if not a name."""
    if token.kind == "word":
        return server_name(fold_ident(token.text, dialect), dialect)
    if token.kind == "qident":
        q = token.text[0]
        inner = token.text[1:-1]
        if q == "[":
            return server_name(inner, dialect)
        return server_name(inner.replace(q + q, q), dialect)
    if token.kind == "string" and dialect == "mysql" and token.text.startswith('"'):
        # a double-quoted name (ANSI_QUOTES, or a bare query meant as a table)
        return token.text[1:-1].replace('""', '"')
    return None


def bare_table(query: str, dialect: str = "postgresql") -> tuple[str | None, str] | None:
    """``(schema, table)`` when ``query`` is a plain table name (``orders``, ``shop.orders``,
    ``"My Table"``) or ``SELECT * FROM`` one, as the server resolves them: unquoted names
    folded (``Orders`` is ``orders`` on PostgreSQL), quoted ones exact; None otherwise."""
    try:
        tokens = tokenize(query, dialect)
    except ConfigError:
        return None
    code = [t for t in tokens if t.code]
    while code and code[-1].text == ";":
        code.pop()
    words = [t.text.lower() if t.kind == "word" else t.text for t in code[:3]]
    if words == ["select", "*", "from"]:
        code = code[3:]
    if len(code) == 1:
        table = _name(code[0], dialect)
        return (None, table) if table else None
    if len(code) == 3 and code[1].text == "." and code[1].kind == "op":
        schema, table = _name(code[0], dialect), _name(code[2], dialect)
        return (schema, table) if schema and table else None
    return None


def wrap_query(query: str, dialect: str, alias: str = "_am_src") -> str:
    """``(query) AS alias``, after :func:`check_query`; the closing parenthesis goes on a new
    line when the query has a line comment, so no comment can swallow it."""
    text = check_query(query, dialect)
    newline = "\n" if ("--" in text or (dialect == "mysql" and "#" in text)) else ""
    return f"({text}{newline}) AS {alias}"


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
            if _now_string(t, prev, nxt, code[k + 2] if k + 2 < len(code) else None, dialect):
                return f"the date string {t.text} stands for the time the query runs"
            if dialect == "sqlite" and date_calls and t.text[1:-1].strip().lower() == "now":
                return f"it calls {sorted(date_calls)[0]}() with 'now', the time the query runs"
            continue
        if t.kind == "qident" and nxt is not None and nxt.text == "(":
            name = t.text[1:-1]  # "now"() calls now() on every server
            # PostgreSQL's quoted names keep their case ("NOW" is another function)
            if name.lower() in VOLATILE_FUNCTIONS and (
                dialect != "postgresql" or name == name.lower()
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


def _now_string(
    t: Token, prev: Token | None, nxt: Token | None, after: Token | None, dialect: str
) -> bool:
    """PostgreSQL's special date strings, cast to a date/time type: ``'now'::timestamp``,
    ``timestamp 'now'``, ``CAST('today' AS date)``."""
    if dialect != "postgresql" or t.text[1:-1].strip().lower() not in _NOW_STRINGS:
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


# --------------------------------------------------------------------------- sessions

#: Output-only settings every PostgreSQL source read pins (the query's own literals are read
#: as before): ISO dates (the day/month order of date input is kept), floats to their last
#: exact digit, bytea as hex. A database or role may set other styles; text read under them
#: would be parsed wrongly by a target with the defaults.
PG_PINNED: tuple[tuple[str, str], ...] = (
    ("DateStyle", "ISO"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
)


def pg_source_session(local: bool = False) -> str:
    """One statement (connectorx runs a single pre-execution query) that pins
    :data:`PG_PINNED` for the session (or, ``local``, the transaction)."""
    scope = "true" if local else "false"
    order = "COALESCE(NULLIF(split_part(current_setting('DateStyle'), ', ', 2), ''), 'MDY')"
    return (
        f"SELECT set_config('DateStyle', 'ISO, ' || {order}, {scope}), "
        f"set_config('extra_float_digits', '1', {scope}), "
        f"set_config('bytea_output', 'hex', {scope})"
    )


def session_statements(session: tuple[tuple[str, str], ...]) -> list[str]:
    """``SET LOCAL`` statements for a target transaction that parses or reads back text the
    source rendered under ``session``."""
    return [f"SET LOCAL {name} = '{value.replace(chr(39), chr(39) * 2)}'" for name, value in session]
