"""SQLite targets: what differs from the shared :class:`~.base.Target` -- declared
affinities instead of types (pragma_table_info), one namespace whose names ignore ASCII case,
a database-wide write lock, and chunk locators by rowid range (``rowid:lo:hi``), which a merge,
a table WITHOUT ROWID or an INTEGER PRIMARY KEY the job fills cannot have (``none:``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..config import Endpoint
from .base import Target
from .dialects import SQLITE, TableRef
from .session import lit
from .typemap import ANY, NUMERIC_AFFINITY, WriteLayout, declared_columns, storage_schema
from .values import to_instant_text


class SqliteTarget(Target):
    """A table in a SQLite database file."""

    dialect = SQLITE

    def __init__(self, endpoint: Endpoint, ref: TableRef, conn: Any = None) -> None:
        super().__init__(endpoint, ref, conn)
        self._shape: bool | None = None  # see untracked

    @classmethod
    def connect(cls, endpoint: Endpoint) -> Any:
        """A connection that waits up to a minute for another writer's lock."""
        from ..adbc import connect_sqlite

        assert endpoint.path is not None
        conn = connect_sqlite(endpoint.path)
        cur = conn.cursor()
        cur.execute("PRAGMA busy_timeout = 60000")
        cur.fetchall()
        cur.close()
        return conn

    # -- the table and what is written
    def create_table(self, schema: pa.Schema) -> pa.Schema:
        """Create the table declaring what each column means (``TIMESTAMP WITH TIME ZONE``,
        ``DATE``, ``DECIMAL(12,2)``, ``BOOLEAN``...; see ``dialects._SQLITE_NAMES``), with the
        affinity that stores its values unchanged. The driver's own CREATE would leave a
        timestamp column without any declared type."""
        storage_schema(schema, self.dialect.name)  # refuses what SQLite cannot store
        self.create_table_sql(declared_columns(schema, self.dialect.name))
        return self.arrow_schema()

    def driver_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Zoned timestamps as their UTC text with ``+00:00`` (the driver drops the offset)."""
        zoned = [i for i, t in enumerate(batch.schema.types) if pa.types.is_timestamp(t) and t.tz]
        for i in zoned:
            name = batch.schema.field(i).name
            batch = batch.set_column(i, name, to_instant_text(batch.column(i)))
        return batch

    def discard_if_unused(self) -> bool:
        """Remove the database file (and its journal) when it holds no table but arrowmapper's
        empty ledger: the caller created it and its run did not get to load anything."""
        from pathlib import Path

        from .ledger import JOBS, LEDGER
        from .marks import MARKS

        try:
            tables = {str(r[0]) for r in self._read("SELECT name FROM sqlite_master")}
            if not tables <= {LEDGER, JOBS, MARKS}:
                return False
            for name in tables:
                if self._read(f"SELECT 1 FROM {self.q(name)} LIMIT 1"):
                    return False
        except Exception:
            return False
        self.close()
        assert self.endpoint.path is not None
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(self.endpoint.path + suffix).unlink(missing_ok=True)
        return True

    # -- the catalog
    def table_exists(self) -> bool:
        """Whether the table exists (SQLite ignores ASCII case in names)."""
        rows = self._exec(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
            f"{lit(self.ref.table)} COLLATE NOCASE"
        )
        self.conn.commit()
        return bool(rows)

    def arrow_schema(self) -> pa.Schema:
        """SQLite declares affinities, not types: map them (the ADBC driver guesses from data)."""
        rows = self._read(f"SELECT name, type FROM pragma_table_info({lit(self.ref.table)})")
        fields = []
        for name, decl in rows:
            d = str(decl or "").upper()
            if "INT" in d:
                t: pa.DataType = pa.int64()
            elif any(x in d for x in ("CHAR", "CLOB", "TEXT")):
                t = pa.string()
            elif "BLOB" in d:
                t = pa.binary()
            elif any(x in d for x in ("REAL", "FLOA", "DOUB")):
                t = pa.float64()
            elif not d:  # no declared type: stores what arrives
                t = ANY
            else:  # NUMERIC affinity (NUMERIC, DECIMAL, BOOLEAN, DATE, ...)
                t = NUMERIC_AFFINITY
            fields.append(pa.field(str(name), t))
        return pa.schema(fields)

    def required_columns(self) -> list[str]:
        """Columns a row must be given a value for: NOT NULL without a default, not the
        INTEGER PRIMARY KEY (the rowid)."""
        rows = self._read(
            f"SELECT name, type, pk FROM pragma_table_info({lit(self.ref.table)}) "
            'WHERE "notnull" = 1 AND dflt_value IS NULL'
        )
        keys = [r for r in rows if int(r[2]) > 0]
        rowid = len(keys) == 1 and str(keys[0][1]).upper() == "INTEGER"
        return [str(r[0]) for r in rows if not (rowid and int(r[2]) > 0)]

    def unique_keys(self) -> list[tuple[str, ...]]:
        """Column sets with a unique index (primary key first): what ON CONFLICT can use."""
        t = lit(self.ref.table)
        idx = self._exec(
            f'SELECT name, origin FROM pragma_index_list({t}) WHERE "unique" = 1 '
            "AND partial = 0 ORDER BY origin = 'pk' DESC"
        )
        keys = []
        for name, _ in idx:
            cols = self._exec(
                f"SELECT name FROM pragma_index_info({lit(str(name))}) ORDER BY seqno"
            )
            keys.append(tuple(str(c[0]) for c in cols))
        pk = self._exec(f"SELECT name FROM pragma_table_info({t}) WHERE pk > 0 ORDER BY pk")
        if pk and not any(k == tuple(str(r[0]) for r in pk) for k in keys):
            keys.insert(0, tuple(str(r[0]) for r in pk))  # INTEGER PRIMARY KEY: no index
        self.conn.commit()
        return keys

    def _same_table(self, stage: TableRef) -> bool:
        return self.dialect.same_name(stage.table, self.ref.table)

    def column_types(self, name: str | None = None) -> dict[str, str]:
        """Column name -> declared type (``TEXT``, ``NUMERIC(12,2)``, ...) of this table, or
        of the table ``name`` beside it (empty when it does not exist)."""
        rows = self._read(
            f"SELECT name, type FROM pragma_table_info({lit(name or self.ref.table)})"
        )
        return {str(n): str(t or "") for n, t in rows}

    # -- locators: the rowid range a chunk's rows were appended at
    def untracked(self, layout: WriteLayout | None = None) -> bool:
        """SQLite: whether a chunk's rows cannot be found again by a rowid range -- a merge
        (updated rows keep their rowids), a table WITHOUT ROWID, or one whose INTEGER PRIMARY
        KEY is the rowid (rows land where their key says, not after the last one).

        Reads the catalog and ends that read's transaction: never call it inside a chunk's
        transaction (write_chunk asks before it starts)."""
        if layout is not None and layout.merge_key:
            return True
        if self._shape is None:
            sql = self._read(
                f"SELECT sql FROM sqlite_master WHERE type = 'table' AND name = "
                f"{lit(self.ref.table)} COLLATE NOCASE"
            )
            text = str(sql[0][0] or "") if sql else ""
            keys = self._read(
                f"SELECT type FROM pragma_table_info({lit(self.ref.table)}) WHERE pk > 0"
            )
            alias = len(keys) == 1 and str(keys[0][0]).upper() == "INTEGER"
            self._shape = alias or "WITHOUT ROWID" in text.upper()
        return self._shape

    def _locator_start(self, cur: Any) -> str:
        cur.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {self.ref.qualified()}")
        return str(cur.fetchall()[0][0])

    def _locator_end(self, cur: Any, start: str) -> str:
        cur.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {self.ref.qualified()}")
        return f"rowid:{int(start) + 1}:{int(cur.fetchall()[0][0])}"

    def _held(self, locators: list[str]) -> dict[str, int]:
        held: dict[str, int] = {}
        for locator in locators:
            found = self._read(
                f"SELECT COUNT(*) FROM {self.ref.qualified()} WHERE "
                f"{self.locator_predicate(locator)}"
            )
            held[locator] = int(found[0][0])
        return held
