"""What differs between systems is read from their table rows: URIs (config.URI_RULES), the
source and target dialect rows, and the compat layer's two public signatures, declared once.
No server is needed: nothing here connects."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import sqlalchemy as sa

import arrowmapper as am
from arrowmapper.compat import ParallelProcessor, connection_uri, execute_query_parallel
from arrowmapper.config import URI_RULES, parse_uri, scheme_dialect, uri_rules
from arrowmapper.errors import ConfigError
from arrowmapper.identity import source_identity
from arrowmapper.run.capacity import free_connections
from arrowmapper.sources import source_dialect
from arrowmapper.targets import dialect_of


@pytest.mark.parametrize(
    ("uri", "port"),
    [
        ("postgresql://u@db/x", 5432),
        ("postgres://u@db/x", 5432),
        ("mysql://u@db/x", 3306),
        ("mariadb://u@db/x", 3306),
        ("mssql://u@db/x", 1433),
        ("oracle://u@db/x", 1521),
        ("mysql://u@db:3307/x", 3307),
    ],
)
def test_a_server_uri_gets_its_dialects_default_port(uri: str, port: int) -> None:
    assert parse_uri(uri).host_port == ("db", port)


def test_a_sqlite_uri_names_a_file_and_no_server(tmp_path: Path) -> None:
    ep = parse_uri(f"sqlite://{tmp_path}/a.db")
    assert ep.rules.file and ep.path == f"{tmp_path}/a.db" and ep.host_port is None
    assert ep.uri == f"sqlite://{tmp_path}/a.db"
    assert source_identity(ep) == f"sqlite://{tmp_path}/a.db"
    assert free_connections(ep) is None  # nothing to count, nothing opened


def test_only_a_postgresql_uri_needs_a_host() -> None:
    with pytest.raises(ConfigError, match="names no host"):
        parse_uri("postgresql://u@/x")
    assert parse_uri("postgresql://u@/x?host=/run/pg").uri == "postgresql://u@%2Frun%2Fpg/x"
    assert parse_uri("mysql://u@/x").dialect == "mysql"  # the driver's default host


def test_scheme_names_and_backends_map_to_dialects() -> None:
    assert scheme_dialect("mariadb") == "mysql"
    assert scheme_dialect("MySQL+pymysql") == "mysql"
    assert scheme_dialect("postgres") == "postgresql"
    assert scheme_dialect("firebird") is None
    for dialect in {scheme_dialect(s) for s in ("postgresql", "sqlite", "mysql", "mssql")}:
        assert dialect in URI_RULES
    assert uri_rules("parquet") == URI_RULES["other"]  # a dialect without a row
    assert uri_rules("parquet").default_port is None


def test_sqlalchemy_engines_give_their_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = sa.create_engine("postgresql+psycopg://app:p%40ss@db:5433/shop")
    assert connection_uri(engine) == "postgresql://app:p%40ss@db:5433/shop"
    monkeypatch.chdir(tmp_path)
    assert connection_uri(sa.create_engine("sqlite:///rel.db")) == f"sqlite://{tmp_path}/rel.db"
    with pytest.raises(ConfigError, match="in-memory SQLite engine"):
        connection_uri(sa.create_engine("sqlite://"))


def test_the_dialect_rows_say_what_the_servers_can_do() -> None:
    pg, lite, my = source_dialect("postgresql"), source_dialect("sqlite"), source_dialect("mysql")
    assert (pg.snapshots, pg.estimates, pg.hashes_rows, pg.rowid) == (True, True, True, "ctid")
    for other in (lite, my, source_dialect("mssql")):
        assert not (other.snapshots or other.estimates or other.hashes_rows)
        assert other.rowid == "rowid"
    assert dialect_of("postgresql").hashes_rows and dialect_of("postgresql").keeps_source_types
    assert not (dialect_of("sqlite").hashes_rows or dialect_of("sqlite").keeps_source_types)


@pytest.mark.parametrize(("dialect", "strategy"), [("postgresql", "ctid"), ("sqlite", "rowid")])
def test_the_old_rowid_strategy_is_read_from_the_source_row(dialect: str, strategy: str) -> None:
    config = ParallelProcessor().config({"strategy": am.ChunkingStrategy.ROWID_BASED}, dialect)
    assert config.strategy == strategy


_JOB = [
    ("source_conn", "Any", inspect.Parameter.empty),
    ("source_sql", "str | None", inspect.Parameter.empty),  # None: every row of a file source
    ("target_conn", "Any", inspect.Parameter.empty),
    ("target_schema", "str | None", inspect.Parameter.empty),
    ("target_table", "str", inspect.Parameter.empty),
    ("transform", "Any", None),
    ("strategy", "ChunkingStrategy | str | None", None),
    ("key", "str | None", None),
    ("params", "Mapping[str, Any] | None", None),
]
_QUERY = [
    ("max_workers", "int | None", None),
    ("chunk_size", "int | None", None),
    ("max_retries", "int | None", None),
    ("progress_callback", "Callable[[ProgressSnapshot], Any] | None", None),
    ("retry_config", "RetryConfig | None", None),
]


def _shape(fn: object) -> list[tuple[str, object, object]]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    assert sig.return_annotation == "ParallelProcessingResult"
    return [(p.name, p.annotation, p.default) for p in sig.parameters.values()]


def test_the_drop_in_signatures_keep_their_names_order_types_and_defaults() -> None:
    assert _shape(execute_query_parallel) == _JOB + _QUERY
    assert _shape(ParallelProcessor().process_mapper_job) == _JOB
    assert _shape(ParallelProcessor.process_mapper_job)[0][0] == "self"
    assert execute_query_parallel.__name__ == "execute_query_parallel"
    assert ParallelProcessor.process_mapper_job.__doc__
    with pytest.raises(TypeError, match="target_table"):
        ParallelProcessor().process_mapper_job("a", "SELECT 1", "b", None)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'workers'"):
        execute_query_parallel("a", "SELECT 1", "b", None, "t", workers=2)  # type: ignore[call-arg]


def test_a_bad_query_is_refused_through_either_entry_point(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path}/a.db"
    with pytest.raises(ConfigError, match="source_sql must be a non-empty SQL query"):
        execute_query_parallel(db, "  ", db, None, "t")
    with pytest.raises(ConfigError, match="params must be a mapping"):
        ParallelProcessor().process_mapper_job(db, "SELECT 1", db, None, "t", params=[1])  # type: ignore[arg-type]
