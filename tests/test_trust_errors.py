"""Trust at the edges: errors are classified by data, only ours leave, and no password leaks.

Real servers and real worker processes throughout: connectorx panics are provoked with queries
that fail while rows stream, credentials travel in URIs whose password holds ``@ : / %`` and
multibyte characters, and the command line is run as a subprocess (Ctrl-C included).
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arrowmapper as am
from arrowmapper import api, compat
from arrowmapper.config import RESERVED_TABLES, parse_uri
from arrowmapper.errors import (
    ConfigError,
    PlanError,
    SourceError,
    TargetError,
    classify,
    error_info,
    exit_code,
    redact,
    scrub,
)
from tests.conftest import PG, MariaDB, with_userinfo

ROOT = Path(__file__).resolve().parents[1]


class PanicException(BaseException):
    """Shaped like pyo3's: a BaseException, matched by name, never imported."""


class DriverError(Exception):
    """Shaped like an ADBC error: ``sqlstate`` and ``status_code`` attributes."""

    def __init__(self, msg: str, sqlstate: str | None = None, status: str | None = None) -> None:
        super().__init__(msg)
        self.sqlstate = sqlstate
        if status is not None:
            self.status_code = type("Status", (), {"name": status})()


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arrowmapper", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=timeout,
    )


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` / ``__context__``."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop()
        if any(e is s for s in seen):
            continue
        seen.append(e)
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return seen


def printed(exc: BaseException) -> str:
    """Everything anyone could print of ``exc``: the traceback, and str/repr of its chain."""
    parts = ["".join(traceback.format_exception(exc))]
    for e in chain(exc):
        parts += [str(e), repr(e), *getattr(e, "__notes__", [])]
    return "\n".join(parts)


def spellings(password: str) -> list[str]:
    """The ways a password may show up in text."""
    return sorted({password, quote(password, safe=""), quote(password)}, key=len)


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        ("08006", "connect"),
        ("08001", "connect"),
        ("08P01", "connect"),
        ("40001", "conflict"),
        ("40P01", "conflict"),
        ("55P03", "conflict"),
        ("53300", "connection_limit"),
        ("57P01", "connect"),
        ("57P02", "connect"),
        ("57P03", "connect"),
        ("57014", "timeout"),
    ],
)
def test_transient_sqlstates_and_their_kinds(state: str, kind: str) -> None:
    info = error_info(DriverError("boom", state))
    assert (info.transient, info.sqlstate, info.kind) == (True, state, kind)
    assert classify(DriverError("boom", state)) == (True, state)


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        ("21000", "data"),  # ON CONFLICT DO UPDATE affecting a row twice (merge)
        ("22012", "data"),
        ("22P02", "data"),
        ("23505", "data"),
        ("25P02", "query"),
        ("28P01", "connect"),
        ("28000", "connect"),
        ("3D000", "connect"),
        ("42883", "query"),  # operator does not exist
        ("42P01", "query"),
        ("42601", "query"),
        ("0A000", "query"),
        ("2BP01", "query"),
        ("54000", "query"),
    ],
)
def test_terminal_sqlstates_and_their_kinds(state: str, kind: str) -> None:
    info = error_info(DriverError("boom", state))
    assert (info.transient, info.sqlstate, info.kind) == (False, state, kind)


DB_ERROR = (
    "cx writer failed: Source(PostgresError(Error { kind: Db, cause: Some(DbError { severity: "
    '"ERROR", parsed_severity: Some(Error), code: SqlState(E22012), message: "division by zero", '
    "detail: None, hint: None, position: None, where_: None, schema: None, table: None, column: "
    'None, datatype: None, constraint: None, file: Some("int.c"), line: Some(869), routine: '
    'Some("int4div") }) }))'
)


@pytest.mark.parametrize(
    ("exc", "kind", "transient", "says"),
    [
        (PanicException(DB_ERROR), "data", False, "ERROR 22012: division by zero"),
        (
            PanicException(
                DB_ERROR.replace("E22012", "E42P02").replace(
                    "division by zero", "there is no parameter $1"
                )
            ),
            "query",
            False,
            "ERROR 42P02: there is no parameter $1",
        ),
        (
            PanicException(
                "cx writer failed: Source(PostgresError(Error { kind: FromSql(3), cause: "
                'Some(ConversionTo("NaN")) }))'
            ),
            "data",
            False,
            "'NaN' in result column #4",
        ),
        (
            PanicException(
                "Could not retrieve `core::option::Option<chrono::naive::date::NaiveDate>`: "
                "Couldn't convert the value `Date(\"'0000-00-00'\")` to a desired type"
            ),
            "data",
            False,
            "'0000-00-00' cannot be read as a date",
        ),
        (
            PanicException(
                "Could not retrieve `core::option::Option<chrono::naive::time::NaiveTime>`: "
                "Couldn't convert the value `Time(\"'-001:00:00'\")` to a desired type"
            ),
            "data",
            False,
            "'-001:00:00' cannot be read as a time",
        ),
        (
            PanicException(
                'cx writer failed: Source(SQLiteError(InvalidColumnType(1, "v", Text)))'
            ),
            "data",
            False,
            "column 'v' holds a Text value",
        ),
        (
            PanicException(
                "cx writer failed: Source(SQLiteError(FromSqlConversionFailure(1, Text, "
                "Utf8Error { valid_up_to: 0, error_len: Some(1) })))"
            ),
            "data",
            False,
            "not valid UTF-8",
        ),
        (PanicException("not implemented: interval"), "data", False, "cannot read the type"),
        (
            PanicException(
                "cx writer failed: Source(PostgresError(Error { kind: Closed, cause: None }))"
            ),
            "connect",
            True,
            "connection closed",
        ),
        (
            RuntimeError("db error: ERROR: operator does not exist: integer + boolean"),
            "query",
            False,
            "ERROR: operator does not exist",
        ),
        (
            RuntimeError(
                'timed out waiting for connection: db error: FATAL: database "x" does not exist'
            ),
            "connect",
            False,
            'FATAL: database "x" does not exist',
        ),
        (
            RuntimeError(
                'timed out waiting for connection: db error: FATAL: role "x" does not exist'
            ),
            "connect",
            False,
            'role "x" does not exist',
        ),
        (
            RuntimeError(
                "timed out waiting for connection: MySqlError { ERROR 1049 (42000): Unknown database 'x' }"
            ),
            "connect",
            False,
            "ERROR 1049 (42000): Unknown database 'x'",
        ),
        (
            RuntimeError("MySqlError { ERROR 1045 (28000): Access denied }"),
            "connect",
            False,
            "1045",
        ),
        (
            RuntimeError("MySqlError { ERROR 1040 (08004): Too many connections }"),
            "connection_limit",
            True,
            "1040",
        ),
        (
            RuntimeError("MySqlError { ERROR 1213 (40001): Deadlock found }"),
            "conflict",
            True,
            "1213",
        ),
        (
            DriverError("IO: Failed to step query: datatype mismatch", None, "IO"),
            "data",
            False,
            "datatype mismatch",
        ),
        (
            DriverError(
                "INVALID_ARGUMENT: [SQLite] Failed to prepare query: no such column: x",
                None,
                "INVALID_ARGUMENT",
            ),
            "query",
            False,
            "no such column",
        ),
        (DriverError("IO: database is locked", None, "IO"), "conflict", True, "locked"),
        (
            DriverError(
                "NOT_FOUND: Failed to prepare query: ERROR:  operator does not exist: integer + "
                "boolean Query was: SELECT 1 + true. SQLSTATE: 42883",
                "42883",
                "NOT_FOUND",
            ),
            "query",
            False,
            "ERROR 42883: operator does not exist: integer + boolean",
        ),
        (ConnectionResetError("reset"), "connect", True, "reset"),
        (ValueError("bad row"), "data", False, "bad row"),
    ],
)
def test_driver_errors_are_classified_by_what_they_say(
    exc: BaseException, kind: str, transient: bool, says: str
) -> None:
    info = error_info(exc)
    assert (info.kind, info.transient) == (kind, transient)
    assert says in info.message
    assert "DbError" not in info.message and "Query was" not in info.message


