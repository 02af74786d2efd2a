"""PostgreSQL targets: what differs from the shared :class:`~.base.Target` -- the catalog
(pg_namespace, to_regclass, pg_attribute, pg_index, pg_constraint), foreign keys that block
emptying a table, table oids, and chunk locators by transaction id (``xid:N``: every row a
chunk's transaction wrote carries it as ``xmin``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..config import Endpoint
from ..errors import ConfigError
from ..sources import COPY_COLUMNS, pg_columns_sql
from .base import Target
from .dialects import POSTGRESQL, TableRef
from .session import lit
from .typemap import CatalogColumn


class PostgresTarget(Target):
    """A table in a PostgreSQL database."""

    dialect = POSTGRESQL

    @classmethod
    def connect(cls, endpoint: Endpoint) -> Any:
        """A connection with standard strings on."""
        from ..adbc import connect_postgresql

        conn = connect_postgresql(endpoint.uri)  # it names itself in pg_stat_activity
        # every literal arrowmapper writes (names, job ids, plans in the ledger) means
        # what it says only with standard strings; a role or database may turn them off
        cur = conn.cursor()
        cur.execute("SET standard_conforming_strings = on")
        cur.close()
        conn.commit()
        return conn

    @classmethod
    def connect_copy(cls, endpoint: Endpoint) -> Any:
        """A psycopg connection (autocommit off, standard strings on) that serves the same
        ledger statements as :meth:`connect`'s and also COPYs a relayed chunk in."""
        from ..sources.copyout import copy_connect

        conn = copy_connect(endpoint.uri, autocommit=False)
        conn.execute("SET standard_conforming_strings = on")
        conn.commit()
        return conn

    # -- the catalog
    def _has_schema(self, schema: str) -> bool:
        return bool(self._read(f"SELECT 1 FROM pg_namespace WHERE nspname = {lit(schema)}"))

    def table_exists(self) -> bool:
        """Whether the table exists."""
        rows = self._exec(f"SELECT to_regclass({lit(self.ref.qualified())}) IS NOT NULL")
        self.conn.commit()
        return any(r[0] for r in rows)

    def arrow_schema(self) -> pa.Schema:
        """The table's columns as the ADBC driver maps them."""
        kwargs = {"db_schema_filter": self.ref.schema} if self.ref.schema else {}
        schema = self.conn.adbc_get_table_schema(self.ref.table, **kwargs)
        self.conn.commit()
        return pa.schema([pa.field(f.name, f.type) for f in schema])

    def type_exists(self, sql_type: str) -> bool:
        """Whether a type name (an enum, a domain, ...) exists in the target."""
        try:
            rows = self._read(f"SELECT to_regtype({lit(sql_type)}) IS NOT NULL")
        except Exception:
            self.rollback()
            return False
        return bool(rows and rows[0][0])

    def pg_columns(self) -> list[CatalogColumn]:
        """The target's columns with their exact types (see :func:`pg_columns_sql`)."""
        rows = self._read(pg_columns_sql(f"to_regclass({lit(self.ref.qualified())})"))
        return [CatalogColumn(*(str(v) for v in row)) for row in rows]

    def copy_columns(self) -> list[tuple[str, int, int, str]]:
        """``(name, type oid, typmod, declared type)`` of each column a COPY can fill (not
        generated), what the COPY fast path compares with the source's."""
        rows = self._read(COPY_COLUMNS.format(rel=f"to_regclass({lit(self.ref.qualified())})"))
        return [(str(n), int(o), int(m), str(t)) for n, o, m, t in rows]

    def required_columns(self) -> list[str]:
        """Columns a row must be given a value for: NOT NULL, no default, not an identity or
        generated column."""
        rows = self._read(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = "
            f"to_regclass({lit(self.ref.qualified())}) AND attnum > 0 AND NOT attisdropped "
            "AND attnotnull AND NOT atthasdef AND attidentity = '' AND attgenerated = '' "
            "ORDER BY attnum"
        )
        return [str(r[0]) for r in rows]

    def unique_keys(self) -> list[tuple[str, ...]]:
        """Column sets with a unique index (primary key first): what ON CONFLICT can use."""
        rows = self._exec(
            "SELECT i.indisprimary, array_to_string(ARRAY(SELECT a.attname FROM "
            "unnest(i.indkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON "
            "a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o), chr(1)) "
            f"FROM pg_index i WHERE i.indrelid = to_regclass({lit(self.ref.qualified())}) "
            "AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL "
            "ORDER BY i.indisprimary DESC"
        )
        self.conn.commit()
        return [tuple(str(c) for c in str(cols).split(chr(1))) for _, cols in rows]

    def check_can_empty(self, mode: str, in_transaction: bool = False) -> None:
        """Refuse, before any row moves, a ``replace`` or ``truncate`` that could not empty
        this table without touching another: a foreign key pointing at it that would cascade
        (ON DELETE CASCADE / SET NULL / SET DEFAULT changes the other table's rows), or one
        with rows that reference it (the emptying would fail after every chunk loaded)."""
        read = self._exec if in_transaction else self._read  # never end the caller's
        rows = read(
            "SELECT c.conname::text, c.conrelid::regclass::text, c.confdeltype::text, "
            "array_to_string(ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.conkey) k(n) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n), ',') "
            "FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid <> c.confrelid "
            f"AND c.confrelid = to_regclass({lit(self.ref.qualified())})"
        )
        actions = {
            "c": "ON DELETE CASCADE",
            "n": "ON DELETE SET NULL",
            "d": "ON DELETE SET DEFAULT",
        }
        for name, child, action, cols in rows:
            if action in actions:
                raise ConfigError(
                    f"{self.ref.display} is referenced by foreign key {name} of {child} "
                    f"({actions[action]}): mode={mode!r} empties {self.ref.display}, which "
                    f"would change or delete rows of {child}; use mode='merge' or 'append', or "
                    "drop or alter the constraint first"
                )
            where = " AND ".join(f"{c} IS NOT NULL" for c in str(cols).split(","))
            if read(f"SELECT EXISTS (SELECT 1 FROM {child} WHERE {where})")[0][0]:
                raise ConfigError(
                    f"{self.ref.display} is referenced by foreign key {name} of {child}, which "
                    f"has rows pointing at it: mode={mode!r} cannot empty {self.ref.display}; "
                    "use mode='merge' or 'append', or empty the referencing rows first"
                )

    def _referenced(self) -> bool:
        """Whether a foreign key elsewhere points at this table (TRUNCATE would refuse)."""
        rows = self._exec(
            "SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = "
            f"to_regclass({lit(self.ref.qualified())})"
        )
        return bool(rows)

    def _same_table(self, stage: TableRef) -> bool:
        rows = self._exec(
            f"SELECT to_regclass({lit(stage.qualified())})::oid = "
            f"to_regclass({lit(self.ref.qualified())})::oid"
        )
        return bool(rows and rows[0][0])

    def column_types(self, name: str | None = None) -> dict[str, str]:
        """Column name -> ``format_type`` (``numeric(12,2)``, ...) of this table, or of the
        table ``name`` beside it (empty when it does not exist)."""
        rows = self._read(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute "
            f"WHERE attrelid = to_regclass({lit(self.ref.qualified(name))}) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum"
        )
        return {str(n): str(t or "") for n, t in rows}

    def table_identity(self) -> str | None:
        """The table's oid (a table dropped and created again under its name has another)."""
        rows = self._read(f"SELECT to_regclass({lit(self.ref.qualified())})::oid::text")
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- locators: the transaction id every row of a chunk carries as xmin
    def _locator_start(self, cur: Any) -> str:
        cur.execute("SELECT pg_current_xact_id()::xid::text")
        return str(cur.fetchall()[0][0])

    def _locator_end(self, cur: Any, start: str) -> str:
        return f"xid:{start}"

    def _held(self, locators: list[str]) -> dict[str, int]:
        held: dict[str, int] = {}  # one pass over the table, whatever the number of chunks
        xids = ", ".join(lit(loc.partition(":")[2]) for loc in locators if loc.startswith("xid:"))
        if xids:
            for xid, n in self._read(
                f"SELECT xmin::text, COUNT(*) FROM {self.ref.qualified()} "
                f"WHERE xmin::text IN ({xids}) GROUP BY 1"
            ):
                held[f"xid:{xid}"] = int(n)
        return held
