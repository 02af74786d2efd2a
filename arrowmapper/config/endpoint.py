"""Where a job reads and writes: database URIs parsed into :class:`Endpoint` values (a
password is never shown), reachability checks, and the table names arrowmapper reserves."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit, urlunsplit

from ..errors import (
    ConfigError,
    SourceError,
    TargetError,
    error_info,
    redact,
    userinfo_end,
)

Dialect = Literal["postgresql", "sqlite", "mysql", "mssql", "oracle", "file", "other"]


@dataclass(frozen=True)
class UriRules:
    """How one dialect's URIs are read and its server reached: one row of :data:`URI_RULES`,
    looked up once (:func:`uri_rules`, :attr:`Endpoint.rules`) instead of comparing names."""

    #: the scheme the drivers (connectorx, ADBC) expect; None: the URI names a file
    driver_scheme: str | None
    #: the port of a URI that names none; None: no server to reach over TCP
    default_port: int | None = None
    #: a URI without a host (and without ``?host=``) is refused
    needs_host: bool = False
    #: ``?host=/socket/dir`` is moved into the netloc (connectorx needs a host in the URL)
    socket_in_netloc: bool = False
    #: the server is logged into once (ADBC) before a job: a wrong login is said at once,
    #: and its free connections are counted (the workers are fitted to them)
    adbc_login: bool = False
    #: the job's query is SQL the source's server runs (checked with its rules before any
    #: connection); False for files, whose optional query is Polars SQL checked on describe
    sql: bool = True

    @property
    def file(self) -> bool:
        """The database is a file (its path is the URI's; nothing to reach over a network)."""
        return self.driver_scheme is None


#: every dialect's URI rules; a dialect without a row (a test's ``parquet``) reads as ``other``
URI_RULES: dict[str, UriRules] = {
    "postgresql": UriRules(
        "postgresql", 5432, needs_host=True, socket_in_netloc=True, adbc_login=True
    ),
    "mysql": UriRules("mysql", 3306),
    "mssql": UriRules("mssql", 1433),
    "oracle": UriRules("oracle", 1521),
    "sqlite": UriRules(None),
    "file": UriRules("file", sql=False),
    "other": UriRules("other"),
}


def uri_rules(dialect: str) -> UriRules:
    """The URI rules of ``dialect`` (``other``'s for a dialect without a row)."""
    return URI_RULES.get(dialect) or URI_RULES["other"]


@dataclass(frozen=True)
class Endpoint:
    """A database named by a URI; ``str()`` and ``repr()`` never show the password."""

    uri: str
    dialect: Dialect
    path: str | None = None  # SQLite: the database file
    template: str | None = None  # the URI as given, with ${NAME} references not expanded

    @property
    def redacted(self) -> str:
        return redact(self.template or self.uri)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled (to a worker process or a Dask task) as its template when it has one: each
        process expands ``${NAME}`` from its own environment, so credentials kept in the
        workers' environment never travel in a task."""
        if self.template:
            return (_from_template, (self.template,))
        return (Endpoint, (self.uri, self.dialect, self.path, None))

    def __repr__(self) -> str:
        return f"Endpoint({self.redacted!r})"

    __str__ = __repr__

    @property
    def rules(self) -> UriRules:
        """This endpoint's dialect's row of :data:`URI_RULES`."""
        return uri_rules(self.dialect)

    @property
    def host_port(self) -> tuple[str, int] | None:
        """``(host, port)`` of the server to probe over TCP (None: a file or a Unix socket)."""
        default = self.rules.default_port
        if default is None:
            return None
        parts = urlsplit(self.uri)
        if (parts.hostname or "").lower().startswith("%2f") or "host=/" in parts.query:
            return None  # a Unix socket: nothing to probe over TCP
        try:
            port = parts.port or default
        except ValueError as exc:
            raise ConfigError(f"bad port in URI {self.redacted}") from exc
        return (parts.hostname or "localhost", port)


_SCHEMES: dict[str, Dialect] = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "mssql",
    "oracle": "oracle",
}