def test_our_errors_inherit_the_kind_of_what_they_wrap_and_map_to_exit_codes() -> None:
    wrapped = SourceError("the source could not run the query")
    wrapped.__cause__ = PanicException(DB_ERROR)
    assert error_info(wrapped).kind == "data" and classify(wrapped) == (False, "22012")
    assert exit_code(wrapped) == 1
    lost = TargetError("wrapped")
    lost.__cause__ = DriverError("x", "57P01")
    assert classify(lost) == (True, "57P01")
    assert exit_code(ConfigError("bad")) == 2 and exit_code(PlanError("no key")) == 2
    assert exit_code(SourceError("x", kind="connect")) == 3
    assert exit_code(SourceError("no free connection slot", kind="connection_limit")) == 3
    refused = TargetError("no unique index", kind="config", transient=False)
    assert exit_code(refused) == 2 and classify(refused)[0] is False
    missing = SourceError("cannot connect")
    missing.__cause__ = RuntimeError('db error: FATAL: database "nope" does not exist')
    assert exit_code(missing) == 3
    from arrowmapper.errors import VerificationError

    assert error_info(VerificationError("differs", transient=True)).kind == "verification"


def test_no_message_text_decides_anything_outside_errors_py() -> None:
    cli = (ROOT / "arrowmapper" / "cli.py").read_text()
    coordinator = (ROOT / "arrowmapper" / "run" / "coordinator.py").read_text()
    api_py = (ROOT / "arrowmapper" / "api.py").read_text()
    assert '"cannot connect" in' not in cli and '"too many connections" in' not in api_py
    assert 'startswith("VerificationError")' not in coordinator
    assert "too many connections" not in coordinator.lower()


