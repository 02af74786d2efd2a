"""The embedded demo: a SQLite source of about a million rows, a CPU-heavy Polars transform,
several worker processes, a SQLite target, and a verification of the result. No server needed.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import ArrowMapperError, ConfigError

DEMO_ROWS = 1_000_000


def enrich(df: Any) -> Any:
    """The demo transform: derived columns computed by Polars, batch by batch."""
    import polars as pl

    return df.with_columns(
        amount_eur=(pl.col("amount_cents") / 100.0).round(2),
        category=pl.col("category").str.to_uppercase(),
        is_big=pl.col("amount_cents") > 50_000,
        score=(pl.col("id") * 2654435761 % 1_000_003).cast(pl.Int64),
    )


def build_source(path: Path, rows: int) -> None:
    """Create ``events(id, user_id, category, amount_cents, created)`` with ``rows`` rows."""
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.executescript(
        """
        PRAGMA journal_mode = OFF;
        PRAGMA synchronous = OFF;
        CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,
                             category TEXT NOT NULL, amount_cents INTEGER NOT NULL,
                             created TEXT NOT NULL);
        """
    )
    con.execute(
        f"""
        WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {int(rows)})
        INSERT INTO events
        SELECT i, (i * 7919) % 50000,
               CASE i % 5 WHEN 0 THEN 'books' WHEN 1 THEN 'games' WHEN 2 THEN 'food'
                          WHEN 3 THEN 'travel' ELSE 'music' END,
               (i * 104729) % 100000,
               datetime('2026-01-01', '+' || (i % 31536000) || ' seconds')
        FROM g
        """
    )
    con.commit()
    con.close()


def verify(source: Path, target: Path, table: str) -> list[str]:
    """Compare the target with the source recomputed in SQL; return the problems found."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    problems = []
    n_src, sum_src = src.execute("SELECT COUNT(*), SUM(amount_cents) FROM events").fetchone()
    n_dst, sum_dst, distinct = dst.execute(
        f'SELECT COUNT(*), SUM(amount_cents), COUNT(DISTINCT id) FROM "{table}"'
    ).fetchone()
    if (n_src, sum_src) != (n_dst, sum_dst):
        problems.append(f"rows/sum differ: source {n_src}/{sum_src}, target {n_dst}/{sum_dst}")
    if distinct != n_dst:
        problems.append(f"{n_dst - distinct} duplicated ids in the target")
    bad = dst.execute(
        f'SELECT COUNT(*) FROM "{table}" WHERE category <> upper(category) '
        "OR abs(amount_eur - round(amount_cents / 100.0, 2)) > 1e-9 "
        "OR is_big <> (amount_cents > 50000) OR score <> (id * 2654435761) % 1000003"
    ).fetchone()[0]
    if bad:
        problems.append(f"{bad} rows do not match the transform")
    src.close()
    dst.close()
    return problems


def run_demo(
    rows: int = DEMO_ROWS, workers: int = 4, directory: str | None = None, progress: Any = True
) -> int:
    """Build, map, verify. Returns a process exit code (0 when the target is exact). Without
    ``directory`` the databases live in a temporary folder, removed at the end."""
    if directory is None:  # a temporary folder goes at the end, whatever happens
        base = Path(tempfile.mkdtemp(prefix="arrowmapper-demo-"))
        try:
            return _demo_in(base, rows, workers, progress, kept=False)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    return _demo_in(base, rows, workers, progress, kept=True)


def _demo_in(base: Path, rows: int, workers: int, progress: Any, kept: bool) -> int:
    from .api import map_query

    source, target = base / "source.db", base / "target.db"
    target.unlink(missing_ok=True)
    print(f"building {rows:,} rows in {source} ...", flush=True)
    t0 = time.monotonic()
    build_source(source, rows)
    print(f"  built in {time.monotonic() - t0:.1f} s", flush=True)
    live = progress if hasattr(progress, "__enter__") else contextlib.nullcontext()
    try:
        with live:  # a live display closes before the summary is printed
            result = map_query(
                f"sqlite://{source}",
                "events",
                f"sqlite://{target}",
                "events_enriched",
                transform="arrowmapper.demo:enrich",
                workers=workers,
                chunk_size=max(1, rows // (workers * 4)),
                progress=progress,
            )
    except ArrowMapperError as exc:
        print(f"demo failed: {exc}")
        return 1
    print(result.summary())
    problems = verify(source, target, "events_enriched")
    if problems:
        print("verification FAILED:\n  " + "\n  ".join(problems))
        return 1
    where = str(target) if kept else "temporary files removed"
    print(f"verified: {rows:,} rows, same ids and sums, every derived column right ({where})")
    return 0


SAMPLE_COLUMNS = ["order_id", "customer_id", "status", "net", "created_at"]


def sample_data(uri: str, schema: str = "shop", rows: int = 20_000) -> str:
    """Create ``<schema>.orders`` (``rows`` rows: order_id primary key, customer_id, status,
    net numeric(12,2), created_at timestamptz) on a PostgreSQL server, the table the README's
    and the guides' examples read. An ``orders`` table already there with these columns is
    kept; one with other columns is refused (nothing is dropped). Returns what was done."""
    from .adbc import connect_postgresql
    from .config import parse_uri
    from .sql import quote_ident

    endpoint = parse_uri(uri, "target")
    if not endpoint.rules.adbc_login:
        raise ConfigError(
            f"--sample-data needs a PostgreSQL URI (postgresql://...), got {endpoint.redacted}"
        )
    if rows < 1:
        raise ConfigError(f"--rows must be at least 1, got {rows}")
    q = quote_ident(schema, "postgresql")
    table = f"{q}.orders"
    with connect_postgresql(endpoint.uri, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"{_lit(schema)} AND table_name = 'orders' ORDER BY ordinal_position"
        )
        have = [str(r[0]) for r in cur.fetchall()]
        if have == SAMPLE_COLUMNS:
            return f"{schema}.orders is there already ({endpoint.redacted}); kept"
        if have:
            raise ConfigError(
                f"{schema}.orders exists with other columns ({', '.join(have)}); the sample "
                "is not written over a table of yours: pass --schema with another schema"
            )
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {q}")
        cur.execute(
            f"CREATE TABLE {table} AS SELECT g::bigint AS order_id, "
            "(g % 97 + (g % 7) * 1000)::int AS customer_id, "
            "(ARRAY['paid', 'open', 'refunded'])[g % 3 + 1] AS status, "
            "(g * 1.37)::numeric(12, 2) AS net, "
            "TIMESTAMPTZ '2026-01-01 00:00+00' + g * INTERVAL '7 minutes' AS created_at "
            f"FROM generate_series(1, {int(rows)}) g"
        )
        cur.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (order_id)")
    return f"created {schema}.orders with {rows:,} rows ({endpoint.redacted})"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

