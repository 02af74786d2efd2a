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

from .dialects import DIALECTS, GENERIC, SqlDialect, sql_dialect
from .lexer import Token, tokenize
from .names import (
    DERIVED_MARKER,
    derived_name,
    fold_ident,
    name_limit,
    quote_ident,
    same_name,
    server_name,
    string_literal,
    validate_identifier,
)
from .query import bare_table, check_query, wrap_query
from .session import PG_PINNED, pg_source_session, session_statements
from .volatile import VOLATILE_FUNCTIONS, VOLATILE_WORDS, nondeterministic

__all__ = [
    "DERIVED_MARKER",
    "DIALECTS",
    "GENERIC",
    "PG_PINNED",
    "VOLATILE_FUNCTIONS",
    "VOLATILE_WORDS",
    "SqlDialect",
    "Token",
    "bare_table",
    "check_query",
    "derived_name",
    "fold_ident",
    "name_limit",
    "nondeterministic",
    "pg_source_session",
    "quote_ident",
    "same_name",
    "server_name",
    "session_statements",
    "sql_dialect",
    "string_literal",
    "tokenize",
    "validate_identifier",
    "wrap_query",
]