# --------------------------------------------------------------------------- redaction

_PASSWORD_CHARS = st.characters(
    codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x00"
)


@settings(max_examples=150, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(_PASSWORD_CHARS, min_size=1, max_size=24))
def test_any_password_is_parsed_requoted_and_redacted(password: str) -> None:
    for scheme in ("postgresql", "postgresql+psycopg", "postgres", "mysql+pymysql", "mariadb"):
        encoded = f"{scheme}://app:{quote(password, safe='')}@db.example:5432/shop"
        raw_ok = (
            unquote(password) == password
            and "${" not in password
            and not any(c.isspace() for c in password)
        )
        uris = [encoded, f"{scheme}://app:{password}@db.example:5432/shop"] if raw_ok else [encoded]
        driver = "mysql" if scheme.startswith(("mysql", "mariadb")) else "postgresql"
        for uri in uris:
            ep = parse_uri(uri, "source")
            parts = urlsplit(ep.uri)
            assert ep.uri.startswith(f"{driver}://app:")
            assert unquote(parts.password or "") == password
            assert (parts.hostname, parts.port, parts.path) == ("db.example", 5432, "/shop")
            expected = f"{driver}://app:***@db.example:5432/shop"
            assert ep.redacted == expected and repr(ep) == f"Endpoint({expected!r})"
            if raw_ok:
                assert (
                    redact(f"failed: {uri} (x)")
                    == f"failed: {scheme}://app:***@db.example:5432/shop (x)"
                )


def test_redaction_of_free_text_and_of_exception_chains() -> None:
    pw = "p@ss:w/rd%zé€"
    raw = f"postgresql://app:{pw}@db.example/shop"
    uri = parse_uri(raw).uri
    for text in (raw, uri):
        assert redact(f"x {text} y") == "x postgresql://app:***@db.example/shop y"
    assert redact(f"password={pw!r} host=x") == "password=*** host=x"
    assert redact('Config { password: Some("my (secret) pw"), user: "u" }') == (
        'Config { password: Some(***), user: "u" }'
    )
    assert redact("postgresql://u:pw@h/db?application_name=a@b") == (
        "postgresql://u:***@h/db?application_name=a@b"
    )
    driver = RuntimeError(f"cannot open {raw} (password={pw})")
    ours = SourceError("the source could not run the query")
    ours.__cause__ = driver
    outer = ConfigError(f"bad {uri}")
    outer.__context__ = ours
    scrub(outer)
    text = printed(outer)
    for s in spellings(pw):
        assert s not in text
    assert "RuntimeError" in text  # the driver error's kind survives, for --debug


# --------------------------------------------------------------------------- panics at the API


@pytest.fixture
def panicky(pg: PG) -> PG:
    pg.execute("CREATE TABLE t AS SELECT g AS id, g::numeric AS n FROM generate_series(1, 1000) g")
    pg.execute("INSERT INTO t VALUES (1001, 'NaN')")
    return pg


def _no_table(pg: PG, name: str) -> bool:
    return not pg.scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        (pg.schema, name),
    )


def test_a_query_failing_while_rows_stream_is_a_source_error_everywhere(panicky: PG) -> None:
    pg = panicky
    query = f"SELECT 1/(id-5) AS x FROM {pg.t('t')}"  # fails in the sampled first rows
    with pytest.raises(SourceError) as info:
        am.map_query(pg.uri, query, pg.uri, "out", schema=pg.schema, workers=1)
    assert "ERROR 22012: division by zero" in str(info.value)
    assert "DbError" not in str(info.value) and info.value.kind == "data"
    assert _no_table(pg, "out")  # refused before anything was created
    with pytest.raises(SourceError, match="ERROR 22012: division by zero"):
        api.describe_columns(pg.uri, query)
    with pytest.raises(am.ArrowMapperError) as placeholder:
        am.map_query(
            pg.uri,
            f"SELECT id FROM {pg.t('t')} WHERE id > $1",
            pg.uri,
            "o2",
            schema=pg.schema,
            workers=1,
        )
    assert "DbError" not in str(placeholder.value)
    for strategy in ("quantile", "key"):
        with pytest.raises(PlanError, match="key 'n'.*NaN"):
            am.plan_query(pg.uri, pg.t("t"), strategy=strategy, key="n", chunk_size=200)


