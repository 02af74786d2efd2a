"""Type fidelity, PostgreSQL -> PostgreSQL: every value comes back with the same ``::text``.

Each type is its own case, with values at the edges and a NULL, into a table arrowmapper
creates (which must get the source's exact type) and into a pre-existing one. The per-type
cases run the job in-process (the same run_chunk the workers run) to stay fast; one job moves
all the types at once through real worker processes and several chunks.
"""

from __future__ import annotations

import dataclasses

import pytest

import arrowmapper as am
from arrowmapper.api import describe_columns, prepare, run_prepared
from tests.conftest import PG

# type -> values (SQL literals); every case also gets a NULL row
CASES: dict[str, list[str]] = {
    "smallint": ["-32768", "32767", "0"],
    "integer": ["-2147483648", "2147483647"],
    "bigint": ["-9223372036854775808", "9223372036854775807"],
    "numeric(40,20)": [
        "'12345678901234567890.12345678901234567890'",
        "'-0.00000000000000000001'",
        "'0'",
    ],
    "numeric(30,12)": ["'123456789012345678.123456789012'", "'-1.5'"],
    "numeric(12,2)": ["'9999999999.99'", "'-0.01'", "'3.00'"],
    "numeric(90,40)": ["'12345678901234567890123456789012345678901234567890.1'"],
    "numeric": [
        "'3.0'",
        "'123456789012345678901234567890.123456789012345678901234567890'",
        "'1e-30'",
        "'NaN'",
        "'-0.000'",
    ],
    "real": ["'NaN'", "'Infinity'", "'-Infinity'", "'1.17549435e-38'", "'3.4028235e+38'", "'0.1'"],
    "double precision": [
        "'NaN'",
        "'Infinity'",
        "'-Infinity'",
        "'2.2250738585072014e-308'",
        "'1.7976931348623157e+308'",
        "'0.1'",
    ],
    "text": [
        "'héllo wörld 🎉 日本'",
        "E'tab\\there\\nnew line\\r\\\\ back'",
        "''",
        "'quote '' \" comma, semi;'",
    ],
    "varchar(5)": ["'abcde'", "'a'"],
    "boolean": ["true", "false"],
    "date": ["'0001-01-01'", "'9999-12-31'", "'2024-02-29'"],
    "time": ["'00:00:00'", "'23:59:59.999999'"],
    "timestamp": ["'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'"],
    "timestamptz": ["'0001-01-01 00:00:00+00'", "'2024-06-01 12:34:56.789+02'"],
    "interval": [
        "'1 year 2 mons 3 days 04:05:06.789'",
        "'-1 days +02:00:00'",
        "'0'",
        "'178000000 years'",
    ],
    "uuid": ["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'00000000-0000-0000-0000-000000000000'"],
    "json": ['\'{"b": 1,   "a": [1, 2]}\'', "'[]'", "'\"s\"'"],
    "jsonb": ['\'{"b": 1, "a": {"c": null}}\'', "'[1, \"x\", 2.50]'"],
    "bytea": ["'\\x00ff10'", "'\\x'"],
    "integer[]": ["'{1,2,NULL}'", "'{}'", "'{{1,2},{3,4}}'", "'[0:1]={7,8}'"],
    "text[]": ['\'{a,"b c",NULL,""}\'', '\'{"quote\\"d"}\''],
    "mood": ["'sad'", "'happy'"],
    "timetz": ["'04:05:06+02'", "'23:59:59.999999-12'"],
    "money": ["'1.50'", "'-92233720368547758.08'"],
}


def _make(pg: PG, table: str, sql_type: str, values: list[str]) -> None:
    pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, x {sql_type})")
    rows = ", ".join(f"({i}, {v})" for i, v in enumerate(values, 1))
    pg.execute(f"INSERT INTO {table} VALUES {rows}, ({len(values) + 1}, NULL)")


def _texts(pg: PG, table: str) -> list[tuple[int, str | None]]:
    return [(int(i), x) for i, x in pg.query(f"SELECT id, x::text FROM {table} ORDER BY id")]


def _col_type(pg: PG, table: str) -> str:
    return str(
        pg.scalar(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            f"WHERE attrelid = '{pg.schema}.{table}'::regclass AND attname = 'x'"
        )
    )


def _run_in_process(pg: PG, query: str, table: str) -> None:
    prepared = prepare(pg.uri, query, pg.uri, table, schema=pg.schema, strategy="none")
    result = run_prepared(dataclasses.replace(prepared.spec, in_process=True))
    assert result.success, result.errors


@pytest.fixture
def mood(pg: PG) -> PG:
    pg.execute(f"CREATE TYPE {pg.schema}.mood AS ENUM ('sad', 'ok', 'happy')")
    pg.execute(f'SET search_path TO "{pg.schema}"')
    return pg


@pytest.mark.parametrize("existing", [False, True], ids=["created", "existing"])
@pytest.mark.parametrize("sql_type", list(CASES))
def test_type_round_trips_exactly(mood: PG, sql_type: str, existing: bool) -> None:
    pg = mood
    sql_type_q = f"{pg.schema}.mood" if sql_type == "mood" else sql_type
    _make(pg, "src", sql_type_q, CASES[sql_type])
    if existing:
        pg.execute(f"CREATE TABLE {pg.t('dst')} (id int, x {sql_type_q})")
    _run_in_process(pg, pg.t("src"), "dst")
    assert _texts(pg, pg.t("dst")) == _texts(pg, pg.t("src"))
    assert _col_type(pg, "dst") == _col_type(pg, "src")


