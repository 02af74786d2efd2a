"""Bad input: a clear error naming the problem and the fix, before any table is created."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import arrowmapper as am
from tests.conftest import PG, with_userinfo


def _tables(pg: PG) -> list[str]:
    return [
        r[0]
        for r in pg.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (pg.schema,)
        )
    ]


@pytest.fixture
def src(pg: PG) -> str:
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, g % 5 AS dup, g::text AS s FROM generate_series(1, 1000) g"
    )
    return pg.t("src")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"strategy": "fastest"}, am.ConfigError, "strategy must be one of auto, offset, key"),
        ({"mode": "upsert"}, am.ConfigError, "mode must be one of append, create"),
        (
            {"strategy": "key", "key": "nope"},
            am.PlanError,
            "key column 'nope' is not in the query's columns",
        ),
        ({"strategy": "offset", "key": "dup"}, am.PlanError, "needs a unique ORDER BY key"),
        ({"strategy": "quantile"}, am.PlanError, "needs a key column"),
        ({"strategy": "key", "key": "s"}, am.PlanError, "use strategy='quantile'"),
        ({"resume": True}, am.ConfigError, "resume=True needs the job_id"),
        ({"job_id": "bad id; drop"}, am.ConfigError, "job_id must be"),
        ({"workers": 0}, am.ConfigError, "workers must be an integer >= 1"),
        ({"chunk_size": -3}, am.ConfigError, "chunk_size must be an integer >= 1"),
        ({"transform": lambda df: df}, am.ConfigError, "must be a top-level function"),
        (
            {"transform": "SELECT no_such_column FROM self"},
            am.ConfigError,
            "transform .* failed on a sample",
        ),
    ],
)
def test_bad_arguments(pg: PG, src: str, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        am.map_query(pg.uri, src, pg.uri, "dst", schema=pg.schema, **kwargs)
    assert _tables(pg) == ["src"], "nothing may be created before the inputs are checked"


def test_bad_sql_and_missing_table(pg: PG, src: str) -> None:
    with pytest.raises(am.SourceError, match="could not run the query.*syntax error"):
        am.map_query(pg.uri, "SELEC id FROM x", pg.uri, "dst", schema=pg.schema)
    with pytest.raises(am.SourceError, match='relation "nowhere" does not exist'):
        am.map_query(pg.uri, "SELECT * FROM nowhere", pg.uri, "dst", schema=pg.schema)
    assert _tables(pg) == ["src"]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("mongodb://h/db", "unknown scheme 'mongodb'"),
        ("", "must be a database URI"),
        ("postgresql://u:pw@127.0.0.1:5432", "names no database"),
    ],
)
def test_bad_uris(pg: PG, src: str, uri: str, message: str) -> None:
    with pytest.raises(am.ConfigError, match=message):
        am.map_query(uri, src, pg.uri, "dst", schema=pg.schema)
    with pytest.raises(am.ConfigError, match=message):
        am.map_query(pg.uri, src, uri, "dst", schema=pg.schema)


def test_unreachable_source_fails_within_seconds(pg: PG, src: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(am.SourceError, match="cannot connect to the source at 127.0.0.1:1"):
        am.map_query("postgresql://u:hunter2@127.0.0.1:1/db", src, pg.uri, "dst", schema=pg.schema)
    assert time.monotonic() - t0 < 10
    with pytest.raises(am.SourceError, match="does not exist; check the path"):
        am.map_query("sqlite:///no/such/file.db", "t", pg.uri, "dst", schema=pg.schema)
    with pytest.raises(am.TargetError, match="cannot connect to the target"):
        am.map_query(pg.uri, src, "postgresql://u@127.0.0.1:1/db", "dst")


def test_create_refuses_an_existing_table(pg: PG, src: str) -> None:
    pg.execute("CREATE TABLE dst (id int)")
    with pytest.raises(am.TargetError, match="already exists and mode='create' refuses it"):
        am.map_query(pg.uri, src, pg.uri, "dst", schema=pg.schema, mode="create")


def test_incompatible_target_types_refused_before_any_row(pg: PG, src: str) -> None:
    pg.execute("CREATE TABLE dst (id int, dup int, s int)")
    with pytest.raises(
        am.TargetError, match="column 's': cannot store .* int32.*cast it in the transform"
    ):
        am.map_query(pg.uri, src, pg.uri, "dst", schema=pg.schema)
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 0
    pg.execute("CREATE TABLE dst2 (id int)")
    with pytest.raises(am.TargetError, match="column 'dup' is not in the target table"):
        am.map_query(pg.uri, src, pg.uri, "dst2", schema=pg.schema)


def test_reused_job_id_without_resume(pg: PG, src: str) -> None:
    am.map_query(pg.uri, src, pg.uri, "dst", schema=pg.schema, job_id="job-1", workers=1)
    with pytest.raises(am.ConfigError, match="already in the ledger .* finished .* new job_id"):
        am.map_query(pg.uri, src, pg.uri, "dst", schema=pg.schema, job_id="job-1")


def test_terminal_chunk_error_is_not_retried(pg: PG) -> None:
    pg.execute("CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 10000) g")
    with pytest.raises(am.JobFailed) as info:
        am.map_query(
            pg.uri,
            pg.t("big"),
            pg.uri,
            "dst",
            schema=pg.schema,
            key="id",
            strategy="key",
            chunk_size=1000,
            workers=2,
            transform="tests.helpers:fail_on_id",
            retry=am.RetryConfig(max_retries=3, base_delay=0.01),
        )
    result = info.value.result
    assert result.failed_chunks == (5,)
    failed = [r for r in result.chunk_results if not r.success]
    assert failed[0].attempts == 1 and "bad row id 5777" in failed[0].error
    assert "resume=True" in str(info.value)
    # every other chunk committed, the failed one left nothing behind
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 9000
    assert pg.scalar("SELECT COUNT(*) FROM dst WHERE id BETWEEN 5001 AND 6000") == 0


def test_sqlite_target_rejects_schema(tmp_path: Path, pg: PG, src: str) -> None:
    with pytest.raises(am.ConfigError, match="SQLite target has no schemas"):
        am.map_query(pg.uri, src, f"sqlite://{tmp_path}/x.db", "dst", schema="s")


def test_unknown_options_and_roles(pg: PG, src: str) -> None:
    with pytest.raises(
        am.ConfigError, match="unknown option 'chunksize'; did you mean 'chunk_size'"
    ):
        am.map_query(pg.uri, src, pg.uri, "dst", schema=pg.schema, chunksize=10)
    nobody = with_userinfo(pg.uri, "no_such_role_x", "secretpw")
    with pytest.raises(am.ArrowMapperError) as info:
        am.map_query(nobody, src, pg.uri, "dst", schema=pg.schema)
    assert 'role "no_such_role_x" does not exist' in str(info.value)
    import traceback

    assert "secretpw" not in "".join(traceback.format_exception(info.value))
    assert _tables(pg) == ["src"]