def test_a_worker_reports_the_servers_message_and_a_terminal_error_is_not_retried(
    pg: PG,
) -> None:
    pg.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 3000) g")
    with pytest.raises(am.JobFailed) as info:
        am.map_query(
            pg.uri,
            f"SELECT id, 1/(id-2500) AS x FROM {pg.t('t')}",
            pg.uri,
            "out",
            schema=pg.schema,
            strategy="key",
            key="id",
            chunk_size=1000,
            workers=2,
        )
    failed = [c for c in info.value.result.chunk_results if not c.success]
    assert len(failed) == 1 and failed[0].attempts == 1  # terminal: no retries
    assert failed[0].kind == "data" and failed[0].sqlstate == "22012"
    assert "ERROR 22012: division by zero" in (failed[0].error or "")
    assert "DbError" not in (failed[0].error or "")
    assert pg.scalar("SELECT count(*) FROM out") == 2000  # the other chunks committed


def test_merge_affecting_a_row_twice_is_terminal(pg: PG) -> None:
    pg.execute("CREATE TABLE src AS SELECT g AS n, g AS v FROM generate_series(1, 100) g")
    pg.execute("CREATE TABLE dst (id int PRIMARY KEY, v int)")
    # the key is made by the transform, so no preflight can see it repeat: the server's 21000
    # ("ON CONFLICT ... cannot affect row a second time") is terminal, not retried
    with pytest.raises(am.JobFailed) as info:
        am.map_query(
            pg.uri,
            pg.t("src"),
            pg.uri,
            "dst",
            schema=pg.schema,
            mode="merge",
            key="id",
            strategy="none",
            workers=1,
            transform="SELECT n % 50 AS id, v FROM self",
        )
    (failed,) = [c for c in info.value.result.chunk_results if not c.success]
    assert failed.sqlstate == "21000" and failed.attempts == 1 and not failed.transient


def test_merge_on_a_key_the_source_repeats_is_refused_up_front(pg: PG) -> None:
    """Found by review: a key repeated across chunks kept one row at random, reported OK."""
    pg.execute("CREATE TABLE src AS SELECT g % 5000 AS id, g AS v FROM generate_series(1, 10000) g")
    pg.execute("CREATE TABLE dst (id int PRIMARY KEY, v int)")
    with pytest.raises(am.ConfigError, match="mode='merge' upserts on \\(id\\).* 2 rows"):
        am.map_query(pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, mode="merge", key="id")
    assert pg.scalar("SELECT count(*) FROM dst") == 0


def test_sqlite_mixed_types_and_bad_utf8_are_source_errors(tmp_path: Path) -> None:
    src = tmp_path / "src.db"
    with sqlite3.connect(src) as c:
        c.execute("CREATE TABLE m (id INTEGER, v INTEGER)")
        c.executemany("INSERT INTO m VALUES (?, ?)", [(1, 1), (2, "abc")])
        c.execute("CREATE TABLE u (id INTEGER, s TEXT)")
        c.execute("INSERT INTO u VALUES (1, CAST(X'C328FF' AS TEXT))")
    target = f"sqlite://{tmp_path / 'out.db'}"
    with pytest.raises(SourceError, match="column 'v' holds a Text value") as mixed:
        am.map_query(f"sqlite://{src}", "SELECT id, v FROM m", target, "o1", workers=1)
    with pytest.raises(SourceError, match="not valid UTF-8") as utf8:
        am.map_query(f"sqlite://{src}", "SELECT id, s FROM u", target, "o2", workers=1)
    for e in (mixed.value, utf8.value):
        assert "cx writer failed" not in str(e) and exit_code(e) == 1


@pytest.fixture
def mysql_uri(mariadb: MariaDB) -> str:
    """A MariaDB database with zero dates and a negative TIME (sql_mode off to insert them)."""
    mariadb.execute(
        "SET SESSION sql_mode = ''; CREATE TABLE z (id INT, d DATE, t TIME); "
        "INSERT INTO z VALUES (1, '0000-00-00', '-01:00:00'), (2, '2020-01-01', '01:00:00');"
    )
    return mariadb.uri


