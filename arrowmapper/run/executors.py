"""Executors: where chunks run (the :class:`~.base.Executor` protocol). The coordinator plans,
keeps the ledger, retries and reports; an executor only starts workers, runs a
:class:`ChunkTask` on one, and says what happened.

* :class:`LocalPool` (here) -- long-lived spawned worker processes on this machine, one duplex
  pipe each. Waiting covers every pipe *and* every process sentinel, so a worker that dies
  (SIGKILL, segfault, OOM) is seen at once and replaced.
* :class:`~.dask.DaskExecutor` -- each chunk is one task on a Dask distributed cluster.

Both report :class:`Finished` (a ChunkResult) or :class:`Died` (the worker was lost).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import time
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from .base import Died, Event, Executor, Finished, Kill, ProgressEvent
from .dask import DaskExecutor, check_scheduler, dask_client
from .procs import kill_tree, sigint_ignored, signal_name, unimportable_main_hidden, worker_env
from .worker import ChunkTask, worker_main

log = logging.getLogger("arrowmapper")
STARTUP_FAILURE_LIMIT = 3  # workers dying before any result, in a row: the pool cannot start


@dataclass
class _Slot:
    """One worker process and the chunk it is running (None when idle)."""

    process: Any
    conn: Connection
    chunk_id: int | None = None
    delivered: bool = False  # has it sent back at least one result?
    kill: Kill | None = None  # why the watchdog killed it


class LocalPool:
    """Spawned, long-lived worker processes on this machine."""

    name = "local"
    watchdog = True  # stall and memory watchdogs can see and kill its processes

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.slots: list[_Slot] = []
        self._ctx = mp.get_context("spawn")
        self._startup_failures = 0
        self._limit: int | None = None  # at most this many chunks at once (None: one per slot)

    @property
    def size(self) -> int:
        return len(self.slots)

    @property
    def concurrency(self) -> int:
        return len(self.slots) if self._limit is None else min(len(self.slots), self._limit)

    def start(self, n: int) -> None:
        for _ in range(n):
            self.slots.append(self._spawn())

    def fit(self, n: int) -> None:
        """``n`` workers: stop idle ones beyond it (a pool started before the job knew its
        size), start the missing ones."""
        self.trim(n)
        self.start(n - self.size)

    def limit(self, n: int) -> None:
        """Run at most ``n`` chunks at once from now on: idle workers beyond ``n`` stop now,
        busy ones when their chunk ends. A worker keeps its target connection between chunks,
        so a pool lowered after the server ran out of connections (53300) must also give those
        back, or the chunks still to run find no free slot."""
        self._limit = max(1, n)
        for slot in [s for s in reversed(self.slots) if s.chunk_id is None][: self._excess()]:
            self._retire(slot)

    def _excess(self) -> int:
        return 0 if self._limit is None else max(0, len(self.slots) - self._limit)

    def _retire(self, slot: _Slot) -> None:
        """Stop an idle worker the way :meth:`stop` does (it closes its connections, so the
        server frees their slots at once), killing it if it does not end in time."""
        self.slots.remove(slot)
        with suppress(BrokenPipeError, OSError):
            slot.conn.send(None)
        slot.process.join(timeout=5)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join(timeout=5)
        with suppress(OSError):
            slot.conn.close()

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
        with worker_env(self.workers), unimportable_main_hidden(), sigint_ignored():
            process = self._ctx.Process(
                target=worker_main, args=(child_conn,), name="arrowmapper-worker", daemon=True
            )
            process.start()
        child_conn.close()
        return _Slot(process, parent_conn)

    def busy(self) -> int:
        return sum(1 for s in self.slots if s.chunk_id is not None)

    def idle(self) -> int:
        free = sum(1 for s in self.slots if s.chunk_id is None)
        return max(0, min(free, self.concurrency - self.busy()))

    def progress(self) -> list[ProgressEvent]:
        return []  # workers write to the shared-memory board themselves

    def submit(self, cid: int, task: ChunkTask) -> list[Died]:
        slot = next(s for s in self.slots if s.chunk_id is None)
        slot.chunk_id = cid
        try:
            slot.conn.send(task)
        except (BrokenPipeError, OSError):
            return [self._death(slot)]
        return []

    def wait(self, timeout: float) -> list[Event]:
        busy = [s for s in self.slots if s.chunk_id is not None]
        if not busy:
            return []
        handles: dict[Any, _Slot] = {}
        for s in busy:
            handles[s.conn] = s
            handles[s.process.sentinel] = s
        events: list[Event] = []
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
            if self._excess():  # over a lowered limit: this worker is idle now, stop it
                self._retire(slot)
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
        if can_continue and self._excess():  # over a lowered limit: not replaced
            self.slots.remove(slot)
        elif can_continue:
            fresh = self._spawn()
            slot.process, slot.conn = fresh.process, fresh.conn
        slot.chunk_id, slot.delivered = None, False
        kill, slot.kill = slot.kill, None
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
            kill,
            oom_like=exitcode == -signal.SIGKILL and kill is None,
            can_continue=can_continue,
        )

    def running(self) -> dict[int, int]:
        """chunk -> pid of the worker running it."""
        return {s.chunk_id: s.process.pid for s in self.slots if s.chunk_id is not None}

    def kill(self, cid: int, kill: Kill) -> None:
        for slot in self.slots:
            if slot.chunk_id == cid and slot.kill is None:
                slot.kill = kill
                log.warning("%s; killing worker pid %s", kill.message, slot.process.pid)
                kill_tree(slot.process.pid)

    def killing(self, cid: int) -> bool:
        return any(s.chunk_id == cid and s.kill is not None for s in self.slots)

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


# both executors implement the protocol: mypy checks these two lines
_LOCAL: type[Executor] = LocalPool
_DASK: type[Executor] = DaskExecutor

__all__ = [
    "DaskExecutor",
    "Died",
    "Executor",
    "Finished",
    "LocalPool",
    "check_scheduler",
    "dask_client",
    "kill_tree",
    "signal_name",
]