def scheme_dialect(scheme: str) -> Dialect | None:
    """The dialect a URI scheme or a SQLAlchemy backend name speaks (``mariadb`` and
    ``mysql+pymysql`` -> ``mysql``); None for one arrowmapper does not read."""
    return _SCHEMES.get(scheme.split("+", 1)[0].lower())


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(uri: str, role: str = "source") -> str:
    """``${NAME}`` in a URI replaced by that environment variable (URL-quoted)."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"the {role} URI names ${{{name}}}, but the environment variable {name} is not "
                f"set in this process (pid {os.getpid()}); set it where the job and its workers run"
            )
        return quote(os.environ[name], safe="")

    return _ENV_REF.sub(value, uri)


def _from_template(template: str) -> Endpoint:
    return parse_uri(template, "database")


def parse_uri(uri: object, role: str = "source") -> Endpoint:
    """Validate a database URI, say which dialect it speaks, and normalise it for the drivers.

    PostgreSQL: ``postgresql://user[:password]@host[:port]/db``; SQLite: ``sqlite:///abs/path.db``
    or ``sqlite://relative.db``; MySQL/MariaDB: ``mysql://user@host:3306/db``. SQLAlchemy's
    spellings (``postgresql+psycopg://``, ``postgres://``, ``mysql+pymysql://``, ``mariadb://``,
    ...) become the driver's scheme. A password may hold raw ``@ : / ? #`` (the user part ends at
    the last ``@`` before the host); it is percent-encoded again, and never shown.

    >>> parse_uri("postgres://app:p@ss@db/shop").uri
    'postgresql://app:p%40ss@db/shop'
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(
            f"{role} must be a database URI string such as postgresql://user@host:5432/db "
            f"or sqlite:///path/to/file.db, got {type(uri).__name__}"
        )
    uri = uri.strip()
    whole = _ENV_REF.fullmatch(uri)
    if whole:  # the whole URI in one variable (DATABASE_URL): used as it is, never shown
        name = whole.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"the {role} URI is ${{{name}}}, but the environment variable {name} is not set "
                f"in this process (pid {os.getpid()}); set it where the job and its workers run"
            )
        return replace(parse_uri(os.environ[name], role), template=uri)
    _check_uri_text(uri, role)
    if _ENV_REF.search(uri):
        return replace(parse_uri(expand_env(uri, role), role), template=uri)
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    base = scheme.split("+", 1)[0]
    if base not in _SCHEMES:
        raise ConfigError(
            f"{role} URI {redact(uri)!r} has an unknown scheme {scheme!r}; use one of "
            f"postgresql://, sqlite:///, mysql://"
        )
    dialect = _SCHEMES[base]
    rules = uri_rules(dialect)
    rest = uri.split("://", 1)[1]
    if rules.file:
        path = rest.split("?", 1)[0]
        if not path:
            raise ConfigError(
                f"{role} URI {redact(uri)!r} names no file; use sqlite:///path/to/file.db"
            )
        if "\x00" in unquote(path):
            raise ConfigError(f"{role} SQLite path holds a NUL character (%00); name a real file")
        path = str(Path(unquote(path)).resolve()) if not path.startswith("/") else unquote(path)
        return Endpoint(uri=f"{dialect}://{path}", dialect=dialect, path=path)
    uri = f"{rules.driver_scheme}://{_requoted_userinfo(rest)}"
    try:
        parts = urlsplit(uri)
    except ValueError as exc:  # "Invalid IPv6 URL", ...
        raise ConfigError(f"{role} URI {redact(uri)!r} cannot be parsed ({exc})") from None
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigError(
            f"{role} URI {redact(uri)!r} has a bad port; use {base}://user@host:5432/db (a "
            "password with special characters may be written as is or percent-encoded)"
        ) from None
    if not parts.hostname and rules.needs_host and "host=" not in uri:
        raise ConfigError(
            f"{role} URI {redact(uri)!r} names no host; use {base}://user@host:port/db"
        )
    if not parts.path.strip("/"):
        raise ConfigError(f"{role} URI {redact(uri)!r} names no database; add /dbname at the end")
    if rules.socket_in_netloc:
        uri = _socket_host_in_netloc(uri)
    return Endpoint(uri=uri, dialect=dialect)


_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _check_uri_text(uri: str, role: str) -> None:
    """Refuse what no URI holds, before anything can echo it (a driver quotes the bad part of
    a URI in its error, password and all): blanks, a ``%`` that starts no escape, NUL."""
    if any(ch.isspace() for ch in uri):
        raise ConfigError(
            f"the {role} URI holds a space or another blank character; percent-encode it (a "
            "space is %20). The URI is not shown: it may hold a password"
        )
    rest = uri.split("://", 1)[-1]
    after_user = rest[userinfo_end(rest) + 1 :]  # a raw password may hold any '%': re-encoded
    if _BAD_PERCENT.search(after_user) or "\x00" in uri:
        raise ConfigError(
            f"the {role} URI holds a '%' that is not a percent-escape (or a NUL); write a "
            "literal % as %25. The URI is not shown: it may hold a password"
        )


