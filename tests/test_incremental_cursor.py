"""Recurring jobs with a cursor (``name=``, ``cursor=``): each run loads the rows above the mark
its name's last successful run stored, exactly once, and the mark moves with the last chunk."""

from __future__ import annotations

from typing import Any

import pytest

import arrowmapper as am
from tests.conftest import PG


def _src(pg: PG, lo: int, hi: int) -> None:
    pg.execute(
        "CREATE TABLE IF NOT EXISTS src (id int PRIMARY KEY, v text, n numeric(30,10))"
    )
    pg.execute(
        f"INSERT INTO src SELECT g, 'v' || g, g * 1.5 FROM generate_series({lo}, {hi}) g"
    )


def _run(pg: PG, **kw: Any) -> am.JobResult:
    options: dict[str, Any] = {
        "schema": pg.schema,
        "name": "sync",
        "cursor": "id",
        "key": "id",
        "strategy": "key",
        "workers": 2,
        "chunk_size": 300,
        "retry": am.RetryConfig(max_retries=1, base_delay=0.01),
    }
    options.update(kw)
    return am.map_query(pg.uri, f"SELECT * FROM {pg.t('src')}", pg.uri, "dst", **options)


def _mark(pg: PG, name: str = "sync") -> tuple[Any, ...]:
    return pg.query(
        "SELECT mark, mark_type, job_id, run_job FROM arrowmapper_marks WHERE name = %s", (name,)
    )[0]


def test_three_runs_load_each_row_once(pg: PG) -> None:
    _src(pg, 1, 1000)
    first = _run(pg)
    assert first.rows_written == 1000 and first.job_id.startswith("sync-")
    assert _mark(pg)[:3] == ("1000", "integer", first.job_id)
    _src(pg, 1001, 1500)
    second = _run(pg)
    assert second.rows_written == 500 and second.job_id != first.job_id
    _src(pg, 1501, 1502)
    pg.execute("INSERT INTO src VALUES (5000, NULL, NULL)")
    third = _run(pg)
    assert third.rows_written == 3
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 1503
    assert _mark(pg)[:3] == ("5000", "integer", third.job_id)
    # nothing new: 0 rows, a note, the mark where it was
    fourth = _run(pg)
    assert fourth.rows_written == 0
    assert any("nothing new" in n for n in fourth.notes)
    assert _mark(pg)[0] == "5000"
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 1503


def test_failed_run_moves_nothing_and_its_resume_moves_the_mark(
    pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    _src(pg, 1, 1000)
    _run(pg)
    _src(pg, 4001, 6500)  # the batch holding id 5777 (past the sample) fails until "fixed"
    with pytest.raises(am.JobFailed) as failed:
        _run(pg, transform="tests.helpers:fail_on_id_until_fixed", batch_size=100)
    job_id = failed.value.result.job_id
    assert _mark(pg)[0] == "1000"  # a failed run moves nothing
    assert pg.scalar("SELECT COUNT(*) FROM dst") < 3500
    # a second run of the name is refused while this one is unfinished
    with pytest.raises(am.ConfigError, match="has not finished"):
        _run(pg, transform="tests.helpers:fail_on_id_until_fixed")
    _src(pg, 7001, 7010)  # arrives after the failed run planned: the next run's
    monkeypatch.setenv("ARROWMAPPER_TEST_FIXED", "1")
    done = _run(
        pg, transform="tests.helpers:fail_on_id_until_fixed", job_id=job_id, resume=True
    )
    assert done.success and _mark(pg)[:3] == ("6500", "integer", job_id)
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 3500
    last = _run(pg, transform="tests.helpers:fail_on_id_until_fixed")
    assert last.rows_written == 10
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 3510
