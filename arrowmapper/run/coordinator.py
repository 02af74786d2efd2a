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

from ..errors import ErrorRecord, worker_lost
from ..plan import replace_chunk
from .base import Died, Event, Executor, Finished, Kill, ProgressEvent
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
__all__ = ["Coordinator", "Hooks", "JobSpec", "SharedCoordinator", "kill_tree"]


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
        self._snapshot_conn: Any = None
        self.plan = spec.plan  # grows when a chunk is split
        self._depth: dict[int, int] = {}
        self.watchdogs = Watchdogs(spec.stall_timeout, spec.max_worker_memory, self.clock)
        self.tried: list[ChunkResult] = []  # every attempt's result, for the phase totals
        self.worker_start_s = 0.0
        self.telemetry: Telemetry | None = None

    # ------------------------------------------------------------------ table of contents
    def run(self) -> JobResult:
        """Run the job to its end (every chunk done, failed or skipped) and report it."""
        result: JobResult | None = None
        failure: BaseException | None = None
        try:
            self.open()
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
            self.close(result, failure)

    def open(self, snapshot_id: str | None = None) -> None:
        """Start the job's clock, export its snapshot (or read from ``snapshot_id``, one
        exported for several jobs), create its progress board and mark the chunks an earlier
        run committed (:meth:`close` undoes it)."""
        self.started = self.clock()
        if self.spec.snapshot and snapshot_id is not None:
            self.snapshot_id = snapshot_id
        elif self.spec.snapshot:
            self._snapshot_conn, self.snapshot_id = self.hooks.export_snapshot(self.spec.source)
            log.info("job %s reads from snapshot %s", self.spec.job_id, self.snapshot_id)
        # spare rows for chunks split after a memory failure
        self.board = ProgressBoard.create(2 * (max(self.chunks, default=-1) + 1) + 32)
        self.telemetry = Telemetry(self.spec)
        current_job[0] = self.spec.job_id
        self._mark_committed()

    def close(self, result: JobResult | None = None, failure: BaseException | None = None) -> None:
        """End the job's metrics and spans (with its ``result`` or ``failure``), release the
        board and the snapshot's connection (the executor is not touched)."""
        if self.telemetry is not None:
            try:
                self.telemetry.end(result, failure)
            except Exception:  # telemetry must not fail the job it reports on
                log.exception("could not finish the job's metrics or spans")
            self.telemetry = None
        current_job[0] = None
        if self.board is not None:
            self.board.close()
        if self._snapshot_conn is not None:
            with suppress(Exception):
                self._snapshot_conn.close()
            self._snapshot_conn = None

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
        assert self.board is not None  # (no executor when the job runs in this process)
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
        fewer = (
            result.kind == "connection_limit"
            and self.executor is not None
            and self.executor.concurrency > 1
        )
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
        """Sequential fallback: the same pipeline in this process, one chunk after another.
        The connections and transforms it cached are released however it ends; Ctrl-C ends
        it (the chunk's transaction is rolled back), and so does a transform's SystemExit,
        which a worker would report as the chunk's failure: here it fails the job the same
        way instead of ending the caller's program."""
        try:
            while self._unfinished():
                cid = self._next_ready(self.clock())
                if cid is None:
                    wait_s = min(self.ready_at.values()) - self.clock() if self.ready_at else 0.05
                    self.hooks.sleep(max(0.0, wait_s))
                    continue
                task = self._begin(cid)
                try:
                    result = run_chunk(task)
                except SystemExit as exc:
                    said = f"SystemExit({exc.code!r}) raised while running chunk {cid}"
                    error = ErrorRecord("failed", False, None, said)
                    result = ChunkResult.failed(cid, error, attempts=task.attempt)
                self._on_result(replace(result, attempts=self.attempts[cid]))
                self._report_progress()
        finally:
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


# --------------------------------------------------------------------------- several jobs

#: a chunk's key in a shared executor: its job's index times this, plus its chunk id
KEY_STRIDE = 1 << 32


