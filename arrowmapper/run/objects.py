"""What ``map_tables`` copies besides rows, PostgreSQL to PostgreSQL (as pgcopydb does):
primary keys, unique constraints, indexes and foreign keys (``constraints=True``), and
sequence values (``sequences=True``).

The source's catalog gives each definition (``pg_get_constraintdef``, ``pg_get_indexdef``);
the table names in it are re-qualified to the target tables. Keys and indexes come after
every row is loaded (building an index once is cheaper than maintaining it per chunk), foreign
keys last (their tables' keys must exist). One already on the target is skipped, and one the
target refuses (duplicate rows under a unique key, ...) is reported, not fatal: the rows are
loaded either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from ..config import Endpoint
from ..errors import redact
from ..sources.catalog import SourceTable
from ..sources.dialects import source_dialect
from ..sources.reader import rows_of
from ..sql import quote_ident, string_literal
from ..targets import TableRef, open_target

log = logging.getLogger("arrowmapper")

Pairs = Sequence[tuple[SourceTable, TableRef]]


def pg_objects(src: Endpoint) -> bool:
    """Whether the source's keys, indexes and sequences can be read (PostgreSQL)."""
    return source_dialect(src.dialect).pg_objects


def _schemas(pairs: Pairs) -> str:
    names = sorted({s.schema for s, _ in pairs})
    return ", ".join(string_literal(n, "postgresql") for n in names)


def _constraints_sql(pairs: Pairs) -> str:
    return (
        "SELECT n.nspname AS schema_name, c.relname AS table_name, k.conname AS name, "
        "k.contype::text AS type, pg_get_constraintdef(k.oid) AS def, "
        "fn.nspname AS ref_schema, fc.relname AS ref_table, "
        "quote_ident(fn.nspname) || '.' || quote_ident(fc.relname) AS ref_qualified, "
        "quote_ident(fc.relname) AS ref_bare "
        "FROM pg_catalog.pg_constraint k "
        "JOIN pg_catalog.pg_class c ON c.oid = k.conrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_catalog.pg_class fc ON fc.oid = k.confrelid "
        "LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace "
        f"WHERE k.contype IN ('p', 'u', 'f') AND n.nspname IN ({_schemas(pairs)}) "
        "AND k.conparentid = 0 ORDER BY 1, 2, 3"
    )


def _indexes_sql(pairs: Pairs) -> str:
    return (
        "SELECT n.nspname AS schema_name, c.relname AS table_name, i.relname AS name, "
        "pg_get_indexdef(x.indexrelid) AS def, a.amname AS method, x.indisunique::int AS uniq "
        "FROM pg_catalog.pg_index x "
        "JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_catalog.pg_class c ON c.oid = x.indrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_catalog.pg_am a ON a.oid = i.relam "
        f"WHERE n.nspname IN ({_schemas(pairs)}) AND NOT i.relispartition "
        "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k "
        "WHERE k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x')) ORDER BY 1, 2, 3"
    )


class _Target:
    """The target connection the statements run on, one transaction each."""

    def __init__(self, dst: Endpoint, ref: TableRef) -> None:
        self.tgt = open_target(dst, ref)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        rows = self.tgt._exec(sql)
        self.tgt.conn.commit()
        return rows

    def run(self, sql: str) -> str | None:
        """Run one statement; None when it committed, else the (redacted) error."""
        try:
            self.tgt._exec(sql)
            self.tgt.conn.commit()
            return None
        except Exception as exc:
            self.tgt.rollback()
            return redact(" ".join(str(exc).split()))[:300]

    def close(self) -> None:
        self.tgt.close()


