"""A seeded chaos run: while a job runs, random real faults hit it -- a worker SIGKILLed, the
target's COPY connection terminated, the source's connection terminated -- and the target must
still equal the source exactly. The seed is printed; ARROWMAPPER_CHAOS_SEED replays a run."""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable

import psutil
import pytest

import arrowmapper as am
from tests.conftest import PG

pytestmark = pytest.mark.fault


def test_random_faults_leave_the_target_exact(pg: PG, monkeypatch: pytest.MonkeyPatch) -> None:
    seed = int(os.environ.get("ARROWMAPPER_CHAOS_SEED", random.randrange(2**32)))
    print(f"chaos seed: {seed} (replay with ARROWMAPPER_CHAOS_SEED={seed})")
    rng = random.Random(seed)
    monkeypatch.setenv("ARROWMAPPER_TEST_SLEEP", "0.03")
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s, g * 0.5 AS f, "
        "CASE WHEN g % 13 = 0 THEN NULL ELSE g % 1000 END AS k "
        "FROM generate_series(1, 60000) g"
    )

    def kill_worker() -> bool:
        workers = [
            p
            for p in psutil.Process().children()
            if any("spawn_main" in part for part in p.cmdline())
        ]
        if not workers:
            return False
        rng.choice(workers).send_signal(signal.SIGKILL)
        return True

    def terminate(where: str) -> Callable[[], bool]:
        def run() -> bool:
            rows = pg.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = "
                f"'client backend' AND pid <> pg_backend_pid() AND {where}",
                (f"%{pg.schema}%",),
            )
            return any(ok for (ok,) in rows)

        return run

    tried: list[str] = []
    faults: dict[str, Callable[[], bool]] = {
        "sigkill worker": kill_worker,
        "terminate target COPY": terminate(
            "application_name = 'arrowmapper' AND query ILIKE 'COPY%%' AND query ILIKE %s"
        ),
        "terminate source read": terminate("application_name <> 'arrowmapper' AND query ILIKE %s"),
    }
    injected: list[str] = []

    def chaos(snap: am.ProgressSnapshot) -> None:
        if len(injected) < 6 and snap.running_chunks and (not injected or rng.random() < 0.3):
            name = rng.choice(sorted(faults))
            tried.append(name)
            if faults[name]():
                injected.append(name)

    # a few slow rows per chunk keep each source query running long enough to be hit
    query = f"SELECT * FROM {pg.t('src')} WHERE id % 2000 <> 7 OR pg_sleep(0.05) IS NOT NULL"
    r = am.map_query(
        pg.uri,
        query,
        pg.uri,
        "dst",
        schema=pg.schema,
        key="k",
        strategy="quantile",
        workers=2,
        chunk_size=4_000,
        batch_size=1_000,
        transform="tests.helpers:slow_identity",
        progress=chaos,
        verify=True,
        retry=am.RetryConfig(max_retries=10, base_delay=0.05, max_delay=0.5),
    )
    print(f"faults injected: {injected} (tried {tried})")
    assert injected, f"no fault was injected (seed {seed})"
    assert r.success, f"seed {seed}: {r.summary()}"
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 60_000, f"seed {seed}"
    report = am.verify(pg.uri, pg.uri, r.job_id, schema=pg.schema)
    assert report.ok, f"seed {seed}: {report.summary()}"
