"""The Dask executor: each chunk is one task on a Dask distributed cluster (an address, or a
``LocalCluster`` of processes).

Workers open their own connections; exactly-once still comes from the target ledger, so Dask
rerunning a task whose worker died cannot duplicate rows. Progress travels as Dask events
(``log_event``, see :class:`~.worker.EventBoard`); :meth:`DaskExecutor.progress` hands them to
the coordinator as :class:`~.base.ProgressEvent` records.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
from contextlib import suppress
from typing import Any

from ..errors import ConfigError, redact
from .base import Died, Event, Finished, Kill, ProgressEvent
from .procs import unimportable_main_hidden, worker_env
from .report import ChunkResult
from .worker import ChunkTask


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

    def __init__(self, cluster: str | None, workers: int, job_id: str) -> None:
        self.address = cluster
        self.client, self._cluster = dask_client(cluster, workers)
        self.futures: dict[int, Any] = {}
        self.topic = f"arrowmapper-{job_id}-{os.getpid()}-{id(self)}"
        self.events: collections.deque[Any] = collections.deque()
        self.client.subscribe_topic(self.topic, self.events.append)
        self.slots: int = max(1, int(sum(self.client.nthreads().values())))
        self._limit = self.slots

    @property
    def size(self) -> int:
        return self.slots

    @property
    def concurrency(self) -> int:
        return min(self.slots, self._limit)

    def fit(self, n: int) -> None:
        return None  # the cluster's workers are its own

    def limit(self, n: int) -> None:
        self._limit = max(1, n)

    def busy(self) -> int:
        return len(self.futures)

    def idle(self) -> int:
        return max(0, self.concurrency - len(self.futures))

    def submit(self, cid: int, task: ChunkTask) -> list[Died]:
        task = dataclasses.replace(task, board_name=None, progress_topic=self.topic)
        key = f"arrowmapper-{task.job_id}-{cid}-{task.attempt}-{os.urandom(3).hex()}"
        self.futures[cid] = self.client.submit(_run_on_dask, task, key=key, pure=False)
        return []

    def progress(self) -> list[ProgressEvent]:
        out = []
        while self.events:
            event = self.events.popleft()
            msg = event[1] if isinstance(event, tuple) and len(event) == 2 else event
            op, cid, name, value = msg
            out.append(ProgressEvent("add" if op == "add" else "set", int(cid), name, int(value)))
        return out

    def wait(self, timeout: float) -> list[Event]:
        """Block on the futures themselves (no polling) until one is done or ``timeout``."""
        from distributed import wait

        if not self.futures:
            return []
        try:
            with self.client.as_current():  # our client is not the process's default one
                wait(list(self.futures.values()), timeout, "FIRST_COMPLETED")  # type: ignore[no-untyped-call]
        except Exception:  # TimeoutError: none done yet; a cancelled one is reported below
            pass
        events: list[Event] = []
        for cid, fut in list(self.futures.items()):
            if not fut.done():
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

    def kill(self, cid: int, kill: Kill) -> None:
        return None

    def killing(self, cid: int) -> bool:
        return False

    def rss(self, cid: int) -> int | None:
        return None

    def discard(self) -> None:
        return None  # nothing runs here to end at once: stop() cancels the futures

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


__all__ = ["DaskExecutor", "check_scheduler", "dask_client"]
