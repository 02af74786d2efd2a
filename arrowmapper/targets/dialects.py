"""What differs between target systems, as data: one frozen :class:`Dialect` per system.

The rest of the package asks the table (``dialect_of(ref.dialect)``, looked up once) instead of
comparing dialect names, so a difference lives here, in one row, or in the system's own module
(:mod:`.postgresql`, :mod:`.sqlite`) when it is behaviour rather than a value::

    >>> dialect_of("sqlite").temp_schema
    'temp'

Identifier rules (folding, byte limits, quoting) are :mod:`arrowmapper.sql`'s; a dialect's
:meth:`Dialect.quote`, :meth:`Dialect.same_name` and :attr:`Dialect.name_limit` apply them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
from pyarrow import types as pat

from ..errors import ConfigError
from ..sql import name_limit, quote_ident, same_name

#: a column type name -> the Arrow types a new column of that type is created for; the first
#: name with a match wins
TypeNames = dict[str, tuple[Callable[[pa.DataType], bool], ...]]

# fmt: off
_PG_NAMES: TypeNames = {
    "smallint": (pat.is_int16,), "integer": (pat.is_int32,), "bigint": (pat.is_int64,),
    "real": (pat.is_float32,), "double precision": (pat.is_float64,),
    "text": (pat.is_string,), "bytea": (pat.is_binary,), "boolean": (pat.is_boolean,),
    "date": (pat.is_date,), "numeric": (pat.is_decimal,),
    "time": (pat.is_time,), "interval": (pat.is_duration,),
}
# fmt: on
# SQLite has no booleans
_SQLITE_NAMES: TypeNames = {
    "INTEGER": (pat.is_integer, pat.is_boolean),
    "REAL": (pat.is_floating,),
    "TEXT": (pat.is_string,),
    "BLOB": (pat.is_binary,),
}


@dataclass(frozen=True)
class Dialect:
    """One target system's values: names, types and the SQL snippets that differ."""

    name: str  # the Endpoint's dialect
    label: str  # how messages name the system
    schemas: bool  # tables live in schemas (SQLite: one namespace)
    # -- types
    type_names: TypeNames  # the column types ADBC creates
    fallback_type: str | None  # the type of anything else (None: Arrow's own name)
    precise_types: bool  # timestamptz, numeric(p,s) and arrays get their exact names
    stores_lists: bool  # list columns become arrays
    text_types: bool  # decimals, times, durations, intervals are stored as their exact text
    loose_columns: bool  # a text column takes any value, an integer one takes booleans
    checks_values: bool  # refuse values the driver would store changed (NaN, year 10000)
    describes_columns: bool  # the catalog gives each column's exact type (pg_columns)
    #: a new table's columns passed through from a described source keep the source's
    #: declared type (numeric(40,20), uuid, an enum); False: ADBC creates it from Arrow types
    keeps_source_types: bool
    #: the server hashes the rows each chunk committed (its rows grouped by the writing
    #: transaction): ``verify``'s server checksums can read this target
    hashes_rows: bool
    #: verify=True can check a merge (SQLite's upserted rows keep their old rowids: it cannot)
    verify_merge: bool
    #: the binary COPY format a chunk's stream can be relayed into undecoded (``COPY ... FROM
    #: STDIN (FORMAT binary)`` through psycopg), or None; a source with the same
    #: ``copy_format`` can feed it (see ``arrowmapper.run.copypath``)
    copy_format: str | None
    # -- SQL
    server_casts: bool  # staged columns are cast by the server (col::type) and read back as text
    timestamp_column: str  # the ledger's committed_at / the jobs' created_at
    now: str  # the current time as text (a job's finished_at)
    temp_schema: str  # where a temporary table is (the staged chunk)
    upsert_where: str  # what INSERT ... SELECT needs before ON CONFLICT
    truncates: bool  # TRUNCATE empties a table (SQLite: DELETE only)
    create_like: str  # {new}, {old}: an empty copy of a table's columns
    add_key: str  # {table}, {cols}, {index}: make a merge key unique in a table the job made
    lock_exclusive: str  # {table}: keep readers out during the swap ("": the write lock does)
    swapped_locator: str  # what a swapped-in chunk's rows are found by (every row of the swap)

    def quote(self, name: str) -> str:
        """``name`` as a quoted identifier of this system."""
        return quote_ident(name, self.name)

    def same_name(self, a: str, b: str) -> bool:
        """Whether two stored names denote the same object here."""
        return same_name(a, b, self.name)

    @property
    def name_limit(self) -> tuple[int | None, int | None]:
        """``(max_bytes, max_chars)`` of a name (None: no limit)."""
        return name_limit(self.name)