def test_mariadb_zero_dates_and_negative_times_are_source_errors(
    mysql_uri: str, tmp_path: Path
) -> None:
    target = f"sqlite://{tmp_path / 'out.db'}"
    with pytest.raises(SourceError, match="column 'd' .*'0000-00-00'"):
        am.map_query(mysql_uri, "SELECT id, d FROM z", target, "o1", workers=1)
    with pytest.raises(SourceError, match="'-001:00:00' cannot be read as a time"):
        am.map_query(mysql_uri, "SELECT id, t FROM z", target, "o2", workers=1)


def test_duplicate_output_names_and_reserved_tables_are_config_errors(pg: PG) -> None:
    pg.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10) g")
    with pytest.raises(ConfigError, match="2 columns named 'id'.*alias"):
        am.map_query(pg.uri, f"SELECT id, id FROM {pg.t('t')}", pg.uri, "o1", schema=pg.schema)
    with pytest.raises(ConfigError, match="named '\\?column\\?'.*alias"):
        am.map_query(pg.uri, "SELECT 1, 2", pg.uri, "o2", schema=pg.schema, workers=1)
    assert _no_table(pg, "o1") and _no_table(pg, "o2")
    for name in (*RESERVED_TABLES, "ARROWMAPPER_JOBS"):
        with pytest.raises(ConfigError, match="is reserved"):
            am.map_query(pg.uri, pg.t("t"), pg.uri, name, schema=pg.schema, workers=1)
        with pytest.raises(ConfigError, match="is reserved"):
            am.execute_query_parallel(pg.uri, pg.t("t"), pg.uri, pg.schema, name)
    assert _no_table(pg, "arrowmapper_ledger") and _no_table(pg, "arrowmapper_jobs")
    from arrowmapper import targets
    from arrowmapper.targets.marks import MARKS

    assert {targets.LEDGER, targets.JOBS, MARKS} == set(RESERVED_TABLES)


def test_compat_returns_failure_instead_of_raising(panicky: PG) -> None:
    pg = panicky
    result = am.execute_query_parallel(
        pg.uri, f"SELECT 1/(id-5) AS x FROM {pg.t('t')}", pg.uri, pg.schema, "o1"
    )
    assert not result.success and result.error is not None
    assert "ERROR 22012: division by zero" in result.errors[0]
    missing = am.ParallelProcessor(max_workers=1).process_mapper_job(
        pg.uri.rsplit("/", 1)[0] + "/no_such_db_am", "SELECT 1 AS x", pg.uri, pg.schema, "o2"
    )
    assert not missing.success and "does not exist" in missing.errors[0]
    assert missing.error is not None and missing.error.kind == "connect"


# --------------------------------------------------------------------------- credentials

PASSWORD = "p@ss:w/rd%zé€ü"  # "%z" is no escape: the raw and the encoded URI agree


@pytest.fixture
def pw_role(pg: PG) -> Iterator[str]:
    """A login role with a password; its URI (the server trusts 127.0.0.1, so the password is
    never checked: failures come from a wrong database, port or query)."""
    role = "am_pw_" + secrets.token_hex(4)
    pg.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
    try:
        yield with_userinfo(pg.uri, role, PASSWORD)
    finally:
        pg.execute(f"DROP OWNED BY {role}")
        pg.execute(f"DROP ROLE {role}")


def _leaks(text: str) -> list[str]:
    return [s for s in (*spellings(PASSWORD), "w/rd%zé", "w%2Frd") if s in text]


def _raw(uri: str) -> str:
    """The URI with the password written raw (``@ : / %`` unescaped), as users paste it."""
    parts = urlsplit(uri)
    return uri.replace(
        parts.netloc, f"{parts.username}:{PASSWORD}@{parts.netloc.rpartition('@')[2]}"
    )


def test_no_password_in_raised_errors_their_chains_or_logs(
    pw_role: str, pg: PG, caplog: pytest.LogCaptureFixture
) -> None:
    pg.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 3000) g")
    caplog.set_level("DEBUG", logger="arrowmapper")
    bad_db = pw_role.rsplit("/", 1)[0] + "/no_such_db_am"
    cases: list[tuple[str, str, dict[str, Any]]] = [
        (bad_db, "SELECT 1 AS x", {}),
        (_raw(bad_db), "SELECT 1 AS x", {}),
        (_raw(pw_role), "SELECT * FROM nowhere_at_all", {}),
        (pw_role, f"SELECT 1/(id-5) AS x FROM {pg.t('t')}", {}),
        (
            pw_role,
            f"SELECT id, 1/(id-2500) AS x FROM {pg.t('t')}",
            {"strategy": "key", "key": "id", "chunk_size": 1000, "workers": 2},
        ),
    ]
    for source, query, extra in cases:
        with pytest.raises(am.ArrowMapperError) as info:
            am.map_query(source, query, _raw(pw_role), "out", schema=pg.schema, **extra)
        assert not _leaks(printed(info.value)), (query, printed(info.value))
        result = getattr(info.value, "result", None)
        if result is not None:
            assert not _leaks(result.to_json())
    with pytest.raises(am.ArrowMapperError) as down:
        am.plan_query(_raw(pw_role).replace(":5432/", ":1/"), "SELECT 1")
    assert exit_code(down.value) == 3 and not _leaks(printed(down.value))
    assert not _leaks(caplog.text)


