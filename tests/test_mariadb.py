"""A MariaDB/MySQL source through connectorx (backtick quoting, NTILE quantiles, DATE literals).

Uses ``ARROWMAPPER_TEST_MYSQL`` or the local server on 127.0.0.1:3306 (root, no password) and
the ``mysql`` client for set-up; skipped when neither is there (PostgreSQL is the required one).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import arrowmapper as am
from tests.conftest import PG


@pytest.fixture
def mysql_db() -> Iterator[str]:
    base = os.environ.get("ARROWMAPPER_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
    parts = urlsplit(base)
    try:
        socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 3306), timeout=2
        ).close()
    except OSError:
        pytest.skip("no MariaDB/MySQL server answers")
    if not shutil.which("mysql"):
        pytest.skip("no mysql client for the set-up")
    db = "am_" + secrets.token_hex(4)
    cli = [
        "mysql",
        "-h",
        parts.hostname or "127.0.0.1",
        "-P",
        str(parts.port or 3306),
        "-u",
        parts.username or "root",
    ]
    if parts.password:
        cli.append(f"-p{parts.password}")
    subprocess.run([*cli, "-e", f"CREATE DATABASE {db}"], check=True)
    setup = f"""
        CREATE TABLE {db}.src (id INT PRIMARY KEY, name VARCHAR(20), d DATE, n INT NULL);
        INSERT INTO {db}.src
        SELECT seq, CONCAT('n''', seq), DATE_ADD('2020-01-01', INTERVAL seq % 1000 DAY),
               IF(seq % 5 = 0, NULL, seq % 17)
        FROM seq_1_to_30000;
    """
    if subprocess.run([*cli, "-D", db, "-e", setup]).returncode != 0:
        subprocess.run([*cli, "-e", f"DROP DATABASE {db}"])
        pytest.skip("the server has no seq_1_to_N tables (MariaDB's sequence engine)")
    try:
        yield f"{parts.scheme}://{parts.netloc}/{db}"
    finally:
        subprocess.run([*cli, "-e", f"DROP DATABASE {db}"], check=True)


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
