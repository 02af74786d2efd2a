"""The Dask executor against a real LocalCluster of worker processes: identity and transform
jobs exact, a Dask worker process SIGKILLed mid-job (target exact), resume across executors
(start local, finish on Dask), a wrong scheduler address refused before any row moves."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import polars as pl
import pytest

import arrowmapper as am
from tests.conftest import PG

distributed = pytest.importorskip("distributed")

ROWS = 40_000


@pytest.fixture(scope="module")
def cluster(pg_uri: str) -> Iterator[Any]:
    """Three single-threaded worker processes behind nannies (a killed one is restarted).
    Their environment holds AM_TEST_DBNAME, which URIs can name as ${AM_TEST_DBNAME}."""
    os.environ["AM_TEST_DBNAME"] = urlsplit(pg_uri).path.lstrip("/")
    local = distributed.LocalCluster(
        n_workers=3, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    try:
        yield local
    finally:
        local.close()


def _source(pg: PG, rows: int = ROWS) -> str:
    pg.execute(
        f"CREATE TABLE src AS SELECT g AS id, md5(g::text) AS label, (g * 1.5)::float8 AS amount, "
        f"(g * 0.25)::numeric(12,2) AS price FROM generate_series(1, {rows}) g"
    )
    return pg.t("src")


def test_identity_and_transform_on_a_local_cluster(pg: PG, cluster: Any) -> None:
    src = _source(pg)
    seen: list[am.ProgressSnapshot] = []
    r = am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        chunk_size=4_000,
        workers=3,
        executor="dask",
        cluster=cluster.scheduler_address,
        progress=seen.append,
        verify=True,
    )
    assert r.success and r.rows_written == ROWS and r.chunks >= 10 and r.workers == 3
    pg.assert_same_rows(src, pg.t("dst"))
    # progress came back from the Dask workers as events
    assert seen and seen[-1].rows_written == ROWS and seen[-1].done

    r2 = am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst2",
        schema=pg.schema,
        key="id",
        chunk_size=8_000,
        executor="dask",
        cluster=cluster.scheduler_address,
        transform=[pl.all(), (pl.col("amount") * 2).alias("amount2")],
    )
    assert r2.rows_written == ROWS
    assert pg.scalar("SELECT count(*) FROM dst2 WHERE amount2 = amount * 2") == ROWS
    pg.assert_same_rows(src, pg.t("dst2"), "id, label, amount, price")


def test_a_dask_executor_of_its_own(pg: PG) -> None:
    """No address: a LocalCluster of `workers` processes, started and closed by the job."""
    src = _source(pg, 10_000)
    r = am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        chunk_size=2_500,
        workers=2,
        executor="dask",
    )
    assert r.rows_written == 10_000 and r.workers == 2
    pg.assert_same_rows(src, pg.t("dst"))


@pytest.mark.fault
def test_dask_worker_killed_mid_job_target_exact(pg: PG, cluster: Any) -> None:
    src = _source(pg)
    client = distributed.Client(cluster, set_as_default=False)
    pids = set(client.run(os.getpid).values())
    client.close()
    killed: list[int] = []

    def kill_one(snap: am.ProgressSnapshot) -> None:
        busy = [c for c in snap.running if c.pid in pids and c.rows_written > 0]
        if not killed and busy:
            killed.append(busy[0].pid)
            os.kill(busy[0].pid, signal.SIGKILL)

    os.environ["ARROWMAPPER_TEST_SLEEP"] = "0.2"
    try:
        r = am.map_query(
            pg.uri,
            src,
            pg.uri,
            "dst",
            schema=pg.schema,
            key="id",
            strategy="key",
            chunk_size=4_000,
            batch_size=1_000,
            executor="dask",
            cluster=cluster.scheduler_address,
            progress=kill_one,
            transform="tests.helpers:slow_identity",
        )
    finally:
        del os.environ["ARROWMAPPER_TEST_SLEEP"]
    assert killed, "no Dask worker was caught in the middle of a chunk"
    assert r.success and r.rows_written == ROWS
    pg.assert_same_rows(src, pg.t("dst"))  # nothing lost, nothing duplicated


def test_resume_on_dask_after_a_local_failure(pg: PG, cluster: Any) -> None:
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS label FROM generate_series(1, 12000) g"
    )
    with pytest.raises(am.JobFailed) as failed:
        am.map_query(
            pg.uri,
            pg.t("src"),
            pg.uri,
            "dst",
            schema=pg.schema,
            key="id",
            strategy="key",
            chunk_size=1_000,
            workers=2,
            transform="tests.helpers:fail_on_id",
            retry=am.RetryConfig(max_retries=0),
            job_id="cross-1",
        )
    assert failed.value.result.failed_chunks
    landed = pg.scalar("SELECT count(*) FROM dst")
    assert 0 < landed < 12_000
    pg.execute("DELETE FROM src WHERE id = 5777")  # fix the data; the job stays the same
    r = am.map_query(
        pg.uri,
        pg.t("src"),
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        chunk_size=1_000,
        transform="tests.helpers:fail_on_id",
        job_id="cross-1",
        resume=True,
        executor="dask",
        cluster=cluster.scheduler_address,
    )
    assert r.success and r.rows_written == 11_999 - landed
    pg.assert_same_rows(pg.t("src"), pg.t("dst"))


def test_wrong_scheduler_address_is_refused_before_any_row(pg: PG) -> None:
    src = _source(pg, 100)
    with pytest.raises(
        am.ConfigError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"
    ):
        am.map_query(
            pg.uri,
            src,
            pg.uri,
            "dst",
            schema=pg.schema,
            executor="dask",
            cluster="tcp://127.0.0.1:1",
        )
    assert pg.scalar(f"SELECT to_regclass('{pg.schema}.dst') IS NULL")
    with pytest.raises(am.ConfigError, match="executor must be one of local, dask"):
        am.map_query(pg.uri, src, pg.uri, "dst", schema=pg.schema, executor="ray")
    with pytest.raises(am.ConfigError, match="--memory-limit"):
        am.map_query(
            pg.uri, src, pg.uri, "dst", schema=pg.schema, executor="dask", max_worker_memory=512
        )


def test_cli_runs_on_the_cluster(pg: PG, cluster: Any) -> None:
    from tests.test_cli import run_cli

    src = _source(pg, 9_000)
    out = run_cli(
        "run",
        "--source",
        pg.uri,
        "--target",
        pg.uri,
        "--query",
        src,
        "--table",
        "dst",
        "--schema",
        pg.schema,
        "--key",
        "id",
        "--chunk-size",
        "3000",
        "--executor",
        "dask",
        "--cluster",
        cluster.scheduler_address,
        "--json",
    )
    assert out.returncode == 0, out.stderr
    pg.assert_same_rows(src, pg.t("dst"))
    bad = run_cli(
        "run",
        "--source",
        pg.uri,
        "--target",
        pg.uri,
        "--query",
        src,
        "--table",
        "dst2",
        "--schema",
        pg.schema,
        "--executor",
        "dask",
        "--cluster",
        "tcp://127.0.0.1:1",
    )
    assert bad.returncode == 2 and "cannot reach the Dask scheduler" in bad.stderr


def test_credentials_come_from_the_workers_environment(pg: PG, cluster: Any) -> None:
    """A ${NAME} in a URI travels as the reference: each worker expands it from its own
    environment, and the task holds no value of it."""
    import pickle

    from arrowmapper.config import parse_uri

    parts = urlsplit(pg.uri)
    templated = urlunsplit(parts._replace(path="/${AM_TEST_DBNAME}"))
    src = _source(pg, 5_000)
    r = am.map_query(
        templated,
        src,
        templated,
        "dst",
        schema=pg.schema,
        key="id",
        chunk_size=1_000,
        executor="dask",
        cluster=cluster.scheduler_address,
    )
    assert r.rows_written == 5_000
    pg.assert_same_rows(src, pg.t("dst"))
    os.environ["AM_SECRET_PW"] = "hunter2-secret"
    try:
        ep = parse_uri("postgresql://app:${AM_SECRET_PW}@db.example:5432/shop")
        blob = pickle.dumps(ep)
        assert b"hunter2" not in blob and ep.uri.startswith("postgresql://app:hunter2")
        os.environ["AM_SECRET_PW"] = "what-the-worker-has"
        assert "what-the-worker-has" in pickle.loads(blob).uri
        del os.environ["AM_SECRET_PW"]
        with pytest.raises(am.ConfigError, match="AM_SECRET_PW is not set"):
            pickle.loads(blob)
    finally:
        os.environ.pop("AM_SECRET_PW", None)


def test_a_file_source_on_a_local_cluster(pg: PG, cluster: Any, tmp_path: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = pa.table({"id": list(range(9_000)), "label": [f"r{i}" for i in range(9_000)]})
    for i in range(3):
        pq.write_table(data.slice(i * 3_000, 3_000), tmp_path / f"p{i}.parquet", row_group_size=1_000)
    r = am.map_query(
        str(tmp_path / "*.parquet"),
        None,
        pg.uri,
        "dst",
        schema=pg.schema,
        chunk_size=1_000,
        workers=3,
        executor="dask",
        cluster=cluster.scheduler_address,
    )
    assert r.success and r.chunks == 9 and r.rows_written == 9_000
    assert pg.query(f"SELECT count(DISTINCT id), min(id), max(id) FROM {pg.t('dst')}") == [
        (9_000, 0, 8_999)
    ]
