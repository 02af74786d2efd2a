"""The shared-memory progress board and the snapshots read from it.

One row of int64 fields per chunk (see :data:`FIELDS`). The parent creates the segment and alone
unlinks it; workers attach by name and write their chunk's row as batches land. The parent reads
the whole board a few times a second into a :class:`ProgressSnapshot`.

Chunk states and their legal transitions (the same integers live in the board)::

    PENDING ──> RUNNING ──> DONE
                  │  └────> FAILED
                  └──> RETRY_WAIT ──> RUNNING
    PENDING ──> SKIPPED                 (already committed by an earlier run: resume)
    RUNNING ──> SPLIT                   (out of memory: replaced by two half-size chunks)
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from multiprocessing import shared_memory
from typing import Any


class ChunkState(IntEnum):
    """A chunk's state; the same integers are stored in the progress board."""

    PENDING = 0
    RUNNING = 1
    RETRY_WAIT = 2
    DONE = 3
    FAILED = 4
    SKIPPED = 5
    SPLIT = 6  # replaced by two smaller chunks (its worker ran out of memory)


TRANSITIONS: dict[ChunkState, frozenset[ChunkState]] = {
    ChunkState.PENDING: frozenset({ChunkState.RUNNING, ChunkState.SKIPPED}),
    ChunkState.RUNNING: frozenset(
        {ChunkState.DONE, ChunkState.FAILED, ChunkState.RETRY_WAIT, ChunkState.SPLIT}
    ),
    ChunkState.RETRY_WAIT: frozenset({ChunkState.RUNNING}),
    ChunkState.DONE: frozenset(),
    ChunkState.FAILED: frozenset(),
    ChunkState.SKIPPED: frozenset(),
    ChunkState.SPLIT: frozenset(),
}
FINISHED = frozenset({ChunkState.DONE, ChunkState.FAILED, ChunkState.SKIPPED, ChunkState.SPLIT})

FIELDS = (
    "state",
    "attempts",
    "rows_read",
    "rows_written",
    "pid",
    "started_ns",
    "ended_ns",
    "estimate",
    "bytes_read",
    "arrow_bytes",  # Arrow buffer bytes of the batches read (any source)
)
_F = {name: i for i, name in enumerate(FIELDS)}
_W = len(FIELDS)


@dataclass(frozen=True)
class RunningChunk:
    """A chunk in flight: which worker runs it and how far it got."""

    chunk_id: int
    pid: int
    attempt: int
    rows_read: int
    rows_written: int
    seconds: float
    #: source bytes of the parts this chunk finished reading (files; 0 for a database)
    bytes_read: int = 0


@dataclass(frozen=True)
class ProgressSnapshot:
    """Where a job stands; passed to the ``progress`` callback a few times a second.

    ``bytes_read`` (last, so positional construction in the old order still works): the
    source bytes read so far, summed over the chunks -- a file source counts each part (a
    byte range, a Parquet file's row groups, a whole file) as it finishes reading it; a
    database source reads no bytes it can count, and it stays 0.

    ``progress_percentage`` and ``eta_seconds`` are by rows (``rows_written`` of
    ``rows_expected``) when every unfinished chunk has a row estimate from planning, and by
    chunks otherwise; the percentage reaches 100 only when every chunk finished.
    """

    total_chunks: int
    completed_chunks: int
    failed_chunks: int
    running_chunks: int
    rows_read: int
    rows_written: int
    progress_percentage: float
    elapsed_seconds: float
    rows_per_second: float
    eta_seconds: float | None
    running: tuple[RunningChunk, ...] = ()
    bytes_read: int = 0
    #: rows this run is expected to write: finished chunks count what they wrote, the others
    #: their planning estimate (or what they wrote so far, when that is more); equals
    #: ``rows_written`` once every chunk finished
    rows_expected: int = 0
    #: Arrow buffer bytes of the batches read so far (any source)
    arrow_bytes: int = 0

    @property
    def rows_processed(self) -> int:
        return self.rows_written

    @property
    def done(self) -> bool:
        return self.completed_chunks + self.failed_chunks >= self.total_chunks


