"""Connection budget: workers are fitted to the free connections before the job starts, and a
server that runs out mid-job (SQLSTATE 53300) lowers concurrency instead of burning retries."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

import arrowmapper as am
from arrowmapper.api import prepare, run_prepared
from tests.conftest import PG

pytestmark = pytest.mark.fault


@pytest.fixture
def limited(pg: PG) -> Iterator[str]:
    """A URI for a non-superuser role limited to 3 connections, owning the test schema."""
    parts = urlsplit(pg.uri)
    if not parts.hostname or parts.hostname.startswith("/"):
        pytest.skip("needs a TCP server URI")
    role = f"am_lim_{pg.schema}"
    pg.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 3")
    pg.execute(f"GRANT ALL ON SCHEMA {pg.schema} TO {role}")
    pg.execute("CREATE TABLE src AS SELECT g AS id, g::text AS s FROM generate_series(1, 20000) g")
    pg.execute(f"ALTER TABLE src OWNER TO {role}")
    netloc = f"{role}@{parts.hostname}:{parts.port or 5432}"
    try:
        yield urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    finally:
        pg.execute(f"DROP OWNED BY {role}")
        pg.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
        )
        pg.execute(f"DROP ROLE {role}")


def test_workers_are_fitted_to_free_connections(pg: PG, limited: str) -> None:
    r = am.map_query(
        limited,
        pg.t("src"),
        limited,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        workers=4,
        chunk_size=2_000,
    )
    assert r.success and r.workers == 1  # 3 connections: two for connectorx, one for ADBC
    assert any("free connections" in n for n in r.notes)
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 20_000


@pytest.mark.parametrize("path", ["arrow", "copy"])
def test_running_out_of_connections_lowers_concurrency(pg: PG, limited: str, path: str) -> None:
    """Workers beyond the lowered limit stop (they hold target connections between chunks),
    so the chunks still to run find free slots; on both paths."""
    prepared = prepare(
        limited,
        pg.t("src"),
        limited,
        "dst",
        schema=pg.schema,
        strategy="key",
        key="id",
        workers=1,
        chunk_size=1_000,
        retry=am.RetryConfig(max_retries=1, base_delay=0.05),
        path=path,
    )
    # force 3 workers past the budget check: they need 6 connections, the role has 3
    spec = dataclasses.replace(prepared.spec, workers=3)
    r = run_prepared(spec)
    assert r.success and r.rows_written == 20_000, r.summary()
    assert r.path == path
    assert any("no free connections" in n for n in r.notes), r.summary()
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 20_000


def test_no_free_connection_at_all_is_a_clear_error(pg: PG, limited: str) -> None:
    pg.execute(f"ALTER ROLE {urlsplit(limited).username} CONNECTION LIMIT 1")
    with pytest.raises(am.SourceError, match="not enough free connections .* a worker needs 3"):
        am.map_query(limited, pg.t("src"), limited, "dst", schema=pg.schema, key="id")
    assert pg.scalar(f"SELECT to_regclass('{pg.schema}.dst') IS NULL")
