"""Each server's SQL rules, one frozen record per dialect, looked up once by name.

Everything in :mod:`arrowmapper.sql` that differs between servers reads it from here: how an
unquoted name folds, how a name is quoted and how long it may be, how a string with a
backslash is written, and how the server's lexer reads a query (comments, strings, quoted
names, placeholders). A dialect without a record of its own (``mssql``, ``oracle``, ``other``)
gets :data:`GENERIC` with its own few differences.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class Names:
    """How the server reads a name."""

    fold: Literal["lower_ascii", "upper", "keep"] = "keep"  # an unquoted name
    ignore_ascii_case: bool = False  # SQLite: Orders and orders are one table
    max_bytes: int | None = None
    max_chars: int | None = None
    quote: str = '"'  # the identifier quote
    backtick: bool = False  # `name` is a name
    bracket: bool = False  # [name] is a name


@dataclass(frozen=True)
class Strings:
    """How the server reads a string literal."""

    #: how text with a backslash is written so that it reads the same under every setting:
    #: ``E``: E'...' with doubled backslashes; ``hex``: _utf8mb4 X'...'; ``plain``: as is
    backslash_literal: Literal["E", "hex", "plain"] = "plain"
    #: the setting that decides whether a backslash escapes in '...' (None: it never does);
    #: a query with a backslash is lexed both ways and must pass both
    backslash_setting: str | None = "standard_conforming_strings"
    backslash_default: bool = False  # a backslash escapes in '...' by default
    double_quoted: bool = False  # MySQL: "..." is a string (or, ANSI_QUOTES, a name)
    e_strings: bool = False  # PostgreSQL: E'...' takes backslash escapes
    dollar_quotes: bool = False  # PostgreSQL: $tag$...$tag$ (and $1 a placeholder)


@dataclass(frozen=True)
class Comments:
    """Where the server's comments start and end."""

    hash: bool = False  # '#' starts a line comment (MySQL)
    dash_needs_space: bool = False  # MySQL: '--' then a space or control character
    ends_at_cr: bool = False  # PostgreSQL: a '--' comment ends at \r too
    nested: bool = False  # PostgreSQL: /* /* */ */
    executable: bool = False  # MySQL runs /*! ... */: refused


@dataclass(frozen=True)
class Params:
    """Which placeholders the server's drivers read."""

    question: bool = True  # ?, ?1 (PostgreSQL reads ? as jsonb operators)
    dollar: bool = False  # SQLite: $name
    at: bool = False  # SQLite: @name


@dataclass(frozen=True)
class Volatile:
    """The server's spellings of "the time the query runs" beyond the common functions."""

    now_strings: bool = False  # PostgreSQL: 'now'::timestamp and its kin
    now_date_functions: bool = False  # SQLite: date('now'), datetime('now'), ...
    quoted_calls_keep_case: bool = False  # PostgreSQL: "NOW"() is not now()


@dataclass(frozen=True)
class SqlDialect:
    """One server's lexical and naming rules."""

    name: str
    server: str  # how messages name the server
    names: Names = Names()
    strings: Strings = Strings()
    comments: Comments = Comments()
    params: Params = Params()
    volatile: Volatile = Volatile()
    row_locator: Literal["ctid", "rowid"] | None = None  # a plain table's physical row address


GENERIC = SqlDialect("other", "other")

DIALECTS: dict[str, SqlDialect] = {
    "postgresql": SqlDialect(
        "postgresql",
        "PostgreSQL",
        Names(fold="lower_ascii", max_bytes=63),
        Strings(backslash_literal="E", e_strings=True, dollar_quotes=True),
        Comments(ends_at_cr=True, nested=True),
        Params(question=False),
        Volatile(now_strings=True, quoted_calls_keep_case=True),
        row_locator="ctid",
    ),
    "mysql": SqlDialect(
        "mysql",
        "MySQL/MariaDB",
        Names(quote="`", max_chars=64, backtick=True),
        Strings(
            backslash_literal="hex",
            backslash_setting="sql_mode NO_BACKSLASH_ESCAPES",
            backslash_default=True,
            double_quoted=True,
        ),
        Comments(hash=True, dash_needs_space=True, executable=True),
    ),
    "sqlite": SqlDialect(
        "sqlite",
        "SQLite",
        Names(ignore_ascii_case=True, backtick=True, bracket=True),
        Strings(backslash_setting=None),
        params=Params(dollar=True, at=True),
        volatile=Volatile(now_date_functions=True),
        row_locator="rowid",
    ),
    "mssql": replace(GENERIC, name="mssql", server="mssql", names=Names(bracket=True)),
    "oracle": replace(GENERIC, name="oracle", server="oracle", names=Names(fold="upper")),
}


def sql_dialect(name: str) -> SqlDialect:
    """The rules of the server ``name`` speaks (:data:`GENERIC`'s for one without a record)."""
    found = DIALECTS.get(name)
    return found if found is not None else replace(GENERIC, name=name, server=name)