class _JobView:
    """One job's view of an executor shared by several jobs: the job's chunk ids are
    translated to the executor's keys (``job * KEY_STRIDE + chunk``), so the job's own
    :class:`Coordinator` -- retries, splits, watchdogs, fewer workers -- runs unchanged."""

    def __init__(self, ex: Executor, index: int) -> None:
        self.ex = ex
        self.base = index * KEY_STRIDE
        self.name = ex.name
        self.watchdog = ex.watchdog

    def key(self, cid: int) -> int:
        """The executor's key of this job's chunk ``cid``."""
        return self.base + cid

    @property
    def size(self) -> int:
        return self.ex.size

    @property
    def concurrency(self) -> int:
        return self.ex.concurrency

    def fit(self, n: int) -> None:
        self.ex.fit(n)

    def limit(self, n: int) -> None:
        self.ex.limit(n)

    def busy(self) -> int:
        return self.ex.busy()

    def idle(self) -> int:
        return self.ex.idle()

    def submit(self, cid: int, task: ChunkTask) -> list[Died]:
        return self.ex.submit(self.key(cid), task)

    def wait(self, timeout: float) -> list[Event]:  # pragma: no cover - the shared loop waits
        raise NotImplementedError("a shared executor is waited on by SharedCoordinator")

    def progress(self) -> list[ProgressEvent]:
        return []

    def running(self) -> dict[int, int]:
        return {
            k - self.base: pid
            for k, pid in self.ex.running().items()
            if self.base <= k < self.base + KEY_STRIDE
        }

    def kill(self, cid: int, kill: Kill) -> None:
        self.ex.kill(self.key(cid), kill)

    def killing(self, cid: int) -> bool:
        return self.ex.killing(self.key(cid))

    def rss(self, cid: int) -> int | None:
        return self.ex.rss(self.key(cid))

    def discard(self) -> None:
        self.ex.discard()

    def stop(self) -> None:
        """Nothing: the shared executor is stopped once, by the SharedCoordinator."""


