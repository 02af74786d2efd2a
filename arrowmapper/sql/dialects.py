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
class SqlDialect:
    """One server's lexical and naming rules."""

    name: str
    server: str  # how messages name the server
    quote: str = '"'  # the identifier quote
    fold: Literal["lower_ascii", "upper", "keep"] = "keep"  # an unquoted name
    names_ignore_ascii_case: bool = False  # SQLite: Orders and orders are one table
    max_name_bytes: int | None = None
    max_name_chars: int | None = None
    #: how text with a backslash is written so that it reads the same under every setting:
    #: ``E``: E'...' with doubled backslashes; ``hex``: _utf8mb4 X'...'; ``plain``: as is
    backslash_literal: Literal["E", "hex", "plain"] = "plain"
    #: the setting that decides whether a backslash escapes in '...' (None: it never does);
    #: a query with a backslash is lexed both ways and must pass both
    backslash_setting: str | None = "standard_conforming_strings"
    backslash_default: bool = False  # a backslash escapes in '...' by default
    hash_comments: bool = False  # '#' starts a line comment (MySQL)
    dash_comment_needs_space: bool = False  # MySQL: '--' then a space or control character
    comment_ends_at_cr: bool = False  # PostgreSQL: a '--' comment ends at \r too
    nested_comments: bool = False  # PostgreSQL: /* /* */ */
    executable_comments: bool = False  # MySQL runs /*! ... */: refused
    double_quote_strings: bool = False  # MySQL: "..." is a string (or, ANSI_QUOTES, a name)
    e_strings: bool = False  # PostgreSQL: E'...' takes backslash escapes
    backtick_names: bool = False
    bracket_names: bool = False  # [name]
    dollar_quotes: bool = False  # PostgreSQL: $tag$...$tag$ and $1
    dollar_params: bool = False  # SQLite: $name
    question_params: bool = True  # ?, ?1 (PostgreSQL reads ? as jsonb operators)
    at_params: bool = False  # SQLite: @name
    now_strings: bool = False  # PostgreSQL: 'now'::timestamp and its kin
    now_date_functions: bool = False  # SQLite: date('now'), datetime('now'), ...
    quoted_calls_keep_case: bool = False  # PostgreSQL: "NOW"() is not now()
    row_locator: Literal["ctid", "rowid"] | None = None  # a plain table's physical row address


GENERIC = SqlDialect("other", "other")

DIALECTS: dict[str, SqlDialect] = {
    "postgresql": SqlDialect(
        "postgresql",
        "PostgreSQL",
        fold="lower_ascii",
        max_name_bytes=63,
        backslash_literal="E",
        comment_ends_at_cr=True,
        nested_comments=True,
        e_strings=True,
        dollar_quotes=True,
        question_params=False,
        now_strings=True,
        quoted_calls_keep_case=True,
        row_locator="ctid",
    ),
    "mysql": SqlDialect(
        "mysql",
        "MySQL/MariaDB",
        quote="`",
        max_name_chars=64,
        backslash_literal="hex",
        backslash_setting="sql_mode NO_BACKSLASH_ESCAPES",
        backslash_default=True,
        hash_comments=True,
        dash_comment_needs_space=True,
        executable_comments=True,
        double_quote_strings=True,
        backtick_names=True,
    ),
    "sqlite": SqlDialect(
        "sqlite",
        "SQLite",
        names_ignore_ascii_case=True,
        backslash_setting=None,
        backtick_names=True,
        bracket_names=True,
        dollar_params=True,
        at_params=True,
        now_date_functions=True,
        row_locator="rowid",
    ),
    "mssql": replace(GENERIC, name="mssql", server="mssql", bracket_names=True),
    "oracle": replace(GENERIC, name="oracle", server="oracle", fold="upper"),
}


def sql_dialect(name: str) -> SqlDialect:
    """The rules of the server ``name`` speaks (:data:`GENERIC`'s for one without a record)."""
    found = DIALECTS.get(name)
    return found if found is not None else replace(GENERIC, name=name, server=name)
