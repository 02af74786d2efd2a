"""Executors: where chunks run. The coordinator plans, keeps the ledger, retries and reports;
an executor only starts workers, runs a :class:`ChunkTask` on one, and says what happened.

* :class:`LocalPool` -- long-lived spawned worker processes on this machine, one duplex pipe
  each. Waiting covers every pipe *and* every process sentinel, so a worker that dies (SIGKILL,
  segfault, OOM) is seen at once and replaced.
* :class:`DaskExecutor` -- each chunk is one task on a Dask distributed cluster (an address, or
  a ``LocalCluster`` of processes). Workers open their own connections; exactly-once still
  comes from the target ledger, so Dask rerunning a task whose worker died cannot duplicate
  rows. Progress travels as Dask events (``log_event``) the coordinator applies to its board.

Both report :class:`Finished` (a ChunkResult) or :class:`Died` (the worker was lost).
"""

from __future__ import annotations

import collections
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from ..config import usable_cpus
from ..errors import ConfigError, redact
from .report import ChunkResult
from .worker import ChunkTask, worker_main

log = logging.getLogger("arrowmapper")
STARTUP_FAILURE_LIMIT = 3  # workers dying before any result, in a row: the pool cannot start


@dataclass(frozen=True)
class Finished:
    """A chunk's attempt came back (successful or not)."""

    cid: int
    result: ChunkResult


@dataclass(frozen=True)
class Died:
    """The worker running ``cid`` was lost before it answered."""

    cid: int | None
    pid: int | None
    why: str  # "signal SIGKILL", "exit code 1", "dask worker lost 3 times", ...
    killed_for: str | None = None  # set when our own watchdog killed it
    oom_like: bool = False  # SIGKILL nobody here sent: the OOM killer's signature
    can_continue: bool = True  # False: workers cannot even start (give up the job)


def signal_name(exitcode: int | None) -> str:
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


# --------------------------------------------------------------------------- the local pool


@dataclass
class _Slot:
    """One worker process and the chunk it is running (None when idle)."""

    process: Any
    conn: Connection
    chunk_id: int | None = None
    delivered: bool = False  # has it sent back at least one result?
    killed_for: str | None = None  # why the watchdog killed it