class SharedCoordinator:
    """Runs several :class:`JobSpec` (``map_tables``: one per table) through ONE executor: the
    chunks of every job share the workers, the biggest job's chunks first (by the plan's
    estimated rows), so a big table's tail does not run alone at the end. Each job keeps its
    own :class:`Coordinator` -- its ledger rows, retries, splits, watchdogs, progress board and
    :class:`JobResult` -- and a job whose chunks fail does not stop the others.
    :meth:`run` returns the results in the order of the specs."""

    def __init__(
        self,
        specs: list[JobSpec],
        progress: Callable[[ProgressSnapshot], Any] | None = None,
        progress_interval: float = 0.25,
        executor: Executor | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.hooks = hooks or Hooks()
        self.progress_interval = progress_interval
        self.progress = progress
        self._latest: dict[int, ProgressSnapshot] = {}
        self._last_report = float("-inf")
        self.jobs = [
            Coordinator(
                s, self._reporter(i) if progress else None, progress_interval, None, self.hooks
            )
            for i, s in enumerate(specs)
        ]
        self.executor = executor
        # the biggest job first; ties keep the specs' order
        self.order = sorted(
            range(len(specs)), key=lambda i: (-(specs[i].plan.estimated_rows or 0), i)
        )

    def run(self) -> list[JobResult]:
        """Run every job to its end and report each."""
        opened: list[Coordinator] = []
        results: list[JobResult] = []
        failure: BaseException | None = None
        pooled = [j for j in self.jobs if not j.spec.in_process]
        snapshot_conn: Any = None
        try:
            # one snapshot for every job that reads from one (they share the source): the
            # tables are copied as of one moment, and one connection holds it, not one a job
            wanting = [j for j in self.jobs if j.spec.snapshot]
            snapshot_id = None
            if len(wanting) > 1 and len({j.spec.source.uri for j in wanting}) == 1:
                snapshot_conn, snapshot_id = self.hooks.export_snapshot(wanting[0].spec.source)
                log.info("%d jobs read from snapshot %s", len(wanting), snapshot_id)
            for job in self.jobs:
                opened.append(job)
                job.open(snapshot_id)
            if pooled:
                self._start_workers(pooled)
                while any(j._unfinished() for j in pooled):
                    self._dispatch()
                    self._wait_and_handle(pooled)
                    for job in pooled:
                        job.watchdogs.check(job.executor, job.board)
                        job._report_progress()
            for job in self.jobs:
                if job.spec.in_process:
                    job._run_inline()
                job._report_progress(force=True)
            self._emit(force=True)
            results = [job._result() for job in self.jobs]
            return results
        except KeyboardInterrupt as exc:
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
            for i, job in enumerate(opened):
                job.close(results[i] if results else None, failure)
            if snapshot_conn is not None:
                with suppress(Exception):
                    snapshot_conn.close()

    def _reporter(self, index: int) -> Callable[[ProgressSnapshot], None]:
        """Job ``index``'s progress callback: keeps its latest snapshot for :meth:`_emit`."""

        def report(snapshot: ProgressSnapshot) -> None:
            self._latest[index] = snapshot
            self._emit()

        return report

    def _emit(self, force: bool = False) -> None:
        """Call ``progress`` with every job's latest snapshot summed into one (at most once a
        ``progress_interval``, unless ``force``): one bar for the whole run."""
        now = self.hooks.clock()
        if self.progress is None or not self._latest:
            return
        if not force and now - self._last_report < self.progress_interval:
            return
        self._last_report = now
        try:
            self.progress(merge_snapshots(list(self._latest.values())))
        except Exception:  # a broken callback must not break the jobs
            log.exception("progress callback raised; continuing")

    def _start_workers(self, pooled: list[Coordinator]) -> None:
        ready = sum(len(j.ready_at) for j in pooled)
        n = min(max(j.spec.workers for j in pooled), max(1, ready))
        if self.executor is None:
            self.executor = self.hooks.make_executor(pooled[0].spec, n)
        self.executor.fit(n)
        for index, job in enumerate(self.jobs):
            if not job.spec.in_process:
                job.executor = _JobView(self.executor, index)
        log.info(
            "%d jobs: %d %s workers, %d chunks",
            len(pooled),
            self.executor.size,
            self.executor.name,
            sum(len(j.chunks) for j in pooled),
        )

    def _next_ready(self, now: float) -> tuple[int, int] | None:
        for index in self.order:
            job = self.jobs[index]
            if job.spec.in_process:
                continue
            cid = job._next_ready(now)
            if cid is not None:
                return index, cid
        return None

    def _dispatch(self) -> None:
        ex = self.executor
        assert ex is not None
        now = self.hooks.clock()
        while ex.idle() > 0:
            picked = self._next_ready(now)
            if picked is None:
                return
            index, cid = picked
            task = self.jobs[index]._begin(cid)
            for death in ex.submit(index * KEY_STRIDE + cid, task):
                self._on_death(death)

    def _wait_and_handle(self, pooled: list[Coordinator]) -> None:
        ex = self.executor
        assert ex is not None
        timeout = self.progress_interval
        due = [t for j in pooled for t in j.ready_at.values()]
        if due and ex.idle() > 0:
            timeout = max(0.0, min(timeout, min(due) - self.hooks.clock()))
        if not ex.busy():
            self.hooks.sleep(timeout)
            return
        for event in ex.wait(timeout):
            if isinstance(event, Finished):
                index, cid = divmod(event.cid, KEY_STRIDE)
                job = self.jobs[index]
                job._on_result(replace(event.result, chunk_id=cid, attempts=job.attempts[cid]))
            else:
                self._on_death(event)
        updates = ex.progress()  # workers that cannot reach the board (Dask) name their chunk
        if len(pooled) == 1:  # ... by its own id, which only one job can own
            job = pooled[0]
            assert job.board is not None
            for update in updates:
                if update.cid in job.chunks:
                    if update.op == "add":
                        job.board.add(update.cid, update.name, update.value)
                    else:
                        job.board.set(update.cid, update.name, update.value)

    def _on_death(self, death: Died) -> None:
        """A worker was lost: its job handles it; a pool that cannot start ends every job."""
        if death.cid is not None:
            index, cid = divmod(death.cid, KEY_STRIDE)
            self.jobs[index]._on_death(replace(death, cid=cid))
        if not death.can_continue:
            for job in self.jobs:
                if not job.spec.in_process:
                    job._abandon(f"workers cannot start: {death.why}")


def merge_snapshots(snapshots: list[ProgressSnapshot]) -> ProgressSnapshot:
    """Several jobs' progress as one: counts summed, the percentage weighted by chunks, the
    elapsed time and the time left those of the slowest job."""
    total = sum(s.total_chunks for s in snapshots)
    elapsed = max((s.elapsed_seconds for s in snapshots), default=0.0)
    written = sum(s.rows_written for s in snapshots)
    etas = [s.eta_seconds for s in snapshots if s.eta_seconds is not None]
    eta = max(etas, default=0.0) if len(etas) == len(snapshots) else None
    weighted = sum(s.progress_percentage * s.total_chunks for s in snapshots)
    return ProgressSnapshot(
        total_chunks=total,
        completed_chunks=sum(s.completed_chunks for s in snapshots),
        failed_chunks=sum(s.failed_chunks for s in snapshots),
        running_chunks=sum(s.running_chunks for s in snapshots),
        rows_read=sum(s.rows_read for s in snapshots),
        rows_written=written,
        progress_percentage=weighted / total if total else 100.0,
        elapsed_seconds=elapsed,
        rows_per_second=written / elapsed if elapsed > 0 else 0.0,
        eta_seconds=eta,
        running=tuple(r for s in snapshots for r in s.running),
        bytes_read=sum(s.bytes_read for s in snapshots),
    )