def test_no_password_in_the_ledger_or_in_pickled_tasks(
    pw_role: str, pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 3000) g")
    r = am.map_query(
        _raw(pw_role),
        pg.t("t"),
        pw_role,
        "out",
        schema=pg.schema,
        strategy="key",
        key="id",
        chunk_size=1000,
        workers=2,
    )
    assert r.rows_written == 3000
    for table in ("arrowmapper_ledger", "arrowmapper_jobs"):
        rows = pg.query(f"SELECT * FROM {table}")
        assert rows and not _leaks(repr(rows))
    # a ${NAME} password stays out of what travels to workers or a Dask cluster
    monkeypatch.setenv("AM_TEST_PW", PASSWORD)
    template = with_userinfo(pg.uri, urlsplit(pw_role).username or "", "x").replace(
        ":x@", ":${AM_TEST_PW}@"
    )
    ep = parse_uri(template)
    assert unquote(urlsplit(ep.uri).password or "") == PASSWORD  # expanded for this process
    assert not _leaks(
        pickle.dumps(ep).decode("latin-1") + pickle.dumps(ep).decode("utf-8", "replace")
    )
    sent: list[bytes] = []
    real = compat.run_prepared

    def spy(spec: Any, progress: Any = None) -> Any:
        sent.append(pickle.dumps((spec.source, spec.target)))
        return real(spec, progress)

    monkeypatch.setattr(compat, "run_prepared", spy)
    result = am.execute_query_parallel(
        template,
        pg.t("t"),
        template,
        pg.schema,
        "out2",
        max_workers=1,
        params={"min_rows_for_parallel": 0},
    )
    assert result.success and sent
    assert not _leaks(sent[0].decode("latin-1") + sent[0].decode("utf-8", "replace"))


def test_no_password_in_anything_the_cli_prints(pw_role: str, pg: PG) -> None:
    pg.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 3000) g")
    bad_db = _raw(pw_role).rsplit("/", 1)[0] + "/no_such_db_am"
    runs = [
        ("--debug", "plan", "--source", bad_db, "--query", "SELECT 1"),
        ("plan", "--source", _raw(pw_role), "--query", "SELECT * FROM nowhere_at_all"),
        ("--debug", "plan", "--source", _raw(pw_role), "--query", "SELECT * FROM nowhere_at_all"),
        (
            "--debug",
            "run",
            "--source",
            _raw(pw_role),
            "--target",
            pw_role,
            "--schema",
            pg.schema,
            "--table",
            "out",
            "--query",
            f"SELECT id, 1/(id-2500) AS x FROM {pg.t('t')}",
            "--key",
            "id",
            "--chunk-size",
            "1000",
            "--workers",
            "2",
            "--json",
        ),
    ]
    for args in runs:
        out = run_cli(*args)
        assert out.returncode in (1, 3), out.stderr
        assert not _leaks(out.stdout + out.stderr), out.stdout + out.stderr
    assert json.loads(out.stdout)["failed_chunks"]  # --json printed the failed job


# --------------------------------------------------------------------------- exit codes


def test_exit_codes_zero_and_one(pg: PG, tmp_path: Path) -> None:
    pg.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 3000) g")
    common = ("--target", pg.uri, "--schema", pg.schema, "--quiet")
    ok = run_cli("run", "--source", pg.uri, "--query", pg.t("t"), "--table", "o0", *common)
    assert ok.returncode == 0, ok.stderr
    failed = run_cli(
        "run",
        "--source",
        pg.uri,
        "--query",
        f"SELECT id, 1/(id-2500) AS x FROM {pg.t('t')}",
        "--table",
        "o1",
        "--key",
        "id",
        "--chunk-size",
        "1000",
        "--workers",
        "2",
        *common,
    )
    assert failed.returncode == 1, failed.stderr
    assert "ERROR 22012: division by zero" in failed.stderr
    panic = run_cli(
        "run",
        "--source",
        pg.uri,
        "--query",
        f"SELECT 1/(id-5) AS x FROM {pg.t('t')}",
        "--table",
        "o2",
        *common,
        env={"RUST_BACKTRACE": "1"},
    )
    assert panic.returncode == 1
    lines = panic.stderr.strip().splitlines()
    assert lines == [lines[-1]] and "ERROR 22012: division by zero" in lines[-1], panic.stderr
    assert "panicked" not in panic.stderr and "Traceback" not in panic.stderr


