"""Fixtures: a real PostgreSQL for every database test, each test in its own schema.

PostgreSQL is found through ``ARROWMAPPER_TEST_PG`` (a URI), else the local server on
127.0.0.1:5432, else a throwaway ``pgserver`` (embedded PostgreSQL from a wheel). With
``ARROWMAPPER_REQUIRE_DB=1`` (set by CI) a missing database fails the run instead of skipping.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REQUIRE_DB = os.environ.get("ARROWMAPPER_REQUIRE_DB", "") not in ("", "0", "false")


def _try_connect(uri: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(uri, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    """A URI of a PostgreSQL database the tests may create schemas in."""
    uri = os.environ.get("ARROWMAPPER_TEST_PG")
    if uri:
        if not _try_connect(uri):
            pytest.fail(f"ARROWMAPPER_TEST_PG is set but does not answer: {uri}")
        yield uri
        return
    local = "postgresql://postgres@127.0.0.1:5432/test"
    if _try_connect(local):
        yield local
        return
    try:
        import pgserver

        tmp = tempfile.mkdtemp(prefix="arrowmapper-pg-")
        server = pgserver.get_server(tmp, cleanup_mode="stop")
        uri = server.get_uri()
    except Exception as exc:  # pragma: no cover - depends on the machine
        msg = f"no PostgreSQL: ARROWMAPPER_TEST_PG unset, 127.0.0.1:5432 silent, pgserver failed ({exc})"
        if REQUIRE_DB:
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        yield uri
    finally:
        server.cleanup()


@dataclass
class PG:
    """One test's schema on the test server, with helpers to run SQL."""

    uri: str
    schema: str

    def execute(self, sql: str, params: Any = None) -> None:
        import psycopg

        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}", public')
            conn.execute(sql, params)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}", public')
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Any = None) -> Any:
        return self.query(sql, params)[0][0]

    def t(self, table: str) -> str:
        """Schema-qualified table name, usable as a query."""
        return f"{self.schema}.{table}"

    def assert_same_rows(self, left: str, right: str, columns: str = "*") -> int:
        """Both tables hold exactly the same multiset of rows; returns the row count."""
        n_left = self.scalar(f"SELECT COUNT(*) FROM {left}")
        n_right = self.scalar(f"SELECT COUNT(*) FROM {right}")
        assert n_left == n_right, f"{left} has {n_left} rows, {right} has {n_right}"
        for a, b in ((left, right), (right, left)):
            diff = self.scalar(
                f"SELECT COUNT(*) FROM (SELECT {columns} FROM {a} EXCEPT ALL SELECT {columns} FROM {b}) d"
            )
            assert diff == 0, f"{diff} rows of {a} are not in {b}"
        return int(n_left)


@pytest.fixture
def pg(pg_uri: str) -> Iterator[PG]:
    """A fresh schema for this test, dropped afterwards."""
    schema = "t_" + secrets.token_hex(5)
    db = PG(pg_uri, schema)
    db.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield db
    finally:
        db.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_dir(tmp_path: Path) -> Path:
    return tmp_path


def with_userinfo(uri: str, user: str, password: str) -> str:
    """``uri`` with its user and password replaced (works for TCP and Unix-socket URIs)."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass
class MariaDB:
    """A fresh MariaDB/MySQL database for one test: its URI and the ``mysql`` client for it."""

    uri: str
    cli: list[str]

    def execute(self, sql: str) -> str:
        """Run SQL with the ``mysql`` client (batch mode); return what it printed."""
        import subprocess

        done = subprocess.run([*self.cli, "-e", sql], check=True, capture_output=True, text=True)
        return done.stdout


@pytest.fixture
def mariadb() -> Iterator[MariaDB]:
    """``ARROWMAPPER_TEST_MYSQL`` or the local server on 127.0.0.1:3306 (root, no password);
    skipped when neither answers, failed instead under ``ARROWMAPPER_REQUIRE_DB=1``."""
    import shutil
    import socket
    import subprocess
    from urllib.parse import urlsplit

    base = os.environ.get("ARROWMAPPER_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
    parts = urlsplit(base)
    missing = None
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 3306), 2).close()
    except OSError:
        missing = "no MariaDB/MySQL server answers"
    if missing is None and not shutil.which("mysql"):
        missing = "no mysql client for the set-up"
    if missing is not None:
        if REQUIRE_DB:
            pytest.fail(f"{missing} (ARROWMAPPER_REQUIRE_DB is set)")
        pytest.skip(missing)
    cli = ["mysql", "-h", parts.hostname or "127.0.0.1", "-P", str(parts.port or 3306)]
    cli += ["-u", parts.username or "root", "-N", "-B", "--default-character-set=utf8mb4"]
    if parts.password:
        cli.append(f"-p{parts.password}")
    db = "am_" + secrets.token_hex(4)
    subprocess.run([*cli, "-e", f"CREATE DATABASE {db}"], check=True)
    try:
        yield MariaDB(f"{parts.scheme}://{parts.netloc}/{db}", [*cli, "-D", db])
    finally:
        subprocess.run([*cli, "-e", f"DROP DATABASE {db}"], check=True)
