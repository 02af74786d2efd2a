"""The target server stops and starts again mid-job: the job waits with backoff and finishes
with an exact target (a throwaway embedded server from pgserver plays the target)."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import arrowmapper as am
from tests.conftest import PG

pytestmark = pytest.mark.fault


@pytest.fixture
def throwaway_pg() -> Iterator[Any]:
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tempfile.mkdtemp(prefix="am-restart-"), cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


def _restart_slowly(server: Any, down_for: float) -> None:
    from pgserver._commands import pg_ctl

    socket_dir = parse_qs(urlsplit(server.get_uri()).query)["host"][0]
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
    time.sleep(down_for)
    # the same options pgserver starts it with: Unix socket only, no TCP port
    pg_ctl(
        ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(server.log), "start"],
        pgdata=server.pgdata,
        user=server.system_user,
        timeout=30,
    )


def test_target_restart_mid_job(pg: PG, throwaway_pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    monkeypatch.setenv("ARROWMAPPER_TEST_SLEEP", "0.05")
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, 40000) g"
    )
    target = throwaway_pg.get_uri()
    restarts: list[threading.Thread] = []

    def restart_once(snap: am.ProgressSnapshot) -> None:
        if not restarts and snap.completed_chunks >= 2:
            t = threading.Thread(target=_restart_slowly, args=(throwaway_pg, 2.0))
            t.start()
            restarts.append(t)

    r = am.map_query(
        pg.uri,
        pg.t("src"),
        target,
        "dst",
        key="id",
        strategy="key",
        workers=2,
        chunk_size=4_000,
        batch_size=1_000,
        transform="tests.helpers:slow_identity",
        progress=restart_once,
        retry=am.RetryConfig(max_retries=8, base_delay=0.5, max_delay=4),
    )
    assert restarts, "the target was never restarted"
    restarts[0].join()
    assert r.success and r.rows_written == 40_000
    assert r.attempt_errors, "no attempt failed: the restart did not hit the job"
    with psycopg.connect(target) as conn:
        got = conn.execute("SELECT id, s FROM dst ORDER BY id").fetchall()
    assert got == pg.query("SELECT id, s FROM src ORDER BY id")
