"""What planning costs before the first row moves: ``plan_query`` on a large PostgreSQL table
by key, ctid and quantile, timed, with the planning queries counted.

    python -m bench.bench_plan_cost postgresql://postgres@127.0.0.1:5432/test [ROWS]

It creates ``am_bench_planner.big`` (ROWS rows, default 10M: an id primary key, a ``bucket`` 80%
of whose rows hold 1, a text label) unless it already holds ROWS rows, and drops it with
``--drop``. Report the numbers with the machine's load (``uptime``): a shared machine's timings
mean little at a load over the core count.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

#: the schema the benchmark works in (dropped at the end); ARROWMAPPER_BENCH_SCHEMA
#: changes it, so that two runs on one server (the tests', a real one) never share it
SCHEMA = os.environ.get("ARROWMAPPER_BENCH_SCHEMA") or "am_bench_planner"


def _ensure(uri: str, rows: int) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        found = conn.execute(
            "SELECT c.reltuples::bigint FROM pg_class c "
            f"WHERE c.oid = to_regclass('{SCHEMA}.big')"
        ).fetchone()
        if found is not None and abs(int(found[0]) - rows) <= rows // 100:
            return
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(f"CREATE TABLE {SCHEMA}.big (id bigint PRIMARY KEY, bucket int, label text)")
        conn.execute(
            f"INSERT INTO {SCHEMA}.big SELECT i, CASE WHEN i % 5 <> 0 THEN 1 ELSE 1 + i / 5 END, "
            f"'l' || (i % 1000) FROM generate_series(1, {rows}) i"
        )
        conn.execute(f"VACUUM ANALYZE {SCHEMA}.big")


def _counting() -> dict[str, float]:
    """Count the planner's queries (each one round trip through the reader) and time
    ``build_plan`` alone (``plan_query`` also logs in, describes the columns' types...)."""
    from arrowmapper.run import preflight
    from arrowmapper.sources import probe

    seen = {"queries": 0.0, "build": 0.0}
    inner = probe.rows_of
    build = preflight.build_plan

    def counted(endpoint: Any, sql: str) -> list[dict[str, Any]]:
        seen["queries"] += 1
        return inner(endpoint, sql)

    def timed(*args: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return build(*args, **kw)
        finally:
            seen["build"] += time.perf_counter() - start

    probe.rows_of = counted
    preflight.build_plan = timed  # type: ignore[assignment]
    return seen


def main() -> None:
    """Time ``plan_query`` for each strategy (best of three) and print a line each."""
    import arrowmapper as am

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    uri = args[0] if args else "postgresql://postgres@127.0.0.1:5432/test"
    rows = int(args[1]) if len(args) > 1 else 10_000_000
    if "--drop" in sys.argv:
        import psycopg

        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        return
    _ensure(uri, rows)
    seen = _counting()
    cases = [
        ("key", "id"),
        ("ctid", None),
        ("quantile", "id"),
        ("quantile", "bucket"),
        ("key", "bucket"),
    ]
    print(f"load: {os.getloadavg()[0]:.2f}; rows: {rows}")
    for strategy, key in cases:
        best, best_build = float("inf"), float("inf")
        for _ in range(3):
            seen["queries"], seen["build"] = 0, 0.0
            start = time.perf_counter()
            plan = am.plan_query(uri, f"{SCHEMA}.big", strategy=strategy, key=key)
            best = min(best, time.perf_counter() - start)
            best_build = min(best_build, seen["build"])
        print(
            f"{strategy:>8} key={key or '-':<6} plan_query {best:6.3f} s  build_plan "
            f"{best_build:6.3f} s  {int(seen['queries']):>2} queries  {len(plan.chunks):>4} "
            f"chunks  load {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
