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
# SQLite declares affinities, not types: these names are what SQLite tools (and arrowmapper's
# own SQLite source) read a column's meaning from, and each gets the affinity that stores its
# values unchanged: BOOLEAN (0/1), DATE, TIME and TIMESTAMP hold ISO-8601 text (NUMERIC
# affinity leaves text that is no number alone), and TIMESTAMP WITH TIME ZONE the instant's
# UTC text with an explicit +00:00 (see ``Dialect.instant_text``); decimals: _sqlite_decimal
_SQLITE_NAMES: TypeNames = {
    "BOOLEAN": (pat.is_boolean,),
    "INTEGER": (pat.is_integer,),
    "REAL": (pat.is_floating,),
    "TEXT": (pat.is_string, pat.is_large_string, pat.is_string_view),
    "BLOB": (pat.is_binary, pat.is_large_binary, pat.is_fixed_size_binary),
    "DATE": (pat.is_date,),
    "TIME": (pat.is_time,),
    "TIMESTAMP WITH TIME ZONE": (lambda t: pat.is_timestamp(t) and t.tz is not None,),
    "TIMESTAMP": (pat.is_timestamp,),
}


def _sqlite_decimal(precision: int, scale: int) -> str:
    """``DECIMAL_TEXT(p,s)``: a decimal kept as its exact text. The name says what the column
    holds (arrowmapper's SQLite source reads it back as decimal(p,s)) and contains TEXT, which
    gives it TEXT affinity: NUMERIC affinity (``DECIMAL(p,s)``) would turn the text into a
    REAL or INTEGER, keeping 15 significant digits (1234567890123456789.5 becomes
    1234567890123456768) and dropping the scale (1.50 becomes 1.5)."""
    return f"DECIMAL_TEXT({precision},{scale})"


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
    #: the declared type of a new decimal(p, s) column, where not ``precise_types``
    decimal_name: Callable[[int, int], str] | None
    #: zoned timestamps are written as the instant's UTC ISO-8601 text with an explicit
    #: ``+00:00`` (the driver would drop the offset): the instant and the fact that it is one
    #: both survive, in a form SQLite's date functions, Python and Arrow parse
    instant_text: bool
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
    #: what a SELECT ends with to lock the rows it reads until the commit ("": the write lock
    #: the transaction already holds does)
    row_lock: str
    swapped_locator: str  # what a swapped-in chunk's rows are found by (every row of the swap)
    registered_order: str  # orders the jobs table by registration (SQLite: seconds tie)
    #: ``map_tables`` can recreate a PostgreSQL source's keys, indexes, foreign keys and
    #: sequences here (``constraints=True``, ``sequences=True``)
    pg_objects: bool = False
    #: a chunk's locator finds only the rows it wrote that nobody changed since (PostgreSQL's
    #: ``xmin``: an update gives a row a new one), so ``clean --rows`` may delete by it;
    #: False: a rowid range also covers rows updated since and a rowid reused after a delete
    locators_prove_rows: bool = False
    #: bounds how long the next statement of a transaction waits for a row lock, so that a
    #: lock held by a live writer is seen without waiting for it ("": the system cannot)
    lock_wait: str = ""

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
    decimal_name=None,
    instant_text=False,
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
    row_lock=" FOR UPDATE",
    lock_wait="SET LOCAL lock_timeout = '300ms'",
    # the swap's rows carry its transaction's id
    swapped_locator="'xid:' || pg_current_xact_id()::xid::text",
    registered_order="created_at",
    pg_objects=True,
    locators_prove_rows=True,
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
    decimal_name=_sqlite_decimal,
    instant_text=True,
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
    row_lock="",
    # the swap gives every row a new rowid
    swapped_locator="'rowid:1:9223372036854775807'",
    registered_order="rowid",  # CURRENT_TIMESTAMP has whole seconds; rowids grow
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


__all__ = [
    "DIALECTS",
    "POSTGRESQL",
    "SQLITE",
    "Dialect",
    "TableRef",
    "TypeNames",
    "dialect_of",
]