POSTGRESQL = Dialect(
    name="postgresql",
    label="PostgreSQL",
    schemas=True,
    type_names=_PG_NAMES,
    fallback_type=None,
    precise_types=True,
    stores_lists=True,
    text_types=False,
    loose_columns=False,
    checks_values=False,
    describes_columns=True,
    server_casts=True,
    timestamp_column="timestamptz NOT NULL DEFAULT now()",
    now="now()::text",  # finished_at is TEXT on every system
    temp_schema="pg_temp",
    upsert_where="",
    truncates=True,
    create_like="CREATE TABLE {new} (LIKE {old} INCLUDING DEFAULTS)",
    add_key="ALTER TABLE {table} ADD PRIMARY KEY ({cols})",
    lock_exclusive="LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE",
    # the swap's rows carry its transaction's id
    swapped_locator="'xid:' || pg_current_xact_id()::xid::text",
    keeps_source_types=True,
    hashes_rows=True,
    copy_format="pgcopy",
    verify_merge=True,
)

SQLITE = Dialect(
    name="sqlite",
    label="SQLite",
    schemas=False,
    type_names=_SQLITE_NAMES,
    fallback_type="TEXT",
    precise_types=False,
    stores_lists=False,
    text_types=True,  # exact text; ADBC SQLite refuses these types
    loose_columns=True,  # SQLite has no booleans, and TEXT columns take any value as text
    checks_values=True,  # the driver turns NaN into NULL, fails on the year 10000
    describes_columns=False,  # it declares affinities, not types
    server_casts=False,
    timestamp_column="TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP",
    now="CURRENT_TIMESTAMP",
    temp_schema="temp",
    upsert_where=" WHERE true",  # SQLite's parser needs it before ON CONFLICT
    truncates=False,
    create_like="CREATE TABLE {new} AS SELECT * FROM {old} WHERE 0",
    add_key="CREATE UNIQUE INDEX {index} ON {table} ({cols})",  # no ALTER TABLE ADD PRIMARY KEY
    lock_exclusive="",  # a writer holds the whole database
    # the swap gives every row a new rowid
    swapped_locator="'rowid:1:9223372036854775807'",
    keeps_source_types=False,  # affinities again: the table ADBC creates is the table
    hashes_rows=False,
    copy_format=None,
    verify_merge=False,
)

#: Every target system, by its Endpoint dialect.
DIALECTS: dict[str, Dialect] = {d.name: d for d in (POSTGRESQL, SQLITE)}


def dialect_of(name: str) -> Dialect:
    """The row of ``name``; a :class:`ConfigError` naming the supported ones otherwise."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ConfigError(
            f"only {' and '.join(f'{n}://' for n in DIALECTS)} targets are supported, got {name}"
        ) from None


@dataclass(frozen=True)
class TableRef:
    """A target table: its schema (None: the default one), name and system."""

    schema: str | None
    table: str
    dialect: str

    def qualified(self, name: str | None = None) -> str:
        """This table (or the table ``name`` beside it) as quoted SQL."""
        q = quote_ident(name or self.table, self.dialect)
        return f"{quote_ident(self.schema, self.dialect)}.{q}" if self.schema else q

    @property
    def display(self) -> str:
        """The name as messages and the ledger show it."""
        return f"{self.schema}.{self.table}" if self.schema else self.table


__all__ = ["DIALECTS", "POSTGRESQL", "SQLITE", "Dialect", "TableRef", "TypeNames", "dialect_of"]