class ProgressBoard:
    """A ``chunks x len(FIELDS)`` int64 array in POSIX shared memory."""

    def __init__(self, shm: shared_memory.SharedMemory, n_chunks: int, owner: bool) -> None:
        self._shm = shm
        self.n_chunks = n_chunks
        self._owner = owner
        buf = shm.buf
        assert buf is not None
        self._view: Any = buf.cast("q") if n_chunks else None

    @property
    def name(self) -> str:
        return self._shm.name

    @classmethod
    def create(cls, n_chunks: int) -> ProgressBoard:
        shm = shared_memory.SharedMemory(create=True, size=max(8, n_chunks * _W * 8))
        board = cls(shm, n_chunks, owner=True)
        for i in range(n_chunks * _W):
            board._view[i] = 0
        return board

    @classmethod
    def attach(cls, name: str, n_chunks: int) -> ProgressBoard:
        if sys.version_info >= (3, 13):
            shm = shared_memory.SharedMemory(name=name, track=False)
        else:
            # Before 3.13 attaching registers the segment with the resource tracker, which
            # would unlink it when this worker exits; only the parent may unlink.
            from multiprocessing import resource_tracker

            register = resource_tracker.register
            resource_tracker.register = lambda *a, **k: None
            try:
                shm = shared_memory.SharedMemory(name=name)
            finally:
                resource_tracker.register = register
        return cls(shm, n_chunks, owner=False)

    def set(self, chunk: int, field: str, value: int) -> None:
        self._view[chunk * _W + _F[field]] = int(value)

    def add(self, chunk: int, field: str, value: int) -> None:
        self._view[chunk * _W + _F[field]] += int(value)

    def get(self, chunk: int, field: str) -> int:
        return int(self._view[chunk * _W + _F[field]])

    def row(self, chunk: int) -> dict[str, int]:
        base = chunk * _W
        return {name: int(self._view[base + i]) for i, name in enumerate(FIELDS)}

    def state(self, chunk: int) -> ChunkState:
        return ChunkState(self.get(chunk, "state"))

    def move(self, chunk: int, new: ChunkState) -> None:
        """Change a chunk's state, refusing a transition the table does not allow."""
        old = self.state(chunk)
        if new not in TRANSITIONS[old]:
            raise RuntimeError(f"chunk {chunk}: illegal transition {old.name} -> {new.name}")
        self.set(chunk, "state", new)

    def snapshot(
        self, started: float, ids: list[int] | None = None, now: float | None = None
    ) -> ProgressSnapshot:
        """Totals over the chunks ``ids`` (default: every row of the board); ``started`` and
        ``now`` are readings of one monotonic clock (``now`` defaults to time.monotonic())."""
        ids = list(range(self.n_chunks)) if ids is None else ids
        rows = [self.row(i) for i in ids]
        done = sum(1 for r in rows if r["state"] in (ChunkState.DONE, ChunkState.SKIPPED))
        failed = sum(1 for r in rows if r["state"] == ChunkState.FAILED)
        running = sum(1 for r in rows if r["state"] == ChunkState.RUNNING)
        read = sum(r["rows_read"] for r in rows)
        written = sum(r["rows_written"] for r in rows)
        nbytes = sum(r["bytes_read"] for r in rows)
        arrow = sum(r["arrow_bytes"] for r in rows)
        total = len(ids)
        expected = 0
        by_rows = True
        for r in rows:
            state = r["state"]
            if state == ChunkState.SKIPPED:  # committed by an earlier run: not this run's rows
                continue
            if state in (ChunkState.DONE, ChunkState.FAILED):
                expected += r["rows_written"]  # a finished chunk's estimate is what it did
            else:
                if r["estimate"] < 0:  # not known (-1)
                    by_rows = False
                expected += max(r["estimate"], r["rows_written"])
        finished = done + failed
        elapsed = max(1e-9, (time.monotonic() if now is None else now) - started)
        rate = written / elapsed
        eta: float | None = None
        if total == 0 or finished >= total:
            pct, eta = 100.0, 0.0
        elif by_rows and expected > 0:
            pct = min(99.99, 100.0 * written / expected)
            if written > 0:
                eta = (expected - written) / rate
        else:
            partial = 0.0
            for r in rows:
                if r["state"] == ChunkState.RUNNING and r["estimate"] > 0:
                    partial += min(0.99, r["rows_written"] / r["estimate"])
            pct = min(99.99, 100.0 * (finished + partial) / total)
            if pct > 0:
                eta = elapsed * (100.0 - pct) / pct
        now_ns = time.time_ns()
        in_flight = tuple(
            RunningChunk(
                cid,
                r["pid"],
                r["attempts"],
                r["rows_read"],
                r["rows_written"],
                max(0.0, (now_ns - r["started_ns"]) / 1e9) if r["started_ns"] else 0.0,
                r["bytes_read"],
            )
            for cid, r in zip(ids, rows, strict=True)
            if r["state"] == ChunkState.RUNNING
        )
        return ProgressSnapshot(
            total,
            done,
            failed,
            running,
            read,
            written,
            round(pct, 2),
            elapsed,
            rate,
            eta,
            in_flight,
            nbytes,
            max(expected, written),
            arrow,
        )

    def close(self) -> None:
        """Release the view, close, and (parent only) unlink the segment. Idempotent."""
        if self._view is not None:
            self._view.release()
            self._view = None
        try:
            self._shm.close()
        except BufferError:  # pragma: no cover - a stray view is still alive
            return
        if self._owner:
            self._owner = False
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()


ProgressCallback = Callable[[ProgressSnapshot], Any]


def human_bytes(n: int | float) -> str:
    """``n`` bytes in binary units: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


_last_line = [0.0]


def print_progress(snapshot: ProgressSnapshot) -> None:
    """Progress on stderr: redrawn in place on a terminal, a line every 2 s otherwise."""
    eta = "-" if snapshot.eta_seconds is None else f"{snapshot.eta_seconds:.0f}s"
    line = (
        f"{snapshot.progress_percentage:5.1f}%  {snapshot.completed_chunks}/{snapshot.total_chunks} "
        f"chunks  {snapshot.rows_written:,} rows"
        + (
            f" of ~{snapshot.rows_expected:,}"
            if snapshot.rows_expected > snapshot.rows_written
            else ""
        )
        + f"  {snapshot.rows_per_second:,.0f} rows/s  ETA {eta}"
    )
    if snapshot.bytes_read:
        line += f"  {human_bytes(snapshot.bytes_read)} read"
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line + ("\n" if snapshot.done else "  "))
    else:
        now = time.monotonic()
        if not snapshot.done and now - _last_line[0] < 2.0:
            return
        _last_line[0] = now
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
