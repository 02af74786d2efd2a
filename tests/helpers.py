"""Top-level transforms for tests (worker processes import them by reference)."""

from __future__ import annotations

import os
import time
from typing import Any


def double_amount(df: Any) -> Any:
    import polars as pl

    return df.with_columns(amount2=pl.col("amount") * 2)


def slow_identity(df: Any) -> Any:
    """Sleep per batch so a test can act while chunks are in flight."""
    time.sleep(float(os.environ.get("ARROWMAPPER_TEST_SLEEP", "0.15")))
    return df


def fail_on_id(df: Any) -> Any:
    """A terminal, data-dependent failure: raises for the batch holding id 5777."""
    import polars as pl

    if df.filter(pl.col("id") == 5777).height:
        raise ValueError("bad row id 5777")
    return df


def returns_list(df: Any) -> Any:
    return [1, 2, 3]


def thread_caps(df: Any) -> Any:
    """Record the worker's thread caps in the rows it writes."""
    import polars as pl

    return df.with_columns(
        polars_threads=pl.lit(os.environ.get("POLARS_MAX_THREADS", "unset")),
        rayon_threads=pl.lit(os.environ.get("RAYON_NUM_THREADS", "unset")),
        malloc_arenas=pl.lit(os.environ.get("MALLOC_ARENA_MAX", "unset")),
        worker_pid=pl.lit(os.getpid()),
    )


def hang_once(df: Any) -> Any:
    """Hang (as a stuck driver would) on the batch holding id 3001, the first time only."""
    import polars as pl

    marker = os.environ["ARROWMAPPER_TEST_MARKER"]
    if df.filter(pl.col("id") == 3001).height and not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(3600)
    return df


def hog_once(df: Any) -> Any:
    """Grab ~500 MiB on the batch holding id 3001, the first time only, and hold it."""
    import polars as pl

    marker = os.environ["ARROWMAPPER_TEST_MARKER"]
    if df.filter(pl.col("id") == 3001).height and not os.path.exists(marker):
        open(marker, "w").close()
        hog = b"x" * (500 * 2**20)
        time.sleep(30)
        del hog
    return df


def fail_on_id_until_fixed(df: Any) -> Any:
    """fail_on_id until ARROWMAPPER_TEST_FIXED is set: a transform whose bug is fixed in place
    (same reference, so a resume is the same job)."""
    if os.environ.get("ARROWMAPPER_TEST_FIXED"):
        return df
    return fail_on_id(df)


def exits(df: Any) -> Any:
    """A transform that calls sys.exit (as a script's helper might)."""
    raise SystemExit(0)