def test_exit_code_two_for_bad_usage_or_configuration(pg: PG, tmp_path: Path) -> None:
    pg.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g")
    pg.execute("CREATE TABLE plain (id int, v int)")
    merge = run_cli(
        "run",
        "--source",
        pg.uri,
        "--target",
        pg.uri,
        "--schema",
        pg.schema,
        "--query",
        f"SELECT id, id AS v FROM {pg.t('t')}",
        "--table",
        "plain",
        "--mode",
        "merge",
        "--key",
        "id",
        "--quiet",
    )
    assert merge.returncode == 2 and "CREATE UNIQUE INDEX" in merge.stderr, merge.stderr
    assert pg.scalar("SELECT count(*) FROM plain") == 0
    binary = tmp_path / "job.toml"
    binary.write_bytes(b"\x00\xff\xfe\x89PNG\r\n")
    for job, says in ((str(tmp_path), "is a directory"), (str(binary), "is not text")):
        out = run_cli("run", job)
        assert out.returncode == 2 and says in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    dup = run_cli("plan", "--source", pg.uri, "--query", f"SELECT id, id FROM {pg.t('t')}")
    assert dup.returncode == 2 and "alias" in dup.stderr


def test_exit_code_three_when_the_server_refuses_or_is_not_there(pg: PG) -> None:
    base = pg.uri.rsplit("/", 1)[0]
    for source, says in (
        (base + "/no_such_db_am", 'database "no_such_db_am" does not exist'),
        (with_userinfo(pg.uri, "no_such_role_am", "pw"), 'role "no_such_role_am" does not exist'),
        ("postgresql://u:hunter2@127.0.0.1:1/db", "cannot connect"),
    ):
        started = time.monotonic()
        out = run_cli("plan", "--source", source, "--query", "SELECT 1")
        assert out.returncode == 3 and says in out.stderr, out.stderr
        assert time.monotonic() - started < 20  # not connectorx's 30 s of retries
        assert "hunter2" not in out.stderr and "Traceback" not in out.stderr


@pytest.mark.fault
@pytest.mark.parametrize("to", ["group", "coordinator"])
def test_ctrl_c_exits_130_and_leaves_no_worker(pg: PG, to: str) -> None:
    """Ctrl-C in a terminal signals the whole process group; ``kill -INT`` only the
    coordinator. Either way: exit code 130 at once, no worker left, whole chunks only."""
    pg.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 40000) g")
    app = "am_ctrl_c_" + secrets.token_hex(4)  # the workers' target sessions, to watch them
    target = pg.uri + ("&" if "?" in pg.uri else "?") + f"application_name={app}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "arrowmapper",
            "run",
            "--source",
            pg.uri,
            "--target",
            target,
            "--schema",
            pg.schema,
            "--table",
            "out",
            "--query",
            pg.t("t"),
            "--key",
            "id",
            "--strategy",
            "key",
            "--chunk-size",
            "2000",
            "--workers",
            "2",
            "--quiet",
            "--transform",
            "tests.helpers:slow_identity",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "ARROWMAPPER_TEST_SLEEP": "1"},
        start_new_session=True,  # its own process group: Ctrl-C reaches the group
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # wait until a chunk is in flight
            # the job is claimed (prepare committed the ledger and the jobs row: under load its
            # own session can be seen idle in transaction before that) and a session holds a
            # chunk's transaction open
            busy = pg.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND state = 'idle in transaction' AND to_regclass(%s) IS NOT NULL",
                (app, pg.t("arrowmapper_jobs")),
            ) and pg.scalar(f"SELECT count(*) FROM {pg.t('arrowmapper_jobs')}")
            if busy or proc.poll() is not None:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children
        if to == "group":
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        else:
            os.kill(proc.pid, signal.SIGINT)
        interrupted = time.monotonic()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert time.monotonic() - interrupted < 10  # not after the chunks in flight finish
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.pid for p in alive]
    # whole chunks only: what the table holds is what the ledger says was committed
    committed = pg.scalar("SELECT COALESCE(SUM(rows), 0) FROM arrowmapper_ledger WHERE rows >= 0")
    assert pg.scalar("SELECT count(*) FROM out") == committed


