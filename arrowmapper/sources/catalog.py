"""The source's catalog for ``map_tables``: which tables a list of names or patterns means.

Names and patterns match as the server spells its names (``Order Items``, ``ünïcode``, a
mixed-case name: exactly, no folding). A pattern is ``schema.table`` or ``table`` (the schema an
unqualified name resolves to: PostgreSQL's ``current_schema()``, MySQL's database, SQLite's
``main``); each part is a shell-style pattern (``*``, ``?``, ``[abc]``), and a part in double
quotes is literal (``"my.schema"."Order*"`` has a dot in its schema and a star in its table).
Base tables and partitioned parents are matched (their leaf partitions are read through the
parent); views and materialized views only when asked. The ledger's own tables never match.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from ..config import RESERVED_TABLES, Endpoint
from ..errors import ConfigError
from ..sql import quote_ident
from .dialects import source_dialect
from .reader import rows_of

#: arrowmapper's own tables in a database that was a target before: never copied
INTERNAL = ("arrowmapper_ledger", "arrowmapper_jobs")


@dataclass(frozen=True)
class SourceTable:
    """One relation of the source: its schema and name as the server spells them."""

    schema: str
    name: str
    kind: str  # "table" or "view"
    default_schema: bool  # an unqualified name resolves to it
    key: str | None = None  # a one-column primary key to cut by (where the catalog gives it)

    @property
    def display(self) -> str:
        """``schema.name`` as shown in messages (unquoted)."""
        return f"{self.schema}.{self.name}"

    def query(self, dialect: str) -> str:
        """The relation as a query: its quoted (schema-qualified) name."""
        name = quote_ident(self.name, dialect)
        if not source_dialect(dialect).qualifies:
            return name
        return f"{quote_ident(self.schema, dialect)}.{name}"


def split_pattern(pattern: str) -> tuple[str | None, str, bool, bool]:
    """``(schema, table, schema_literal, table_literal)`` of a pattern: split at the first dot
    outside double quotes; a quoted part is literal (``""`` inside it is one quote)."""
    parts: list[str] = []
    literal: list[bool] = []
    buf, quoted, was_quoted, i = "", False, False, 0
    while i < len(pattern):
        ch = pattern[i]
        if quoted:
            if ch == '"' and pattern[i + 1 : i + 2] == '"':
                buf += '"'
                i += 1
            elif ch == '"':
                quoted = False
            else:
                buf += ch
        elif ch == '"' and not buf:
            quoted = was_quoted = True
        elif ch == "." and len(parts) == 0:
            parts.append(buf)
            literal.append(was_quoted)
            buf, was_quoted = "", False
        else:
            buf += ch
        i += 1
    if quoted:
        raise ConfigError(f"table pattern {pattern!r} has an unclosed double quote")
    parts.append(buf)
    literal.append(was_quoted)
    if any(not p for p in parts):
        raise ConfigError(
            f"table pattern {pattern!r} has an empty part; write 'schema.table', 'table' or "
            "a pattern such as 'public.*'"
        )
    if len(parts) == 1:
        return None, parts[0], False, literal[0]
    return parts[0], parts[1], literal[0], literal[1]


def _matches(part: str, pattern: str, literal: bool) -> bool:
    return part == pattern if literal else fnmatch.fnmatchcase(part, pattern)


def parse_patterns(tables: str | Iterable[str]) -> list[str]:
    """``tables`` as a list of patterns: a string is split at commas outside double quotes."""
    if isinstance(tables, str):
        out, buf, quoted = [], "", False
        for ch in tables:
            if ch == '"':
                quoted = not quoted
            if ch == "," and not quoted:
                out.append(buf.strip())
                buf = ""
            else:
                buf += ch
        out.append(buf.strip())
        patterns = [p for p in out if p]
    else:
        patterns = list(tables)
        for p in patterns:
            if not isinstance(p, str) or not p:
                raise ConfigError(f"tables must be table names or patterns (strings), got {p!r}")
    if not patterns:
        raise ConfigError("tables is empty: name the tables, or a pattern such as 'public.*'")
    return patterns


def list_relations(endpoint: Endpoint) -> list[SourceTable]:
    """Every table and view of the source (its system schemas and the ledger's tables left out)."""
    sql = source_dialect(endpoint.dialect).relations
    if sql is None:
        raise ConfigError(
            f"map_tables cannot list the tables of a {endpoint.dialect} source; copy each one "
            "with map_query"
        )
    out = []
    for row in rows_of(endpoint, sql):
        name = str(row["table_name"])
        if name in INTERNAL or row["kind"] == "other":
            continue
        key = row.get("key_column")
        out.append(
            SourceTable(
                str(row["schema_name"]),
                name,
                str(row["kind"]),
                bool(row["is_default"]),
                str(key) if key is not None else None,
            )
        )
    return out


def resolve_tables(
    endpoint: Endpoint, tables: str | Iterable[str], include_views: bool = False
) -> list[SourceTable]:
    """The source's tables ``tables`` names (in the catalog's order, each once). A pattern
    never matches arrowmapper's reserved tables (``RESERVED_TABLES``: only naming one does,
    and the job refuses it); a pattern that matches nothing is a ConfigError naming it (and, when a view matched, saying so)."""
    patterns = parse_patterns(tables)
    relations = list_relations(endpoint)
    chosen: dict[tuple[str, str], SourceTable] = {}
    for pattern in patterns:
        schema, table, schema_lit, table_lit = split_pattern(pattern)
        hits: list[SourceTable] = []
        views: list[SourceTable] = []
        for rel in relations:
            in_schema = (
                rel.default_schema if schema is None else _matches(rel.schema, schema, schema_lit)
            )
            if not in_schema or not _matches(rel.name, table, table_lit):
                continue
            if rel.name.lower() in RESERVED_TABLES and rel.name != table:
                continue  # arrowmapper's own (marks of an earlier target): never by a pattern
            (hits if rel.kind == "table" or include_views else views).append(rel)
        if not hits:
            hint = (
                f"; it matches only views ({', '.join(v.display for v in views[:3])}): pass "
                "include_views=True to copy their rows"
                if views
                else "; names match exactly as the server spells them (case included)"
            )
            raise ConfigError(f"table pattern {pattern!r} matches no table in the source{hint}")
        for rel in hits:
            chosen.setdefault((rel.schema, rel.name), rel)
    return list(chosen.values())


__all__ = ["SourceTable", "list_relations", "parse_patterns", "resolve_tables", "split_pattern"]
