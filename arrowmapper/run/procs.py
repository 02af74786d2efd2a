"""The worker processes' surroundings: their environment at spawn, Ctrl-C, killing a tree.

Shared by the executors (:mod:`.executors` spawns its own workers; :mod:`.dask` starts a Dask
``LocalCluster`` of them).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ..config import usable_cpus


def signal_name(exitcode: int | None) -> str:
    """How a process ended, in words: ``signal SIGKILL``, ``exit code 1``."""
    if exitcode is None:
        return "no exit code"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


@contextmanager
def worker_env(workers: int) -> Any:
    """The children's environment: thread caps for Polars/Rayon (usable CPUs shared among the
    workers) and, unless set already, ``MALLOC_ARENA_MAX=2``. glibc gives each thread that
    allocates (connectorx's reader threads, ADBC) an arena of its own and keeps what they free,
    so a long-lived worker grew chunk after chunk (5M rows in 250k-row chunks: ~170 -> ~215
    MiB per worker); with two arenas it stays at ~175 MiB, at no measurable cost in speed."""
    threads = str(max(1, usable_cpus() // max(1, workers)))
    values = {"POLARS_MAX_THREADS": threads, "RAYON_NUM_THREADS": threads}
    if "MALLOC_ARENA_MAX" not in os.environ:
        values["MALLOC_ARENA_MAX"] = "2"
    keys = tuple(values)
    saved = {k: os.environ.get(k) for k in keys}
    for k, v in values.items():
        os.environ[k] = v
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


@contextmanager
def unimportable_main_hidden() -> Any:
    """Spawned children re-run the parent's ``__main__`` file; from stdin there is none."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or os.path.isfile(path):
        yield
        return
    delattr(main, "__file__")
    try:
        yield
    finally:
        main.__file__ = path


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants, and reap what we can."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while a child is spawned: the child inherits the disposition through
    exec, so it ignores Ctrl-C before its own code runs (the parent's handler is restored).

    It is also blocked meanwhile, so that a Ctrl-C during the spawn is not lost: the kernel
    keeps a blocked signal pending even while it is ignored, and delivers it to the parent's
    own handler once that is back (a job that was interrupted then stops, instead of running
    on to its end and exiting 0)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # before: none lost
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a pending Ctrl-C lands now
