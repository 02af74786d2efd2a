"""Names with each server's own rules: folding, quoting, limits, derived names, literals.

*Unquoted* names fold as the server folds them: PostgreSQL lowers ASCII ``A-Z`` only (its
``downcase_identifier`` in a UTF-8 database: unquoted ``ÉTÉ`` is ``ÉtÉ``); MySQL/MariaDB keep the
case; SQLite keeps the case and compares names without regard to ASCII case. Limits are the
server's (:class:`~arrowmapper.sql.dialects.SqlDialect`): a user's name over the limit is refused
(:func:`validate_identifier`), never cut; a name arrowmapper makes up from a user's name comes
from :func:`derived_name`, which always fits and always carries the reserved marker ``__am_``.
"""

from __future__ import annotations

import hashlib
import re

from ..errors import ConfigError
from .dialects import sql_dialect

#: Every name arrowmapper derives from a user's name contains this; user names may not.
DERIVED_MARKER = "__am_"

# --------------------------------------------------------------------------- names


def fold_ident(name: str, dialect: str) -> str:
    """The name the server means by ``name`` written *unquoted*.

    PostgreSQL lowers ASCII ``A-Z`` (non-ASCII letters keep their case in a UTF-8 database);
    Oracle raises to upper case; MySQL, SQLite and the rest keep the case as written (SQLite
    then compares case-insensitively: see :func:`same_name`).
    """
    fold = sql_dialect(dialect).names.fold
    if fold == "lower_ascii":
        return name.translate(_ASCII_LOWER)
    return name.upper() if fold == "upper" else name


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def same_name(a: str, b: str, dialect: str) -> bool:
    """Whether two stored names denote the same object (SQLite ignores ASCII case)."""
    if sql_dialect(dialect).names.ignore_ascii_case:
        return a.translate(_ASCII_LOWER) == b.translate(_ASCII_LOWER)
    return a == b


def quote_ident(name: str, dialect: str = "postgresql") -> str:
    """``name`` as a quoted identifier: backticks on MySQL, double quotes elsewhere.

    The quoted name means exactly ``name`` (no folding). A NUL cannot be part of a name.
    """
    if "\x00" in name:
        raise ConfigError(f"the name {name!r} contains a NUL character, which no server allows")
    q = sql_dialect(dialect).names.quote
    return q + name.replace(q, q + q) + q


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
    style = sql_dialect(dialect).strings.backslash_literal if "\\" in value else "plain"
    if style == "E":
        return "E'" + text.replace("\\", "\\\\") + "'"
    if style == "hex":
        return "_utf8mb4 X'" + value.encode().hex() + "'"
    return "'" + text + "'"


def name_limit(dialect: str) -> tuple[int | None, int | None]:
    """``(max_bytes, max_chars)`` of a name: PostgreSQL 63 bytes (NAMEDATALEN - 1, UTF-8),
    MySQL 64 characters, SQLite none."""
    d = sql_dialect(dialect)
    return d.names.max_bytes, d.names.max_chars


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
    server = sql_dialect(dialect).server
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
