"""The coordinator's watchdogs: kill the process tree of a worker whose chunk stopped moving
(``stall_timeout``) or whose memory passed ``max_worker_memory``. They act only where the
executor can see its workers (:attr:`~.base.Executor.watchdog`); the kill comes back as a
:class:`~.base.Died` event carrying the :class:`~.base.Kill`, and the coordinator decides
(a memory kill splits the chunk, a stall costs one attempt)."""

from __future__ import annotations

from collections.abc import Callable

from .base import Executor, Kill
from .progress import ProgressBoard


class Watchdogs:
    """The stall and memory watchdogs of one job."""

    def __init__(
        self, stall_timeout: float | None, max_memory_mib: int | None, clock: Callable[[], float]
    ) -> None:
        self.stall_timeout = stall_timeout
        self.max_memory_mib = max_memory_mib
        self.clock = clock
        # chunk -> (progress, since)
        self._seen: dict[int, tuple[tuple[int, int, int], float]] = {}

    def forget(self, cid: int) -> None:
        """A chunk (re)starts: its stall clock starts again."""
        self._seen.pop(cid, None)

    def check(self, ex: Executor | None, board: ProgressBoard | None) -> None:
        """Kill what stalled, then what uses too much memory."""
        if ex is None or board is None or not ex.watchdog:
            return
        if self.stall_timeout:
            self._stalls(ex, board, self.stall_timeout)
        if self.max_memory_mib:
            self._memory(ex, self.max_memory_mib)

    def _stalls(self, ex: Executor, board: ProgressBoard, limit: float) -> None:
        now = self.clock()
        for cid in ex.running():
            if ex.killing(cid):
                continue
            if board.get(cid, "pid") == 0:
                # not begun yet: its worker is still starting (a pool started after the plan
                # imports its drivers first); the stall clock starts when the worker begins
                self._seen.pop(cid, None)
                continue
            # bytes too: a relayed chunk (the COPY fast path) counts its rows only at the end
            mark = (
                board.get(cid, "rows_read"),
                board.get(cid, "rows_written"),
                board.get(cid, "bytes_read"),
            )
            seen = self._seen.get(cid)
            if seen is None or seen[0] != mark:
                self._seen[cid] = (mark, now)
            elif now - seen[1] > limit:
                ex.kill(
                    cid, Kill("stall", f"chunk {cid} made no progress for {now - seen[1]:.0f}s")
                )

    def _memory(self, ex: Executor, limit: int) -> None:
        for cid in ex.running():
            if ex.killing(cid):
                continue
            rss = ex.rss(cid)
            if rss is not None and rss > limit * 2**20:
                message = (
                    f"memory: RSS {rss / 2**20:.0f} MiB over max_worker_memory {limit} MiB "
                    f"on chunk {cid}"
                )
                ex.kill(cid, Kill("memory", message))


__all__ = ["Watchdogs"]