def test_all_types_through_workers_and_chunks(mood: PG) -> None:
    """One table with every type, several chunks, two real worker processes, verify on."""
    pg = mood
    names = list(CASES)
    cols = ", ".join(
        f"c{i} {pg.schema + '.mood' if t == 'mood' else t}" for i, t in enumerate(names)
    )
    pg.execute(f"CREATE TABLE src (id int PRIMARY KEY, {cols})")
    n = max(len(v) for v in CASES.values()) + 1
    for row in range(1, 401):
        k = row % n
        vals = [CASES[t][k] if k < len(CASES[t]) else "NULL" for t in names]
        pg.execute(f"INSERT INTO src VALUES ({row}, {', '.join(vals)})")
    text_cols = ", ".join(f"c{i}::text" for i in range(len(names)))
    for existing in (False, True):
        dst = f"dst_{int(existing)}"
        if existing:
            pg.execute(f"CREATE TABLE {dst} (LIKE src INCLUDING ALL)")
        result = am.map_query(
            pg.uri,
            pg.t("src"),
            pg.uri,
            dst,
            schema=pg.schema,
            key="id",
            strategy="key",
            chunk_size=100,
            workers=2,
            verify=True,
        )
        assert result.chunks >= 4 and result.rows_written == 400
        src_rows = pg.query(f"SELECT id, {text_cols} FROM src ORDER BY id")
        dst_rows = pg.query(f"SELECT id, {text_cols} FROM {dst} ORDER BY id")
        assert dst_rows == src_rows
        for i in range(len(names)):
            src_t = pg.scalar(
                f"SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                f"'{pg.schema}.src'::regclass AND attname = 'c{i}'"
            )
            dst_t = pg.scalar(
                f"SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                f"'{pg.schema}.{dst}'::regclass AND attname = 'c{i}'"
            )
            assert dst_t == src_t, f"c{i}: {dst_t} != {src_t}"


def test_enum_missing_in_target_becomes_text(pg: PG, tmp_path: object) -> None:
    """A type the target database lacks is created as its fallback, and the plan says so."""
    pg.execute(f"CREATE TYPE {pg.schema}.feel AS ENUM ('a', 'b')")
    pg.execute(f"CREATE TABLE src (id int, x {pg.schema}.feel)")
    pg.execute("INSERT INTO src VALUES (1, 'a'), (2, NULL)")
    import sqlite3  # noqa: F401  (the target is SQLite: no enum there)

    target = f"sqlite:///{tmp_path}/t.db"
    result = am.map_query(pg.uri, pg.t("src"), target, "dst", strategy="none")
    assert result.rows_written == 2
    import sqlite3 as sq

    rows = sq.connect(f"{tmp_path}/t.db").execute("SELECT id, x FROM dst ORDER BY id").fetchall()
    assert rows == [(1, "a"), (2, None)]


def test_sqlite_source_types_exact_in_postgres(pg: PG, tmp_path: object) -> None:
    """SQLite's declared DECIMAL(p,s), NUMERIC, DATETIME, JSON, BOOLEAN, BLOB and TEXT: each
    value arrives as SQLite holds it, in a column of the declared precision."""
    import sqlite3 as sq

    db = f"{tmp_path}/src.db"
    with sq.connect(db) as conn:
        conn.execute(
            "CREATE TABLE s (id INTEGER PRIMARY KEY, d DECIMAL(12,4), n NUMERIC, "
            "ts DATETIME, dd DATE, js JSON, b BOOLEAN, bl BLOB, tx TEXT, r REAL)"
        )
        conn.execute(
            "INSERT INTO s VALUES (1, '12345678.1234', '3.50', '2024-01-02 03:04:05.123456', "
            "'2024-02-29', '{\"b\": 1,  \"a\": 2.50}', 1, x'00ff', 'héllo\tx\ny', 0.1)"
        )
        conn.execute("INSERT INTO s (id) VALUES (2)")
    am.map_query(f"sqlite:///{db}", "s", pg.uri, "dst", schema=pg.schema, strategy="rowid")
    rows = pg.query(
        "SELECT id, d::text, n::text, ts::text, dd::text, js::text, b, encode(bl, 'hex'), tx, "
        "r::text FROM dst ORDER BY id"
    )
    assert rows == [
        (
            1,
            "12345678.1234",
            "3.5",
            "2024-01-02 03:04:05.123456",
            "2024-02-29",
            '{"b": 1,  "a": 2.50}',
            True,
            "00ff",
            "héllo\tx\ny",
            "0.1",
        ),
        (2, None, None, None, None, None, None, None, None, None),
    ]
    types = dict(
        pg.query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
            f"attrelid = '{pg.schema}.dst'::regclass AND attnum > 0"
        )
    )
    assert types["d"] == "numeric(12,4)" and types["js"] == "json" and types["n"] == "numeric"


def test_plan_shows_the_type_paths(pg: PG) -> None:
    pg.execute(
        "CREATE TABLE src (id int, big numeric(40,20), iv interval, u uuid, j jsonb, n numeric)"
    )
    pg.execute("CREATE TABLE dst (LIKE src)")
    cols = {
        c.name: c for c in describe_columns(pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema)
    }
    assert cols["big"].source_type == "numeric(40,20)"
    assert "decimal256(40, 20)" in cols["big"].note
    assert "cast by the server to interval" in cols["iv"].note
    assert "cast by the server to numeric" in cols["n"].note
    assert cols["u"].target_type == "uuid" and "arrow.uuid" in cols["u"].note
    assert "arrow.json" in cols["j"].note