class LocalPool:
    """Spawned, long-lived worker processes on this machine."""

    name = "local"
    watchdog = True  # stall and memory watchdogs can see and kill its processes
    board_local = True  # workers attach to the shared-memory progress board

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.slots: list[_Slot] = []
        self._ctx = mp.get_context("spawn")
        self._startup_failures = 0

    @property
    def size(self) -> int:
        return len(self.slots)

    def start(self, n: int) -> None:
        for _ in range(n):
            self.slots.append(self._spawn())

    def trim(self, n: int) -> None:
        """Stop idle workers beyond ``n`` (a pool started before the job knew its size)."""
        while len(self.slots) > max(n, 0):
            idle = next((s for s in reversed(self.slots) if s.chunk_id is None), None)
            if idle is None:
                return
            self.slots.remove(idle)
            self._discard(idle)

    @staticmethod
    def _discard(slot: _Slot) -> None:
        """End a worker that never got a task (it may still be importing): no need to wait."""
        slot.process.kill()
        slot.process.join(timeout=5)
        with suppress(OSError):
            slot.conn.close()

    def discard(self) -> None:
        """End every worker at once: the job they were started for will not run."""
        for slot in self.slots:
            self._discard(slot)
        self.slots = []

    def _spawn(self) -> _Slot:
        """Start one worker process (it ignores Ctrl-C from its first instruction: the
        coordinator ends it; a SIGINT to the process group while it still imports would print
        a traceback)."""
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        with worker_env(self.workers), unimportable_main_hidden(), _sigint_ignored():
            process = self._ctx.Process(
                target=worker_main, args=(child_conn,), name="arrowmapper-worker", daemon=True
            )
            process.start()
        child_conn.close()
        return _Slot(process, parent_conn)

    def busy(self) -> int:
        return sum(1 for s in self.slots if s.chunk_id is not None)

    def idle(self) -> int:
        return sum(1 for s in self.slots if s.chunk_id is None)

    def submit(self, cid: int, task: ChunkTask) -> list[Died]:
        slot = next(s for s in self.slots if s.chunk_id is None)
        slot.chunk_id = cid
        try:
            slot.conn.send(task)
        except (BrokenPipeError, OSError):
            return [self._death(slot)]
        return []

    def wait(self, timeout: float) -> list[Finished | Died]:
        busy = [s for s in self.slots if s.chunk_id is not None]
        if not busy:
            return []
        handles: dict[Any, _Slot] = {}
        for s in busy:
            handles[s.conn] = s
            handles[s.process.sentinel] = s
        events: list[Finished | Died] = []
        seen: set[int] = set()
        for handle in wait(list(handles), timeout=timeout):
            slot = handles[handle]
            if id(slot) in seen or slot.chunk_id is None:
                continue
            seen.add(id(slot))
            try:
                if not slot.conn.poll():
                    raise EOFError
                result = slot.conn.recv()
            except (EOFError, OSError):
                events.append(self._death(slot))
                continue
            cid = slot.chunk_id
            slot.chunk_id, slot.delivered = None, True
            self._startup_failures = 0
            events.append(Finished(cid, result))
        return events

    def _death(self, slot: _Slot) -> Died:
        """A worker died: replace it (unless workers die before doing anything, repeatedly)."""
        slot.process.join(timeout=5)
        cid, exitcode, pid = slot.chunk_id, slot.process.exitcode, slot.process.pid
        with suppress(OSError):
            slot.conn.close()
        if not slot.delivered and exitcode is not None and exitcode > 0:
            self._startup_failures += 1
        can_continue = self._startup_failures < STARTUP_FAILURE_LIMIT
        if can_continue:
            fresh = self._spawn()
            slot.process, slot.conn = fresh.process, fresh.conn
        slot.chunk_id, slot.delivered = None, False
        killed_for, slot.killed_for = slot.killed_for, None
        why = signal_name(exitcode)
        if not can_continue:
            why += (
                f"; worker processes exit before doing any work, {self._startup_failures} "
                "times in a row; their stderr says why (a script without an "
                "`if __name__ == '__main__':` guard is a common cause)"
            )
        return Died(
            cid,
            pid,
            why,
            killed_for,
            oom_like=exitcode == -signal.SIGKILL and not killed_for,
            can_continue=can_continue,
        )

    def running(self) -> dict[int, int]:
        """chunk -> pid of the worker running it."""
        return {s.chunk_id: s.process.pid for s in self.slots if s.chunk_id is not None}

    def kill(self, cid: int, reason: str) -> None:
        for slot in self.slots:
            if slot.chunk_id == cid and not slot.killed_for:
                slot.killed_for = reason
                log.warning("%s; killing worker pid %s", reason, slot.process.pid)
                kill_tree(slot.process.pid)

    def killing(self, cid: int) -> bool:
        return any(s.chunk_id == cid and s.killed_for for s in self.slots)

    def rss(self, cid: int) -> int | None:
        """Resident memory of the process tree running ``cid`` (bytes)."""
        import psutil

        for slot in self.slots:
            if slot.chunk_id == cid:
                try:
                    root = psutil.Process(slot.process.pid)
                    procs = [root, *root.children(recursive=True)]
                    return int(sum(p.memory_info().rss for p in procs))
                except psutil.Error:
                    return None
        return None

    def stop(self) -> None:
        import time

        for slot in self.slots:
            with suppress(BrokenPipeError, OSError):
                slot.conn.send(None)
        deadline = time.monotonic() + 10
        for slot in self.slots:
            slot.process.join(timeout=max(0.1, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=5)
            with suppress(OSError):
                slot.conn.close()
        self.slots = []


# --------------------------------------------------------------------------- Dask


def dask_client(cluster: str | None, workers: int, timeout: float = 10.0) -> tuple[Any, Any]:
    """A distributed Client for ``cluster`` (a scheduler address), or for a new LocalCluster of
    ``workers`` single-threaded processes. Returns (client, cluster it created or None)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            "executor='dask' needs Dask distributed: pip install 'arrowmapper[dask]'"
        ) from None
    if cluster:
        try:
            client = Client(cluster, timeout=f"{timeout}s", set_as_default=False)  # type: ignore[no-untyped-call]
            return client, None
        except Exception as exc:  # OSError, TimeoutError, ValueError for a malformed address
            raise ConfigError(
                f"cannot reach the Dask scheduler at {redact(cluster)}: "
                f"{type(exc).__name__}: {redact(str(exc)) or 'no answer'}; start one "
                "(`dask scheduler`, then `dask worker <address>` on each machine) or fix "
                "the address"
            ) from None
    with worker_env(workers), unimportable_main_hidden():
        local = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    return Client(local, set_as_default=False), local  # type: ignore[no-untyped-call]


def check_scheduler(cluster: str) -> None:
    """Fail with a clear error, before any row moves, when the scheduler does not answer."""
    client, _ = dask_client(cluster, 0, timeout=5.0)
    client.close()


def _run_on_dask(task: ChunkTask) -> ChunkResult:
    from .worker import run_chunk

    return run_chunk(task)


class DaskExecutor:
    """Each chunk is one task on a Dask distributed cluster."""

    name = "dask"
    watchdog = False  # Dask's nannies own the processes (and their memory limits)
    board_local = False

    def __init__(self, cluster: str | None, workers: int, job_id: str) -> None:
        self.address = cluster
        self.client, self._cluster = dask_client(cluster, workers)
        self.futures: dict[int, Any] = {}
        self.topic = f"arrowmapper-{job_id}-{os.getpid()}-{id(self)}"
        self.events: collections.deque[Any] = collections.deque()
        self.client.subscribe_topic(self.topic, self.events.append)
        self.slots: int = max(1, int(sum(self.client.nthreads().values())))

    @property
    def size(self) -> int:
        return self.slots

    def start(self, n: int) -> None:
        return None

    def busy(self) -> int:
        return len(self.futures)

    def idle(self) -> int:
        return max(0, self.slots - len(self.futures))

    def submit(self, cid: int, task: ChunkTask) -> list[Died]:
        import dataclasses

        task = dataclasses.replace(task, board_name=None, progress_topic=self.topic)
        key = f"arrowmapper-{task.job_id}-{cid}-{task.attempt}-{os.urandom(3).hex()}"
        self.futures[cid] = self.client.submit(_run_on_dask, task, key=key, pure=False)
        return []

    def drain_progress(self) -> list[tuple[str, int, str, int]]:
        out = []
        while self.events:
            event = self.events.popleft()
            msg = event[1] if isinstance(event, tuple) and len(event) == 2 else event
            out.append(tuple(msg))
        return out

    def wait(self, timeout: float) -> list[Finished | Died]:
        import time

        if not self.futures:
            return []
        deadline = time.monotonic() + timeout
        done = [f for f in self.futures.values() if f.done()]
        while not done and time.monotonic() < deadline:
            time.sleep(0.01)
            done = [f for f in self.futures.values() if f.done()]
        events: list[Finished | Died] = []
        for cid, fut in list(self.futures.items()):
            if fut not in done:
                continue
            del self.futures[cid]
            if fut.status == "finished":
                events.append(Finished(cid, fut.result()))
                continue
            try:
                exc = fut.exception(timeout=5)
            except Exception as err:  # cancelled, or the scheduler went away
                exc = err
            events.append(Died(cid, None, f"dask: {type(exc).__name__}: {redact(str(exc))[:300]}"))
        return events

    def running(self) -> dict[int, int]:
        return dict.fromkeys(self.futures, 0)

    def kill(self, cid: int, reason: str) -> None:
        return None

    def killing(self, cid: int) -> bool:
        return False

    def rss(self, cid: int) -> int | None:
        return None

    def stop(self) -> None:
        from .worker import release_worker_state

        for fut in self.futures.values():
            with suppress(Exception):
                fut.cancel()
        self.futures.clear()
        with suppress(Exception):
            self.client.unsubscribe_topic(self.topic)
        with suppress(Exception):  # close the target connections workers cached for this job
            self.client.run(release_worker_state)
        with suppress(Exception):
            self.client.close()
        if self._cluster is not None:
            with suppress(Exception):
                self._cluster.close()


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while a child is spawned: the child inherits the disposition through
    exec, so it ignores Ctrl-C before its own code runs (the parent's handler is restored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
