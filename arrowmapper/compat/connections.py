"""The URI of a connection object (psycopg, sqlite3, SQLAlchemy), so worker processes can
open their own connections."""

from __future__ import annotations

import os
import sqlite3
from typing import Any
from urllib.parse import quote

from ..config import scheme_dialect, uri_rules
from ..errors import ConfigError

_ACCEPTED = (
    "a URI string (postgresql://, sqlite:///, mysql://), a psycopg 3 or psycopg2 connection, a "
    "sqlite3 connection, or a SQLAlchemy engine or connection"
)


def _pg_uri(
    user: str | None, password: str | None, host: str | None, port: Any, dbname: str | None
) -> str:
    auth = quote(user or "", safe="")
    if password:
        auth += ":" + quote(password, safe="")
    if auth:
        auth += "@"
    if host and host.startswith("/"):
        return f"postgresql://{auth}/{dbname or ''}?host={quote(host, safe='')}&port={port or 5432}"
    return f"postgresql://{auth}{host or 'localhost'}:{port or 5432}/{dbname or ''}"


def connection_uri(conn: object, role: str = "source") -> str:
    """The URI of a connection object, so worker processes can open their own connections."""
    if isinstance(conn, str):
        return conn
    module = type(conn).__module__.split(".")[0]
    if isinstance(conn, sqlite3.Connection):
        rows = conn.execute("PRAGMA database_list").fetchall()
        path = next((r[2] for r in rows if r[1] == "main"), "")
        if not path:
            raise ConfigError(
                f"{role}_conn is an in-memory SQLite connection; worker processes cannot see it: "
                "use a database file"
            )
        return f"sqlite://{path}"
    if module == "psycopg":
        info = conn.info  # type: ignore[attr-defined]
        return _pg_uri(info.user, info.password, info.host, info.port, info.dbname)
    if module == "psycopg2":
        params = conn.get_dsn_parameters()  # type: ignore[attr-defined]
        password = getattr(getattr(conn, "info", None), "password", None)
        return _pg_uri(
            params.get("user"),
            password,
            params.get("host"),
            params.get("port"),
            params.get("dbname"),
        )
    if module == "sqlalchemy":
        engine: Any = getattr(conn, "engine", conn)
        url = engine.url
        backend = url.get_backend_name()
        dialect = scheme_dialect(backend)
        if dialect is None:
            raise ConfigError(f"{role}_conn: SQLAlchemy backend {backend!r} is not supported")
        rules = uri_rules(dialect)
        if rules.file:
            if not url.database or url.database == ":memory:":
                raise ConfigError(f"{role}_conn is an in-memory SQLite engine: use a database file")
            return f"{dialect}://{os.path.abspath(url.database)}"
        return str(url.set(drivername=rules.driver_scheme).render_as_string(hide_password=False))
    raise ConfigError(f"{role}_conn must be {_ACCEPTED}; got {type(conn).__name__}")
