"""The coordinator: the parent process that runs a planned job on a pool of worker processes.

Data flow::

    Plan(chunks) ──> Coordinator ──ChunkTask──> pipe ──> worker process (spawn, long-lived)
                        │  ▲                              Source.read_chunk (Arrow batches)
                        │  └──────ChunkResult── pipe ◄──  Polars transform per batch
                        │                                  conform to target types
                        │                                  ADBC ingest + ledger row, ONE txn
                        ▼
        ProgressBoard (shared memory, one row per chunk) ◄── workers write rows as batches land
                        │
                        └──> ProgressSnapshot ──> progress callback;  JobResult at the end

Actors:

* **Coordinator** (this module) runs the loop, whatever the executor: plan, ledger, retries,
  splits, watchdogs (:mod:`.watchdog`) and progress are here once. It is typed against the
  :class:`~.base.Executor` protocol and reaches everything else through :class:`~.hooks.Hooks`
  (clock, ledger, splitter, snapshot), so its decisions are tested against fakes.
* **Executors** (:mod:`.executors`) own the workers: :class:`LocalPool` (spawned processes, one
  duplex pipe each, waiting on every pipe *and* every process sentinel, so a worker that dies
  -- SIGKILL, segfault, OOM -- is seen at once: its chunk costs one attempt, the worker is
  replaced, the rest of the job is undisturbed) or :class:`DaskExecutor` (one Dask task per
  chunk). Failed attempts are retried with backoff (see :mod:`.retry`): a chunk waits in
  RETRY_WAIT until its time comes, without blocking the loop.
* **Workers** (:mod:`.worker`) run one chunk at a time and never raise: every failure comes
  back as a classified ChunkResult.
* **ProgressBoard** (:mod:`.progress`) is created and unlinked here; workers attach by name.

The loop reads as its steps: dispatch ready chunks to idle workers, wait for an event (a result
or a death), handle it, report progress.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from typing import Any

from ..errors import worker_lost
from ..plan import replace_chunk
from .base import Died, Executor, Finished
from .executors import kill_tree
from .hooks import Hooks
from .progress import FINISHED, ChunkState, ProgressBoard, ProgressSnapshot
from .report import ChunkResult, JobResult
from .retry import backoff_delay, should_retry
from .spec import JobSpec
from .telemetry import Telemetry, current_job
from .watchdog import Watchdogs
from .worker import ChunkTask, release_worker_state, run_chunk

log = logging.getLogger("arrowmapper")
MAX_SPLIT_DEPTH = 6  # a chunk is halved at most this many times
__all__ = ["Coordinator", "Hooks", "JobSpec", "kill_tree"]


def _estimate(rows: int | None) -> int:
    """A chunk's planned rows as the progress board holds them: -1 when not known."""
    return -1 if rows is None else int(rows)