def _requoted_userinfo(rest: str) -> str:
    """``user:password@host/db...`` (what follows ``scheme://``) with the user and password
    percent-encoded exactly once (the userinfo ends where
    :func:`~arrowmapper.errors.userinfo_end` says)."""
    at = userinfo_end(rest)
    if at < 0:
        return rest
    userinfo, hostpart = rest[:at], rest[at + 1 :]
    user, colon, password = userinfo.partition(":")
    user, password = unquote(user), unquote(password)
    auth = quote(user, safe="")
    if colon:
        auth += ":" + quote(password, safe="")
    return f"{auth}@{hostpart}"


def _socket_host_in_netloc(uri: str) -> str:
    """``postgresql://u@/db?host=/run/pg`` -> ``postgresql://u@%2Frun%2Fpg/db``.

    libpq takes both spellings of a Unix-socket URI; connectorx only the second (it needs a
    host in the URL), so every PostgreSQL URI is normalised to it.
    """
    parts = urlsplit(uri)
    query = parse_qs(parts.query, keep_blank_values=True)
    hosts = query.get("host", [])
    if parts.hostname or not hosts or not hosts[0].startswith("/"):
        return uri
    rest = {k: v for k, v in query.items() if k != "host"}
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + quote(hosts[0], safe="")
    if "port" in rest:
        netloc += f":{rest.pop('port')[0]}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(rest, doseq=True), ""))


#: tables arrowmapper keeps in the target (targets.LEDGER, JOBS, MARKS): never a job's table.
RESERVED_TABLES: tuple[str, ...] = ("arrowmapper_ledger", "arrowmapper_jobs", "arrowmapper_marks")


def check_table_name(table: object) -> None:
    """Refuse a target table named like one of arrowmapper's own bookkeeping tables (in any
    letter case: SQLite ignores it)."""
    if isinstance(table, str) and table.lower() in RESERVED_TABLES:
        raise ConfigError(
            f"table {table!r} is reserved: arrowmapper keeps its ledger, job records and marks "
            f"in {', '.join(RESERVED_TABLES)}; load into a table of another name"
        )


def check_reachable(endpoint: Endpoint, role: str, timeout: float = 3.0) -> None:
    """Fail within seconds when a server does not answer, or (PostgreSQL) refuses the login:
    no such database or role, a wrong password. connectorx would retry for ~30 s and then
    report it as a failed query; this says "cannot connect" (the CLI's exit code 3)."""
    error = SourceError if role == "source" else TargetError
    if endpoint.rules.file:
        assert endpoint.path is not None
        if role == "source" and not Path(endpoint.path).is_file():
            raise error(
                f"{role} SQLite file {endpoint.path} does not exist; check the path",
                kind="config",
                transient=False,
            )
        if role == "target" and not Path(endpoint.path).parent.is_dir():
            raise error(
                f"{role} SQLite directory {Path(endpoint.path).parent} does not exist",
                kind="config",
                transient=False,
            )
        return
    hp = endpoint.host_port
    if hp is None:
        return
    host, port = hp
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise error(
            f"cannot connect to the {role} at {host}:{port} ({exc.strerror or exc}); "
            f"check that the server runs and the URI {endpoint.redacted} is right",
            kind="connect",
            transient=True,
        ) from None
    if endpoint.rules.adbc_login:
        _check_login(endpoint, role)


def _check_login(endpoint: Endpoint, role: str) -> None:
    """Log in once (one ADBC connection, closed at once) so that a missing database or role
    or a wrong password is reported as such, at once."""
    from ..adbc import connect_postgresql

    try:
        connect_postgresql(endpoint.uri).close()
    except Exception as exc:
        info = error_info(exc)
        if info.kind != "connect":
            return  # e.g. no free connection slot: the preflight counts those and says so
        error = SourceError if role == "source" else TargetError
        raise error(
            f"cannot connect to the {role} {endpoint.redacted}: {info.message}; check the "
            "database name, user and password in the URI",
            kind="connect",
            transient=info.transient,
            sqlstate=info.sqlstate,
        ) from exc
