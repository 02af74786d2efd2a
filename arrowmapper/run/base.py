"""The seam between the coordinator and "where chunks run": the :class:`Executor` protocol and
the records that cross it.

The coordinator decides (what runs next, retries, splits, abandoning the job); an executor only
starts workers, runs a :class:`~.worker.ChunkTask` on one and says what happened, as an event:

* :class:`Finished` -- an attempt came back with its :class:`~.report.ChunkResult`;
* :class:`Died` -- the worker running a chunk was lost before it answered.

:class:`~.executors.LocalPool` and :class:`~.executors.DaskExecutor` implement the protocol, and
so does the fake executor of ``tests/test_coordinator_unit.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from .report import ChunkResult
    from .worker import ChunkTask

KillReason = Literal["memory", "stall"]


@dataclass(frozen=True)
class Kill:
    """Why our own watchdog killed a worker: ``reason`` decides, ``message`` is reported."""

    reason: KillReason
    message: str


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
    why: str  # "signal SIGKILL", "exit code 1", "dask: KilledWorker: ...", ...
    kill: Kill | None = None  # set when our own watchdog killed it
    oom_like: bool = False  # SIGKILL nobody here sent: the OOM killer's signature
    can_continue: bool = True  # False: workers cannot even start (give up the job)

    @property
    def killed_for(self) -> str | None:
        """The watchdog's message, when it killed the worker."""
        return self.kill.message if self.kill else None

    @property
    def out_of_memory(self) -> bool:
        """Memory was the likely cause: our memory watchdog, or a SIGKILL nobody here sent."""
        return self.oom_like or (self.kill is not None and self.kill.reason == "memory")


Event = Finished | Died


@dataclass(frozen=True)
class ProgressEvent:
    """One update of a chunk's progress row, sent by a worker that cannot reach the board
    (a Dask worker on another machine): ``add`` to or ``set`` the field ``name``."""

    op: Literal["add", "set"]
    cid: int
    name: str
    value: int


class Executor(Protocol):
    """What the coordinator needs from the place chunks run."""

    name: str  # "local", "dask": shown in the log
    watchdog: bool  # can the stall and memory watchdogs see (rss) and kill its workers?

    @property
    def size(self) -> int:
        """Workers started (reported as the job's workers)."""
        ...

    @property
    def concurrency(self) -> int:
        """At most this many chunks run at once (see :meth:`limit`)."""
        ...

    def fit(self, n: int) -> None:
        """Have ``n`` workers ready (start more; stop idle ones beyond ``n``)."""
        ...

    def limit(self, n: int) -> None:
        """Run at most ``n`` chunks at once from now on (a server out of connections)."""
        ...

    def busy(self) -> int:
        """Chunks running now."""
        ...

    def idle(self) -> int:
        """Chunks that may be submitted now (free workers, within :attr:`concurrency`)."""
        ...

    def submit(self, cid: int, task: ChunkTask) -> list[Died]:
        """Start ``task`` on an idle worker; a worker found dead on the way is reported."""
        ...

    def wait(self, timeout: float) -> list[Event]:
        """Block until at least one running chunk finishes or its worker dies, or ``timeout``."""
        ...

    def progress(self) -> list[ProgressEvent]:
        """Progress updates that did not reach the shared board directly (drained)."""
        ...

    def running(self) -> dict[int, int]:
        """chunk -> pid of the worker running it (0 when unknown)."""
        ...

    def kill(self, cid: int, kill: Kill) -> None:
        """Kill the process tree running ``cid``; its :class:`Died` will carry ``kill``."""
        ...

    def killing(self, cid: int) -> bool:
        """Whether ``cid``'s worker was killed and its death is not reported yet."""
        ...

    def rss(self, cid: int) -> int | None:
        """Resident memory (bytes) of the process tree running ``cid``, when known."""
        ...

    def discard(self) -> None:
        """End every worker now, without waiting for their chunks (Ctrl-C)."""
        ...

    def stop(self) -> None:
        """End every worker gracefully and release what was started."""
        ...


__all__ = ["Died", "Event", "Executor", "Finished", "Kill", "KillReason", "ProgressEvent"]
