"""A MariaDB/MySQL source through connectorx (backtick quoting, NTILE quantiles, DATE literals).

Uses ``ARROWMAPPER_TEST_MYSQL`` or the local server on 127.0.0.1:3306 (root, no password) and
the ``mysql`` client for set-up; skipped when neither is there (PostgreSQL is the required one).
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import arrowmapper as am
from tests.conftest import PG, MariaDB


@pytest.fixture
def mysql_db(mariadb: MariaDB) -> str:
    """The shared MariaDB fixture with a 30,000-row ``src`` table (MariaDB's sequence engine)."""
    db = mariadb.uri.rsplit("/", 1)[1]
    setup = f"""
        CREATE TABLE {db}.src (id INT PRIMARY KEY, name VARCHAR(20), d DATE, n INT NULL);
        INSERT INTO {db}.src
        SELECT seq, CONCAT('n''', seq), DATE_ADD('2020-01-01', INTERVAL seq % 1000 DAY),
               IF(seq % 5 = 0, NULL, seq % 17)
        FROM seq_1_to_30000;
    """
    try:
        mariadb.execute(setup)
    except subprocess.CalledProcessError:
        pytest.skip("the server has no seq_1_to_N tables (MariaDB's sequence engine)")
    return mariadb.uri


@pytest.mark.parametrize(("strategy", "key"), [("quantile", "n"), ("key", "d"), ("offset", "id")])
def test_mariadb_source_to_postgres_and_sqlite(
    mysql_db: str, pg: PG, tmp_path: Path, strategy: str, key: str
) -> None:
    r = am.map_query(
        mysql_db,
        "src",
        pg.uri,
        "dst",
        schema=pg.schema,
        strategy=strategy,
        key=key,
        chunk_size=6_000,
        workers=2,
    )
    assert r.rows_written == 30_000 and r.chunks >= 5
    rows = pg.query("SELECT id, name, d, n FROM dst ORDER BY id")
    assert len(rows) == 30_000 and rows[0][1] == "n'1" and rows[4][3] is None
    assert len({r[0] for r in rows}) == 30_000

    out = tmp_path / "t.db"
    r2 = am.map_query(
        mysql_db,
        "SELECT id, name FROM src WHERE n IS NOT NULL",
        f"sqlite://{out}",
        "t",
        strategy="quantile",
        key="id",
        chunk_size=5_000,
        workers=2,
    )
    assert r2.rows_written == 24_000
    assert sqlite3.connect(out).execute("SELECT COUNT(DISTINCT id) FROM t").fetchone()[0] == 24_000


def _mysql(uri: str, sql: str) -> None:
    parts = urlsplit(uri)
    cli = ["mysql", "-h", parts.hostname or "127.0.0.1", "-P", str(parts.port or 3306)]
    cli += [
        "-u",
        parts.username or "root",
        "-D",
        parts.path.lstrip("/"),
        "--default-character-set=utf8mb4",
    ]
    if parts.password:
        cli.append(f"-p{parts.password}")
    subprocess.run([*cli, "-e", sql], check=True)


def test_mariadb_types_exact_in_postgres(mysql_db: str, pg: PG) -> None:
    """decimal (scale > 10, more than 28 digits), datetime(6), JSON, text, blob and unsigned
    bigint arrive with the same text; the created columns take the source's precision."""
    _mysql(
        mysql_db,
        """
        CREATE TABLE types (id INT PRIMARY KEY, d30 DECIMAL(30,15), d12 DECIMAL(12,2),
          d65 DECIMAL(65,30), dt DATETIME(6), dd DATE, js JSON, tx TEXT, bl BLOB,
          ub BIGINT UNSIGNED, f DOUBLE) CHARACTER SET utf8mb4;
        INSERT INTO types VALUES
          (1, 123456789012345.123456789012345, -0.01,
           12345678901234567890123456789012345.123456789012345678901234567890,
           '9999-12-31 23:59:59.999999', '1000-01-01', '{"b": 1, "a": [1, 2.50]}',
           'héllo\\tworld\\n🎉 ''q''', x'00ff10', 18446744073709551615, 0.1),
          (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
          (3, -0.000000000000001, 3.00, 0, '1000-01-01 00:00:00', '2024-02-29', '[]', '', x'',
           0, -1.5e300);
        """,
    )
    am.map_query(
        mysql_db,
        "types",
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        chunk_size=1,
        workers=2,
    )
    rows = pg.query(
        "SELECT id, d30::text, d12::text, d65::text, dt::text, dd::text, js, tx, "
        "encode(bl, 'hex'), ub::text, f::text FROM dst ORDER BY id"
    )
    assert rows == [
        (
            1,
            "123456789012345.123456789012345",
            "-0.01",
            "12345678901234567890123456789012345.123456789012345678901234567890",
            "9999-12-31 23:59:59.999999",
            "1000-01-01",
            '{"b": 1, "a": [1, 2.50]}',
            "héllo\tworld\n🎉 'q'",
            "00ff10",
            "18446744073709551615",
            "0.1",
        ),
        (2, None, None, None, None, None, None, None, None, None, None),
        (
            3,
            "-0.000000000000001",
            "3.00",
            "0.000000000000000000000000000000",
            "1000-01-01 00:00:00",
            "2024-02-29",
            "[]",
            "",
            "",
            "0",
            "-1.5e+300",
        ),
    ]
    types = dict(
        pg.query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
            f"attrelid = '{pg.schema}.dst'::regclass AND attnum > 0"
        )
    )
    assert types["d30"] == "numeric(30,15)" and types["d65"] == "numeric(65,30)"
    assert types["ub"] == "numeric(20,0)" and types["dt"].startswith("timestamp")
    # a query's decimal (its scale unknown) travels as exact text into unconstrained numeric
    am.map_query(mysql_db, "SELECT id, d30, d12 FROM types", pg.uri, "q", schema=pg.schema)
    assert pg.query("SELECT d30::text, d12::text FROM q ORDER BY id") == [
        ("123456789012345.123456789012345", "-0.01"),
        (None, None),
        ("-0.000000000000001", "3.00"),
    ]