class Coordinator:
    """Runs one :class:`JobSpec`; :meth:`run` returns the :class:`JobResult`."""

    def __init__(
        self,
        spec: JobSpec,
        progress: Callable[[ProgressSnapshot], Any] | None = None,
        progress_interval: float = 0.25,
        executor: Executor | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.spec = spec
        self.progress = progress
        self.progress_interval = progress_interval
        self.hooks = hooks or Hooks()
        self.clock = self.hooks.clock
        self.chunks = {c.chunk_id: c for c in spec.plan.chunks}
        self.attempts: dict[int, int] = dict.fromkeys(self.chunks, 0)
        self.ready_at: dict[int, float] = {}  # chunk -> monotonic time it may run
        self.results: dict[int, ChunkResult] = {}
        self.executor = executor  # a pool started early (while the job was prepared), or None
        self.board: ProgressBoard | None = None
        self.started = self.clock()
        self._last_report = 0.0
        self.mismatches: list[str] = []  # verification failures (each one retried)
        self.attempt_errors: list[str] = []  # every failed attempt, retried or not
        self.notes: list[str] = list(spec.notes)  # decisions worth reporting
        self.snapshot_id: str | None = None
        self.plan = spec.plan  # grows when a chunk is split
        self._depth: dict[int, int] = {}
        self.watchdogs = Watchdogs(spec.stall_timeout, spec.max_worker_memory, self.clock)
        self.tried: list[ChunkResult] = []  # every attempt's result, for the phase totals
        self.worker_start_s = 0.0
        self.telemetry: Telemetry | None = None

    # ------------------------------------------------------------------ table of contents
    def run(self) -> JobResult:
        """Run the job to its end (every chunk done, failed or skipped) and report it."""
        self.started = self.clock()
        result: JobResult | None = None
        failure: BaseException | None = None
        snapshot_conn = None
        if self.spec.snapshot:
            snapshot_conn, self.snapshot_id = self.hooks.export_snapshot(self.spec.source)
            log.info("job %s reads from snapshot %s", self.spec.job_id, self.snapshot_id)
        # spare rows for chunks split after a memory failure
        self.board = ProgressBoard.create(2 * (max(self.chunks, default=-1) + 1) + 32)
        try:
            self.telemetry = Telemetry(self.spec)
            current_job[0] = self.spec.job_id
            self._mark_committed()
            if self.spec.in_process:
                self._run_inline()
            else:
                self._start_workers()
                while self._unfinished():
                    self._dispatch()
                    self._wait_and_handle()
                    self.watchdogs.check(self.executor, self.board)
                    self._report_progress()
            self._report_progress(force=True)
            result = self._result()
            return result
        except KeyboardInterrupt as exc:
            # Ctrl-C: end the workers now instead of waiting for their chunks; what they had
            # not committed the server rolls back, and --resume loads it later
            failure = exc
            if self.executor is not None:
                self.executor.discard()
            raise
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if self.executor is not None:
                self.executor.stop()
            if self.telemetry is not None:
                try:
                    self.telemetry.end(result, failure)
                except Exception:  # telemetry must not fail the job it reports on
                    log.exception("could not finish the job's metrics or spans")
            current_job[0] = None
            self.board.close()
            if snapshot_conn is not None:
                with suppress(Exception):
                    snapshot_conn.close()

    # ------------------------------------------------------------------ steps
    def _mark_committed(self) -> None:
        assert self.board is not None
        for cid, chunk in self.chunks.items():
            self.board.set(cid, "estimate", _estimate(chunk.estimated_rows))
            if cid in self.spec.committed:
                self.board.move(cid, ChunkState.SKIPPED)
            else:
                self.ready_at[cid] = 0.0

    def _unfinished(self) -> bool:
        assert self.board is not None
        return any(self.board.state(c) not in FINISHED for c in self.chunks)

    def _start_workers(self) -> None:
        begun = time.perf_counter()
        n = min(self.spec.workers, max(1, len(self.ready_at)))
        if self.executor is None:
            self.executor = self.hooks.make_executor(self.spec, n)
        self.executor.fit(n)  # a pool started early is fitted to the job
        self.worker_start_s = time.perf_counter() - begun
        if self.telemetry is not None:
            self.telemetry.phase("worker_start", self.worker_start_s)
        log.info(
            "job %s: %d %s workers, %d chunks (%s)",
            self.spec.job_id,
            self.executor.size,
            self.executor.name,
            len(self.chunks),
            self.spec.plan.strategy,
        )

    def _next_ready(self, now: float) -> int | None:
        due = [c for c, t in self.ready_at.items() if t <= now]
        return min(due) if due else None

    def _begin(self, cid: int) -> ChunkTask:
        assert self.board is not None
        del self.ready_at[cid]
        self.attempts[cid] += 1
        self.board.move(cid, ChunkState.RUNNING)
        self.board.set(cid, "attempts", self.attempts[cid])
        self.board.set(cid, "pid", 0)
        self.board.set(cid, "started_ns", time.time_ns())
        self.watchdogs.forget(cid)
        parent = None
        if self.telemetry is not None:
            parent = self.telemetry.chunk_started(cid, self.attempts[cid])
        return ChunkTask.for_job(
            self.spec,
            self.chunks[cid],
            attempt=self.attempts[cid],
            board_name=self.board.name,
            n_chunks=len(self.chunks),
            snapshot=self.snapshot_id,
            traceparent=parent,
        )

    def _dispatch(self) -> None:
        ex = self.executor
        assert ex is not None
        now = self.clock()
        while ex.idle() > 0:
            cid = self._next_ready(now)
            if cid is None:
                return
            for death in ex.submit(cid, self._begin(cid)):
                self._on_death(death)

    def _wait_and_handle(self) -> None:
        ex = self.executor
        assert ex is not None and self.board is not None
        timeout = self.progress_interval
        if self.ready_at and ex.idle() > 0:
            # a free slot waits for a retry's backoff to end; with every slot busy, only a
            # worker's result or death can change anything (waiting 0 here would spin)
            next_due = min(self.ready_at.values()) - self.clock()
            timeout = max(0.0, min(timeout, next_due))
        if not ex.busy():
            self.hooks.sleep(timeout)
            return
        for event in ex.wait(timeout):
            if isinstance(event, Finished):
                self._on_result(replace(event.result, attempts=self.attempts[event.cid]))
            else:
                self._on_death(event)
        for update in ex.progress():  # workers that cannot reach the board (Dask)
            if update.cid not in self.chunks or self.board.state(update.cid) in FINISHED:
                continue  # a finished chunk's row holds its result's counts: a late add is stale
            if update.op == "add":
                self.board.add(update.cid, update.name, update.value)
            else:
                self.board.set(update.cid, update.name, update.value)

    def _on_result(self, result: ChunkResult) -> None:
        assert self.board is not None
        cid = result.chunk_id
        self.results[cid] = result
        if result.success:
            self.tried.append(result)
            if self.telemetry is not None:
                self.telemetry.chunk_ended(result, retried=False)
            # what the chunk committed is its progress (an executor that reports no progress
            # of its own, or a board update still in flight, is corrected here)
            self.board.set(cid, "rows_written", result.rows_written)
            self.board.set(cid, "rows_read", result.rows_read)
            self.board.move(cid, ChunkState.DONE)
            if result.already_committed:
                log.info("chunk %d was already committed (earlier attempt or run)", cid)
            return
        self._retry_or_fail(result)

    def _retry_or_fail(self, result: ChunkResult) -> None:
        assert self.board is not None and self.executor is not None
        cid = result.chunk_id
        self.tried.append(result)
        self.attempt_errors.append(f"chunk {cid} attempt {self.attempts[cid]}: {result.error}")
        transient = result.transient
        if result.kind == "verification" and result.error:
            # a mismatch may be a passing fault (retried once); the same one twice is not
            repeated = result.error in self.mismatches
            self.mismatches.append(result.error)
            if repeated:
                transient = False
        attempts = self.attempts[cid]
        fewer = result.kind == "connection_limit" and self.executor.concurrency > 1
        again = fewer or should_retry(self.spec.retry, attempts, transient)
        if self.telemetry is not None:
            self.telemetry.chunk_ended(result, retried=again)
        if fewer:
            self._run_fewer(cid)
            return
        if again:
            delay = backoff_delay(self.spec.retry, attempts, self.hooks.rng)
            log.warning(
                "chunk %d attempt %d failed (%s); retrying in %.2fs",
                cid,
                attempts,
                result.error,
                delay,
                extra={"chunk_id": cid},
            )
            self.board.move(cid, ChunkState.RETRY_WAIT)
            self.ready_at[cid] = self.clock() + delay
        else:
            why = "terminal error" if not transient else f"out of retries ({attempts} attempts)"
            log.error("chunk %d failed: %s (%s)", cid, result.error, why, extra={"chunk_id": cid})
            self.board.move(cid, ChunkState.FAILED)

    def _run_fewer(self, cid: int) -> None:
        """The server is out of connections: run fewer chunks at once, and do not count this
        attempt against the chunk's retries."""
        assert self.board is not None and self.executor is not None
        self.executor.limit(self.executor.concurrency - 1)
        self.attempts[cid] -= 1
        note = (
            f"chunk {cid}: the server has no free connections (53300); running at most "
            f"{self.executor.concurrency} chunks at once from now on"
        )
        log.warning(note)
        self.notes.append(note)
        self.board.move(cid, ChunkState.RETRY_WAIT)
        self.ready_at[cid] = self.clock() + backoff_delay(self.spec.retry, 1, self.hooks.rng)

    def _on_death(self, death: Died) -> None:
        """A worker was lost: its chunk costs one attempt (or is split, when memory was the
        likely cause); the executor has already replaced the worker."""
        assert self.board is not None
        cid = death.cid
        memory = cid is not None and death.can_continue and death.out_of_memory
        if memory and cid is not None and self._split(cid, death.killed_for):
            cid = None
        if cid is not None:
            who = f"worker pid {death.pid}" if death.pid else "its worker"
            if death.killed_for:
                message = f"{who} killed by the watchdog: {death.killed_for}"
            else:
                message = f"{who} died ({death.why}) while running chunk {cid}"
            result = ChunkResult.failed(
                cid,
                worker_lost(message, transient=death.can_continue),
                attempts=self.attempts[cid],
                rows_read=self.board.get(cid, "rows_read"),
                pid=death.pid,
            )
            self.results[cid] = result
            self._retry_or_fail(result)
        if not death.can_continue:
            self._abandon(f"workers cannot start: {death.why}")

    def _split(self, cid: int, why: str | None) -> bool:
        """Replace a chunk whose worker ran out of memory by two halves; False if it cannot be.
        A chunk the ledger says committed (it died after its COMMIT) is done, not split."""
        assert self.board is not None
        if max(self.chunks) + 3 > self.board.n_chunks or self._depth.get(cid, 0) >= MAX_SPLIT_DEPTH:
            return False
        try:
            ledger = self.hooks.open_ledger(self.spec)
            try:
                rows_done = ledger.settled_rows(self.spec.job_id, cid)
                if rows_done is not None:  # it committed before dying: count what it wrote
                    self.results[cid] = ChunkResult.done(
                        cid, rows_done, rows_done, attempts=self.attempts[cid], earlier=True
                    )
                    if self.telemetry is not None:
                        self.telemetry.chunk_ended(self.results[cid], retried=False)
                    self.board.move(cid, ChunkState.DONE)
                    return True
                first = max(self.chunks) + 1
                halves = self.hooks.plan_split(self.spec.source, self.plan, self.chunks[cid], first)
                if halves is None:
                    return False
                self.plan = replace_chunk(self.plan, cid, halves)
                ledger.update_plan(self.spec.job_id, self.plan.to_json())
            finally:
                ledger.close()
        except Exception as exc:  # splitting is an optimisation: fall back to a plain retry
            log.warning("could not split chunk %d (%s); retrying it whole", cid, exc)
            return False
        self.board.move(cid, ChunkState.SPLIT)
        if self.telemetry is not None:
            self.telemetry.chunk_split(cid, [h.chunk_id for h in halves], why)
        self.results.pop(cid, None)
        for half in halves:
            self.chunks[half.chunk_id] = half
            self.attempts[half.chunk_id] = 0
            self._depth[half.chunk_id] = self._depth.get(cid, 0) + 1
            self.board.set(half.chunk_id, "estimate", _estimate(half.estimated_rows))
            self.ready_at[half.chunk_id] = self.clock()
        note = (
            f"chunk {cid} split into {halves[0].chunk_id} and {halves[1].chunk_id} after its "
            f"worker ran out of memory ({why or 'killed by SIGKILL'})"
        )
        log.warning(note, extra={"chunk_id": cid})
        self.notes.append(note)
        return True

    def _abandon(self, reason: str) -> None:
        """Fail every chunk not yet finished: the pool cannot work."""
        assert self.board is not None
        log.error("job %s abandoned: %s", self.spec.job_id, reason)
        for cid in self.chunks:
            state = self.board.state(cid)
            if state in FINISHED:
                continue
            if state != ChunkState.RUNNING:
                self.board.move(cid, ChunkState.RUNNING)
            self.board.move(cid, ChunkState.FAILED)
            self.ready_at.pop(cid, None)
            lost = worker_lost(reason, transient=False)
            self.results[cid] = ChunkResult.failed(cid, lost, attempts=self.attempts[cid])

    def _run_inline(self) -> None:
        """Sequential fallback: the same pipeline in this process, one chunk after another."""
        while self._unfinished():
            cid = self._next_ready(self.clock())
            if cid is None:
                wait_s = min(self.ready_at.values()) - self.clock() if self.ready_at else 0.05
                self.hooks.sleep(max(0.0, wait_s))
                continue
            task = self._begin(cid)
            result = run_chunk(task)
            self._on_result(replace(result, attempts=self.attempts[cid]))
            self._report_progress()
        release_worker_state()

    def _report_progress(self, force: bool = False) -> None:
        watching = self.telemetry is not None and self.telemetry.watching
        if (self.progress is None and not watching) or self.board is None:
            return
        now = self.clock()
        if not force and now - self._last_report < self.progress_interval:
            return
        self._last_report = now
        snap = self.board.snapshot(self.started, self._active(), now=now)
        if watching and self.telemetry is not None:
            try:
                self.telemetry.progress(snap, self._states())
            except Exception:
                log.exception("could not update the job's metrics; continuing")
        if self.progress is None:
            return
        try:
            self.progress(snap)
        except Exception:  # a broken callback must not break the job
            log.exception("progress callback raised; continuing")

    def _states(self) -> dict[str, int]:
        """Chunks of the current plan per state (lower-case state names)."""
        assert self.board is not None
        counts = {state.name.lower(): 0 for state in ChunkState if state != ChunkState.SPLIT}
        for cid in self._active():
            counts[self.board.state(cid).name.lower()] += 1
        return counts

    def _active(self) -> list[int]:
        """Chunk ids of the current plan (not the ones replaced by a split)."""
        assert self.board is not None
        return [c for c in self.chunks if self.board.state(c) != ChunkState.SPLIT]

    def _result(self) -> JobResult:
        assert self.board is not None
        s = self.spec
        failed = tuple(sorted(c for c in self.chunks if self.board.state(c) == ChunkState.FAILED))
        started = self.executor.size if self.executor else 0
        workers = 0 if s.in_process else started or min(s.workers, len(self.chunks))
        return JobResult.collect(
            s,
            self.results.values(),
            chunks=len(self._active()),
            elapsed_s=self.clock() - self.started,
            failed_chunks=failed,
            workers=workers,
            verification_failures=tuple(self.mismatches),
            attempt_errors=tuple(self.attempt_errors),
            notes=tuple(self.notes),
            attempts=self.tried,
            phases={
                **s.timings,
                "worker_start_s": s.timings.get("worker_start_s", 0.0) + self.worker_start_s,
            },
        )
