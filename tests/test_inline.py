"""A small one-chunk job runs in the calling process (no worker to start): exactly-once,
retried and reported like any other job; the cases that keep a worker keep one."""

from __future__ import annotations

import pytest

import arrowmapper as am
from tests.conftest import PG

#: the target's first write fails with a serialization failure (transient), later ones pass
FAIL_ONCE = """
CREATE TABLE {s}.dst (id int, s text);
CREATE SEQUENCE {s}.tries;
CREATE FUNCTION {s}.fail_first_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('{s}.tries') = 1 THEN
    RAISE EXCEPTION 'first write fails' USING ERRCODE = '40001';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER fail_once BEFORE INSERT ON {s}.dst
  FOR EACH STATEMENT EXECUTE FUNCTION {s}.fail_first_write();
"""


def _src(pg: PG, rows: int = 3_000) -> None:
    pg.execute(
        f"CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, {rows}) g"
    )
    pg.execute("ANALYZE src")


@pytest.mark.parametrize("path", ["arrow", "copy"])
def test_a_small_job_runs_in_this_process_and_retries_a_transient_failure(
    pg: PG, path: str
) -> None:
    _src(pg)
    pg.execute(FAIL_ONCE.format(s=pg.schema))
    r = am.map_query(
        pg.uri,
        pg.t("src"),
        pg.uri,
        "dst",
        schema=pg.schema,
        path=path,
        retry=am.RetryConfig(max_retries=2, base_delay=0.01),
    )
    assert r.success and r.workers == 0 and r.path == path
    assert r.chunks == 1 and r.chunk_results[0].attempts == 2
    assert "in this process" in r.summary()
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 3_000  # once each


def test_a_terminal_failure_in_this_process_is_a_clear_job_failure(pg: PG) -> None:
    _src(pg)
    query = f"SELECT id, 100 / (id - 2500) AS q FROM {pg.t('src')}"
    with pytest.raises(am.JobFailed, match="division by zero") as failed:
        am.map_query(pg.uri, query, pg.uri, "dst", schema=pg.schema, path="arrow")
    assert failed.value.result.workers == 0
    assert pg.scalar("SELECT count(*) FROM dst") == 0  # the chunk's transaction rolled back


def test_a_resumed_job_with_one_chunk_left_runs_it_here(pg: PG) -> None:
    """A job of several chunks whose resume leaves one runs that one in this process."""
    _src(pg, 2_000)
    pg.execute("CREATE TABLE ctl AS SELECT true AS fail")
    pg.execute("CREATE TABLE dst (id int, s text)")
    pg.execute(
        f"CREATE FUNCTION {pg.schema}.fails() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.id > 1500 AND (SELECT fail FROM {pg.t('ctl')}) THEN RAISE EXCEPTION 'no'; "
        f"END IF; RETURN NEW; END $$"
    )
    pg.execute(
        f"CREATE TRIGGER fails BEFORE INSERT ON dst FOR EACH ROW EXECUTE FUNCTION {pg.schema}.fails()"
    )
    query = pg.t("src")
    opts = dict(schema=pg.schema, strategy="key", key="id", chunk_size=500, workers=2)
    with pytest.raises(am.JobFailed) as failed:
        am.map_query(pg.uri, query, pg.uri, "dst", job_id="r1", **opts)
    assert failed.value.result.workers == 2
    assert pg.scalar("SELECT count(*) FROM dst") == 1_500
    pg.execute("UPDATE ctl SET fail = false")
    r = am.map_query(pg.uri, query, pg.uri, "dst", job_id="r1", resume=True, **opts)
    assert r.success and r.workers == 0
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 2_000


@pytest.mark.parametrize(
    "keeps",
    [{"stall_timeout": 600}, {"max_worker_memory": 4096}, {"chunk_size": 1_000}],
    ids=["stall_timeout", "max_worker_memory", "two chunks"],
)
def test_jobs_that_need_a_worker_keep_one(pg: PG, keeps: dict[str, int]) -> None:
    _src(pg, 2_000)
    r = am.map_query(pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, workers=1, **keeps)
    assert r.success and r.workers == 1
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 2_000