# --------------------------------------------------------------------------- found by review


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://u:Zq9 s#e?c/r@e:t%41+x@127.0.0.1:5432/test",  # a raw blank
        "postgresql://u:Zq9\u00a0secret@${AM_TEST_HOST}:5432/test",  # in a template
        "postgresq://u:pa ss@h/db",  # and a typo'd scheme
        "postgresql://u@127.0.0.1:5432/test?password=my secret",
        "postgresql://u@127.0.0.1:5432/test?password=hunter%zz2",  # libpq echoes a bad escape
    ],
)
def test_uris_a_driver_would_echo_are_refused_without_showing_them(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AM_TEST_HOST", "127.0.0.1")
    with pytest.raises(am.ConfigError) as err:
        am.plan_query(uri, "SELECT 1 AS x")
    shown = "".join(traceback.format_exception(err.value))
    for secret in ("s#e?c", "secret", "pa ss", "hunter"):
        assert secret not in shown, shown


def test_a_whole_uri_in_one_variable(pg: PG, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: ${DATABASE_URL} was percent-quoted whole, so it never worked, and the
    error showed the encoded password."""
    monkeypatch.setenv("AM_TEST_URL", with_userinfo(pg.uri, "postgres", "s3cr/t@x"))
    pg.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g")
    r = am.map_query("${AM_TEST_URL}", pg.t("t"), pg.uri, "dst", schema=pg.schema, workers=1)
    assert r.success and r.rows_written == 100
    fingerprint = str(pg.scalar("SELECT fingerprint FROM arrowmapper_jobs"))
    assert "s3cr" not in fingerprint and "postgresql://postgres@" in fingerprint


def test_a_transform_that_exits_cannot_end_the_caller(pg: PG, tmp_path: Path) -> None:
    """Found by review: SystemExit(0) from a transform run on the sample made the CLI exit 0."""
    pg.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g")

    with pytest.raises(am.ConfigError, match="SystemExit"):
        am.map_query(
            pg.uri, pg.t("t"), pg.uri, "dst", schema=pg.schema, transform="tests.helpers:exits"
        )


@pytest.mark.parametrize(
    "option",
    [
        {"statement_timeout": float("nan")},
        {"statement_timeout": float("inf")},
        {"stall_timeout": float("nan")},
        {"verify": "no"},
        {"resume": "false", "job_id": "x"},
    ],
)
def test_options_that_look_valid_but_are_not(pg: PG, option: dict[str, Any]) -> None:
    with pytest.raises(am.ConfigError):
        am.map_query(pg.uri, "SELECT 1 AS x", pg.uri, "dst", schema=pg.schema, **option)


def test_a_logged_traceback_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level("ERROR", logger="arrowmapper")
    try:
        raise ValueError("connect to postgresql://app:hunter3@db/shop failed")
    except ValueError:
        logging.getLogger("arrowmapper").exception("boom")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "hunter3" not in text and "app:***@db" in text


def test_a_missing_target_schema_or_sqlite_file_is_a_configuration_error(
    pg: PG, tmp_path: Path
) -> None:
    """Found by review: exit 1 with the whole CREATE TABLE in the message."""
    with pytest.raises(am.ConfigError, match="schema 'no_such_schema_am' does not exist"):
        am.map_query(pg.uri, "SELECT 1 AS x", pg.uri, "dst", schema="no_such_schema_am")
    with pytest.raises(am.ArrowMapperError) as err:
        am.map_query(f"sqlite://{tmp_path / 'missing.db'}", "t", pg.uri, "d", schema=pg.schema)
    assert exit_code(err.value) == 2


@pytest.mark.parametrize("state", ["40001", "57014"])
def test_a_transient_failure_while_planning_is_retried(pg: PG, state: str) -> None:
    """Found by review: a serialization failure or a cancelled statement during sampling or
    planning failed the job at once, where a chunk would have been retried."""
    pg.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 5000) g")
    pg.execute("CREATE SEQUENCE flaky")
    pg.execute(f"""
        CREATE FUNCTION flaky() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
          IF nextval('{pg.schema}.flaky') IN (1, 3) THEN
            RAISE EXCEPTION 'passing trouble' USING ERRCODE = '{state}';
          END IF;
          RETURN true;
        END $$""")
    query = f"SELECT id FROM {pg.t('t')} WHERE {pg.schema}.flaky()"
    r = am.map_query(
        pg.uri,
        query,
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        chunk_size=1000,
        workers=1,
        retry=am.RetryConfig(max_retries=3, base_delay=0.01),
    )
    assert r.success and pg.scalar("SELECT count(*) FROM dst") == 5000
