"""One statement per query: :func:`check_query`, :func:`bare_table` and :func:`wrap_query`."""

from __future__ import annotations

from ..errors import ConfigError
from .dialects import sql_dialect
from .lexer import Token, modes, tokenize
from .names import fold_ident, server_name

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
    for backslash in modes(query, dialect):
        try:
            tokens = tokenize(query, dialect, backslash=backslash)
            _check_tokens(tokens, query, dialect)
        except ConfigError as exc:
            if primary is None:
                raise
            setting = sql_dialect(dialect).strings.backslash_setting
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
    if t.text == "@" and sql_dialect(dialect).params.at and nxt.kind == "word":
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
    if (
        token.kind == "string"
        and sql_dialect(dialect).strings.double_quoted
        and token.text.startswith('"')
    ):
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
    hashes = sql_dialect(dialect).comments.hash and "#" in text
    newline = "\n" if ("--" in text or hashes) else ""
    return f"({text}{newline}) AS {alias}"
