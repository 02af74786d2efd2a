"""What differs between SQL sources, one frozen record per dialect, looked up once by name.

The readers, the probes, the chunk rendering and the type preflight read every difference
between source servers from here (never ``if dialect == ...``): how a boundary value is
written as a literal, how a column's exact text is selected, how the key's quantiles are
found, which catalog says whether a column is nullable, which session settings a read pins,
how a query's run time is bounded, and whether snapshots can be shared. A server without a
record of its own (``mssql``, ``oracle``, ...) reads with :data:`GENERIC`'s portable SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from ..sql import pg_source_session, quote_ident, string_literal


def _pg_text(q: str) -> str:
    return f"{q}::text"


def _mysql_text(q: str) -> str:
    return f"CAST({q} AS CHAR)"


def _sqlite_text(q: str) -> str:
    """A SQLite value's exact text: ``CAST(x AS TEXT)`` keeps only 15 significant digits of a
    REAL (0.30000000000000004 became 0.3), so a REAL is printed with 15 digits where they
    give the same number back, else with the 17 that always do."""
    return (
        f"CASE WHEN typeof({q}) = 'real' THEN CASE WHEN CAST(printf('%!.15g', {q}) AS REAL) = "
        f"{q} THEN printf('%!.15g', {q}) ELSE printf('%!.17g', {q}) END ELSE CAST({q} AS TEXT) END"
    )


def _pg_nullable(schema: str | None, table: str, relation: str, key: str) -> str:
    """``relation``: the table as the FROM item spells it (resolved by ``to_regclass``)."""
    return (
        "SELECT (NOT attnotnull)::int AS nullable FROM pg_attribute "
        f"WHERE attrelid = to_regclass({string_literal(relation, 'postgresql')}) "
        f"AND attname = {string_literal(key, 'postgresql')}"
    )


def _sqlite_nullable(schema: str | None, table: str, relation: str, key: str) -> str:
    where = string_literal(table, "sqlite")
    if schema:
        where += ", " + string_literal(schema, "sqlite")
    return (
        f'SELECT 1 - "notnull" AS nullable FROM pragma_table_info({where}) '
        f"WHERE name = {string_literal(key, 'sqlite')}"
    )


#: ``(schema, table, relation, key) -> SQL`` with one row and a 0/1 column ``nullable``
NullableSql = Callable[[str | None, str, str, str], str]

#: ``(schema, table, relation) -> SQL`` over one plain table name (``relation``: the table as
#: the FROM item spells it)
RelationSql = Callable[[str | None, str, str], str]


def _pg_table_estimate(relation: str) -> str:
    """A plain table's (or materialized view's) rows as the planner would estimate them: the
    last ANALYZE's rows per page times today's pages (-1 when never analyzed), and the rows
    changed since that ANALYZE."""
    return (
        "SELECT CASE WHEN c.reltuples > 0 AND c.relpages > 0 THEN (c.reltuples / c.relpages * "
        "(pg_relation_size(c.oid) / current_setting('block_size')::int))::bigint ELSE -1 END "
        "AS est, COALESCE(s.n_mod_since_analyze, 0)::bigint AS changed FROM pg_class c "
        "LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid "
        f"WHERE c.oid = to_regclass({string_literal(relation, 'postgresql')}) "
        "AND c.relkind IN ('r', 'm')"
    )


def _pg_kind(schema: str | None, table: str, relation: str) -> str:
    return (
        "SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned' "
        "WHEN 'v' THEN 'view' WHEN 'm' THEN 'matview' WHEN 'f' THEN 'foreign' "
        "ELSE 'other' END AS kind FROM pg_class c "
        f"WHERE c.oid = to_regclass({string_literal(relation, 'postgresql')})"
    )


def _pg_unique_columns(schema: str | None, table: str, relation: str) -> str:
    """Columns that alone carry a unique index (no predicate, no expression) and NOT NULL,
    the primary key first (a partitioned table's indexes are in pg_index too)."""
    return (
        "SELECT a.attname::text AS col FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        f"WHERE i.indrelid = to_regclass({string_literal(relation, 'postgresql')}) "
        "AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL "
        "AND i.indexprs IS NULL AND a.attnotnull "
        "ORDER BY i.indisprimary DESC, a.attnum"
    )


def _pg_partitions(relation: str) -> str:
    """The leaf partitions of a partitioned table (sub-partitions' leaves too): a FROM item,
    whether it has heap blocks, their number, the catalog's row estimate (-1: unknown)."""
    return (
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS part, "
        "(c.relkind IN ('r', 'm'))::int AS heap, "
        "(pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint AS blocks, "
        "c.reltuples::bigint AS est FROM pg_partition_tree("
        f"to_regclass({string_literal(relation, 'postgresql')})) t "
        "JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE t.isleaf ORDER BY c.oid"
    )


def _pg_partition_rows(relation: str) -> str:
    """Each leaf partition's rows, counted (``relation``: the partitioned table's FROM item)."""
    return (
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS part, t.n "
        f"FROM (SELECT tableoid AS oid, COUNT(*) AS n FROM {relation} GROUP BY tableoid) t "
        "JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace"
    )


def _mysql_schema(schema: str | None) -> str:
    return string_literal(schema, "mysql") if schema else "DATABASE()"


def _mysql_kind(schema: str | None, table: str, relation: str) -> str:
    return (
        "SELECT CASE TABLE_TYPE WHEN 'VIEW' THEN 'view' WHEN 'BASE TABLE' THEN 'table' "
        "ELSE 'other' END AS kind FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA = {_mysql_schema(schema)} "
        f"AND TABLE_NAME = {string_literal(table, 'mysql')}"
    )


def _mysql_unique_columns(schema: str | None, table: str, relation: str) -> str:
    """Columns that alone carry a unique index and are NOT NULL, the primary key first."""
    where = (
        f"s.TABLE_SCHEMA = {_mysql_schema(schema)} "
        f"AND s.TABLE_NAME = {string_literal(table, 'mysql')}"
    )
    return (
        "SELECT s.COLUMN_NAME AS col FROM information_schema.STATISTICS s "
        "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA "
        "AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME "
        f"WHERE {where} AND s.NON_UNIQUE = 0 AND c.IS_NULLABLE = 'NO' "
        "AND s.SUB_PART IS NULL AND (SELECT COUNT(*) FROM information_schema.STATISTICS s2 "
        "WHERE s2.TABLE_SCHEMA = s.TABLE_SCHEMA AND s2.TABLE_NAME = s.TABLE_NAME "
        "AND s2.INDEX_NAME = s.INDEX_NAME) = 1 "
        "ORDER BY s.INDEX_NAME <> 'PRIMARY', s.INDEX_NAME"
    )


def _sqlite_kind(schema: str | None, table: str, relation: str) -> str:
    master = f"{quote_ident(schema, 'sqlite')}.sqlite_master" if schema else "sqlite_master"
    return (
        f"SELECT CASE type WHEN 'view' THEN 'view' ELSE 'table' END AS kind FROM {master} "
        f"WHERE type IN ('table', 'view') AND name = {string_literal(table, 'sqlite')}"
    )
#: the catalog query listing a server's relations (``map_tables``): one row per table or view
#: with ``schema_name``, ``table_name``, ``kind`` (table, view or other), ``is_default``
#: (1 when the schema is the one an unqualified name resolves to) and optionally
#: ``key_column``: a one-column primary key the planner cuts by (a server whose tables have
#: no physical row address to cut by, MySQL)
PG_RELATIONS = (
    "SELECT n.nspname AS schema_name, c.relname AS table_name, "
    "CASE WHEN c.relkind IN ('r', 'p') THEN 'table' WHEN c.relkind IN ('v', 'm') THEN 'view' "
    "ELSE 'other' END AS kind, (n.nspname = current_schema())::int AS is_default "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
    "AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%' "
    "ORDER BY 1, 2"
)
MYSQL_RELATIONS = (
    "SELECT table_schema AS schema_name, table_name AS table_name, "
    "CASE WHEN table_type IN ('BASE TABLE', 'SYSTEM VERSIONED') THEN 'table' "
    "WHEN table_type = 'VIEW' THEN 'view' ELSE 'other' END AS kind, "
    "CASE WHEN table_schema = DATABASE() THEN 1 ELSE 0 END AS is_default, "
    "(SELECT MIN(k.column_name) FROM information_schema.key_column_usage k "
    "WHERE k.table_schema = t.table_schema AND k.table_name = t.table_name "
    "AND k.constraint_name = 'PRIMARY' HAVING COUNT(*) = 1) AS key_column "
    "FROM information_schema.tables t WHERE table_schema NOT IN "
    "('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2"
)
SQLITE_RELATIONS = (
    "SELECT 'main' AS schema_name, name AS table_name, "
    "CASE type WHEN 'table' THEN 'table' ELSE 'view' END AS kind, 1 AS is_default "
    "FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite!_%' ESCAPE '!' "
    "ORDER BY 2"
)


@dataclass(frozen=True)
class SourceDialect:
    """One source server's differences, as data."""

    name: str
    #: how the planner finds the key's n-quantiles: one ``percentile_disc`` sort, or NTILE
    quantiles: Literal["percentile_disc", "ntile"] = "ntile"
    #: the SQL that selects a column's exact text (``{q}``: the quoted column)
    text: Callable[[str], str] = _pg_text
    #: the server refuses values the reader cannot carry (a CASE guard in the chunk query)
    guards: bool = False
    #: the statement every read runs first to pin its output settings (``local``: for the
    #: transaction only), or None
    session: Callable[[bool], str] | None = None
    #: the statement that bounds one query's run time (``{ms}``: milliseconds), or None
    timeout: str | None = None
    #: where the type preflight reads declared types (see ``sqltypes.describe_source``)
    catalog: Literal["pg_catalog", "information_schema", "sqlite_pragma", "none"] = "none"
    #: the catalog query saying whether a plain table's column is nullable, or None
    nullable: NullableSql | None = None
    snapshots: bool = False  # a transaction's snapshot can be exported and shared
    #: the SQL naming a text column's collation (``{q}``: the quoted column), where the
    #: server's text comparison may fold case or trailing spaces, or None
    collation: str | None = None
    #: the catalog estimates a plain table's rows (``SourceProbe.heap_blocks``): cheaper than
    #: a count where a rough number will do
    estimates: bool = False
    #: the server hashes a query's rows itself (``hashtextextended`` over each row's text):
    #: ``verify``'s server checksums can read this source
    hashes_rows: bool = False
    #: the binary COPY format the server writes a query's rows in (``COPY (...) TO STDOUT
    #: (FORMAT binary)``), or None; a target with the same ``copy_format`` takes it undecoded
    copy_format: str | None = None
    #: the strategy the old executor's ROWID chunking means here (PostgreSQL: ctid ranges)
    rowid: str = "rowid"
    # literals of probed boundary values (``{}``: the value's text)
    float_special: str | None = None  # NaN / Infinity, e.g. "'{}'::float8"; None: Python's repr
    date: str = "DATE '{}'"
    timestamp: str = "TIMESTAMP '{}'"
    timestamptz: str = "TIMESTAMP '{}'"
    bytes: str = "X'{}'"  # the value's hex
    nul_text_as_hex: bool = False  # text holding NUL written as CAST(X'..' AS TEXT)
    #: how an OFFSET page without a limit is spelled ("": a bare OFFSET)
    no_limit: str = ""
    #: the catalog query saying what a plain table name is (one row, ``kind``: table,
    #: partitioned, view, matview, foreign or other), or None
    relation_kind: RelationSql | None = None
    #: the catalog query listing a plain table's single-column unique NOT NULL keys (rows of
    #: ``col``, the primary key first), or None
    unique_columns: RelationSql | None = None
    #: the catalog query listing a partitioned table's leaf partitions, or None
    partitions: Callable[[str], str] | None = None
    #: the query counting each leaf partition's rows (when the catalog has no estimate)
    partition_rows: Callable[[str], str] | None = None
    #: the catalog query listing tables and views (see :data:`PG_RELATIONS`); None: the
    #: server's tables cannot be listed (``map_tables`` refuses it)
    relations: str | None = None
    #: the expression over a row's physical address that orders a table's rows (PostgreSQL:
    #: the heap block of ``ctid``; SQLite: ``rowid``), by :class:`~arrowmapper.plan.Tiebreak`
    #: locator; what cuts a hot key value's rows when the table has no unique key
    locators: tuple[tuple[str, str], ...] = ()
    #: the catalog query estimating a plain table's rows (one row: ``est``, -1 when unknown,
    #: and ``changed``: rows changed since the estimate), or None: always counted
    table_estimate: Callable[[str], str] | None = None
    #: how a plain table is read as a repeatable sample of about ``{pct}`` percent of it
    #: (after the FROM item), or None: never sampled
    sample: str | None = None
    #: the same for a sample of rows rather than blocks: every block is read, but its rows
    #: are a fair sample even of a table stored in key order (quantiles read this)
    row_sample: str | None = None
    #: a table's qualified name in a query keeps its schema (SQLite: ``main`` is left out)
    qualifies: bool = True
    #: primary keys, indexes, foreign keys and sequences can be read from the catalog and
    #: recreated on a PostgreSQL target (``map_tables(constraints=True, sequences=True)``)
    pg_objects: bool = False


GENERIC = SourceDialect("other")

DIALECTS: dict[str, SourceDialect] = {
    "postgresql": SourceDialect(
        "postgresql",
        quantiles="percentile_disc",
        text=_pg_text,
        guards=True,
        session=pg_source_session,
        timeout="SET statement_timeout = {ms}",
        catalog="pg_catalog",
        nullable=_pg_nullable,
        snapshots=True,
        float_special="'{}'::float8",
        timestamptz="TIMESTAMPTZ '{}'",
        bytes="decode('{}', 'hex')",  # no backslash: '\\x..' depends on a setting
        rowid="ctid",  # the old executor's ROWID chunks are ctid ranges here
        estimates=True,
        hashes_rows=True,
        copy_format="pgcopy",
        relation_kind=_pg_kind,
        unique_columns=_pg_unique_columns,
        partitions=_pg_partitions,
        partition_rows=_pg_partition_rows,
        relations=PG_RELATIONS,
        pg_objects=True,
        locators=(("ctid", "(ctid::text::point)[0]::bigint"),),
        table_estimate=_pg_table_estimate,
        sample="TABLESAMPLE SYSTEM ({pct}) REPEATABLE (17)",
        row_sample="TABLESAMPLE BERNOULLI ({pct}) REPEATABLE (17)",
    ),
    "mysql": SourceDialect(
        "mysql",
        text=_mysql_text,
        timeout="SET SESSION max_execution_time = {ms}",
        collation="COLLATION({q})",
        catalog="information_schema",
        no_limit="LIMIT 18446744073709551615",
        relation_kind=_mysql_kind,
        unique_columns=_mysql_unique_columns,
        relations=MYSQL_RELATIONS,
    ),
    "sqlite": SourceDialect(
        "sqlite",
        text=_sqlite_text,
        catalog="sqlite_pragma",
        nullable=_sqlite_nullable,
        date="'{}'",
        timestamp="'{}'",
        timestamptz="'{}'",
        nul_text_as_hex=True,  # SQLite text may hold NUL; SQL may not
        no_limit="LIMIT -1",
        relation_kind=_sqlite_kind,
        relations=SQLITE_RELATIONS,
        qualifies=False,
        locators=(("rowid", "rowid"),),
    ),
}


def source_dialect(name: str) -> SourceDialect:
    """The differences of the source server ``name`` (:data:`GENERIC` for one without)."""
    found = DIALECTS.get(name)
    return found if found is not None else replace(GENERIC, name=name)