def copy_constraints(
    src: Endpoint, dst: Endpoint, pairs: Pairs
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Create the source tables' primary keys, unique constraints, indexes, then foreign
    keys on their target tables. Returns (what was created, what was skipped and why)."""
    if not pairs:
        return (), ()
    by_source = {(s.schema, s.name): ref for s, ref in pairs}
    constraints = rows_of(src, _constraints_sql(pairs))
    indexes = rows_of(src, _indexes_sql(pairs))
    created: list[str] = []
    skipped: list[str] = []
    target = _Target(dst, pairs[0][1])
    try:
        for kind in ("p", "u", "i", "f"):
            rows = indexes if kind == "i" else [r for r in constraints if r["type"] == kind]
            for row in rows:
                ref = by_source.get((row["schema_name"], row["table_name"]))
                if ref is None:
                    continue
                what = f"{_KIND[kind]} {row['name']} on {ref.display}"
                sql, why = _statement(kind, row, ref, by_source, target)
                if sql is None:
                    skipped.append(f"{what} ({why})")
                    continue
                error = target.run(sql)
                if error is None:
                    created.append(what)
                    log.info("created %s", what)
                else:
                    skipped.append(f"{what} (the target refused it: {error})")
                    log.warning("could not create %s: %s", what, error)
    finally:
        target.close()
    return tuple(created), tuple(skipped)


_KIND = {"p": "primary key", "u": "unique constraint", "i": "index", "f": "foreign key"}


def _statement(
    kind: str,
    row: dict[str, Any],
    ref: TableRef,
    by_source: dict[tuple[str, str], TableRef],
    target: _Target,
) -> tuple[str | None, str]:
    """The DDL that creates ``row`` on ``ref``, or (None, why it is skipped)."""
    table = ref.qualified()
    name = str(row["name"])
    quoted = ref.qualified(name)
    if kind == "i":
        exists = target.rows(f"SELECT to_regclass({string_literal(quoted, 'postgresql')})")
        if exists and exists[0][0] is not None:
            return None, "already there"
        definition = str(row["def"])
        at = definition.find(f" USING {row['method']} ")
        if at < 0:
            return None, f"cannot read its definition {definition!r}"
        unique = "UNIQUE " if row["uniq"] else ""
        index = quote_ident(name, ref.dialect)
        return f"CREATE {unique}INDEX IF NOT EXISTS {index} ON {table}{definition[at:]}", ""
    lit = string_literal(table, "postgresql")
    if kind == "p":
        have = target.rows(
            f"SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = to_regclass({lit}) "
            "AND contype = 'p'"
        )
        if have:
            return None, "the target table has a primary key already"
    else:
        have = target.rows(
            f"SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = to_regclass({lit}) "
            f"AND conname = {string_literal(name, 'postgresql')}"
        )
        if have:
            return None, "already there"
    definition = str(row["def"])
    if kind == "f":
        parent = by_source.get((row["ref_schema"], row["ref_table"]))
        if parent is None:
            return None, f"it references {row['ref_schema']}.{row['ref_table']}, not copied"
        for old in (row["ref_qualified"], row["ref_bare"]):
            spelled = f"REFERENCES {old}("
            if spelled in definition:
                definition = definition.replace(spelled, f"REFERENCES {parent.qualified()}(", 1)
                break
        else:
            return None, f"cannot read its definition {definition!r}"
    constraint = quote_ident(name, ref.dialect)
    return f"ALTER TABLE {table} ADD CONSTRAINT {constraint} {definition}", ""


def _sequences_sql(pairs: Pairs) -> str:
    return (
        "SELECT s.schemaname AS schema_name, s.sequencename AS name, s.last_value, "
        "s.start_value, s.increment_by, s.min_value, s.max_value, s.cycle::int AS cycle, "
        "s.data_type::text AS data_type, oc.relname AS owner, oa.attname AS owner_column "
        "FROM pg_catalog.pg_sequences s "
        "JOIN pg_catalog.pg_namespace n ON n.nspname = s.schemaname "
        "JOIN pg_catalog.pg_class sc ON sc.relname = s.sequencename AND sc.relnamespace = n.oid "
        "LEFT JOIN pg_catalog.pg_depend d ON d.objid = sc.oid "
        "AND d.classid = 'pg_catalog.pg_class'::regclass "
        "AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i') "
        "LEFT JOIN pg_catalog.pg_class oc ON oc.oid = d.refobjid "
        "LEFT JOIN pg_catalog.pg_attribute oa ON oa.attrelid = d.refobjid "
        "AND oa.attnum = d.refobjsubid "
        f"WHERE s.schemaname IN ({_schemas(pairs)}) ORDER BY 1, 2"
    )


def copy_sequences(
    src: Endpoint, dst: Endpoint, pairs: Pairs, schema: str | None
) -> tuple[str, ...]:
    """Set each sequence of the copied schemas that belongs to a copied table (or to none)
    to the source's value on the target (in ``schema``), creating it when missing. One that
    belongs to a column (a serial's, an identity's) is attached as on the source: ``OWNED BY``
    the target table's column, and that column's ``DEFAULT nextval(...)`` where it has no
    default yet (an identity column becomes a column with that default: the target table was
    created from the rows, not the source's DDL). Returns ``name = value`` per sequence set."""
    if not pairs:
        return ()
    copied = {(s.schema, s.name) for s, _ in pairs}
    by_source = {(s.schema, s.name): ref for s, ref in pairs}
    done: list[str] = []
    target = _Target(dst, pairs[0][1])
    try:
        for row in rows_of(src, _sequences_sql(pairs)):
            owner = row["owner"]
            if owner is not None and (row["schema_name"], owner) not in copied:
                continue
            seq = TableRef(schema, str(row["name"]), dst.dialect).qualified()
            cycle = "CYCLE" if row["cycle"] else "NO CYCLE"
            create = (
                f"CREATE SEQUENCE IF NOT EXISTS {seq} AS {row['data_type']} "
                f"INCREMENT BY {int(row['increment_by'])} MINVALUE {int(row['min_value'])} "
                f"MAXVALUE {int(row['max_value'])} START WITH {int(row['start_value'])} {cycle}"
            )
            error = target.run(create)
            called = row["last_value"] is not None
            value = int(row["last_value"] if called else row["start_value"])
            lit = string_literal(seq, "postgresql")
            error = error or target.run(
                f"SELECT setval({lit}::regclass, {value}, {'true' if called else 'false'})"
            )
            column = row["owner_column"]
            if error is None and owner is not None and column is not None:
                error = _attach(target, seq, by_source[(row["schema_name"], owner)], str(column))
            if error is not None:
                log.warning("could not set sequence %s: %s", seq, error)
                continue
            done.append(f"{row['name']} = {value}" + ("" if called else " (not called yet)"))
    finally:
        with suppress(Exception):
            target.close()
    return tuple(done)


def _attach(target: _Target, seq: str, table: TableRef, column: str) -> str | None:
    """Make ``seq`` the sequence of ``table.column`` (OWNED BY, and the column's default
    where it has none); None when done, else the error."""
    qualified = table.qualified()
    col = quote_ident(column, table.dialect)
    error = target.run(f"ALTER SEQUENCE {seq} OWNED BY {qualified}.{col}")
    if error is not None:
        return error
    has_default = target.rows(
        "SELECT atthasdef FROM pg_catalog.pg_attribute WHERE attrelid = "
        f"{string_literal(qualified, 'postgresql')}::regclass "
        f"AND attname = {string_literal(column, 'postgresql')}"
    )
    if has_default and not has_default[0][0]:
        nextval = f"nextval({string_literal(seq, 'postgresql')}::regclass)"
        return target.run(f"ALTER TABLE {qualified} ALTER COLUMN {col} SET DEFAULT {nextval}")
    return None


__all__ = ["copy_constraints", "copy_sequences", "pg_objects"]
