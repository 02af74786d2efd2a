"""The coordinator's decisions against a fake executor: no process, no server, milliseconds.

The fake runs each submitted task through a script (chunk, attempt) -> outcome and answers
``wait`` with the oldest running chunk's outcome; the clock is fake (``sleep`` and ``wait``
advance it), and the ledger, the splitter and the snapshot are stand-ins given through
:class:`Hooks`. The real-process tests of the same paths are test_faults.py, test_chaos.py,
test_watchdog.py, test_memory.py and test_dask.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pytest

from arrowmapper.config import Endpoint, JobConfig, RetryConfig
from arrowmapper.errors import ErrorRecord
from arrowmapper.plan import Chunk, Plan
from arrowmapper.run.base import Died, Event, Finished, Kill, ProgressEvent
from arrowmapper.run.coordinator import Coordinator, Hooks
from arrowmapper.run.progress import ChunkState, ProgressSnapshot
from arrowmapper.run.report import ChunkResult, JobResult
from arrowmapper.run.spec import JobSpec
from arrowmapper.run.worker import ChunkTask
from arrowmapper.targets import TableRef
from arrowmapper.transform import TransformSpec

Outcome = ChunkResult | ErrorRecord | Died | None  # None: the worker hangs until killed
Script = Callable[[int, int], Outcome]  # (chunk id, attempt) -> outcome


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.05)


def ok(cid: int, attempt: int) -> ChunkResult:
    return ChunkResult.done(cid, 100, 100, attempts=attempt)


def fail(kind: str, transient: bool, message: str = "boom") -> ErrorRecord:
    return ErrorRecord(kind, transient, None, message)  # type: ignore[arg-type]


@dataclass
class FakeExecutor:
    """An :class:`~arrowmapper.run.base.Executor` that runs nothing."""

    script: Script
    clock: Clock
    slots: int = 2
    watchdog: bool = True
    name: str = "fake"
    rss_of: dict[int, int] = field(default_factory=dict)
    cap: int | None = None
    running_now: dict[int, tuple[ChunkTask, Outcome]] = field(default_factory=dict)
    submitted: list[tuple[int, int, float]] = field(default_factory=list)  # cid, attempt, at
    kills: list[tuple[int, Kill]] = field(default_factory=list)
    most_at_once: int = 0
    most_after_limit: int = 0
    tasks: list[ChunkTask] = field(default_factory=list)
    fitted: int = 0
    stopped: bool = False
    updates: list[ProgressEvent] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.slots

    @property
    def concurrency(self) -> int:
        return self.slots if self.cap is None else min(self.slots, self.cap)

    def fit(self, n: int) -> None:
        self.fitted = n

    def limit(self, n: int) -> None:
        self.cap = max(1, n)

    def busy(self) -> int:
        return len(self.running_now)

    def idle(self) -> int:
        return max(0, self.concurrency - len(self.running_now))

    def submit(self, cid: int, task: ChunkTask) -> list[Died]:
        assert cid not in self.running_now
        self.submitted.append((cid, task.attempt, self.clock.now))
        self.running_now[cid] = (task, self.script(cid, task.attempt))
        self.most_at_once = max(self.most_at_once, len(self.running_now))
        if self.cap is not None:
            self.most_after_limit = max(self.most_after_limit, len(self.running_now))
        self.tasks.append(task)
        # the chunk begins on its worker at once: the worker names itself on the board
        self.updates.append(ProgressEvent("set", cid, "pid", 4242))
        return []

    def wait(self, timeout: float) -> list[Event]:
        self.clock.sleep(timeout)
        for cid, (task, outcome) in self.running_now.items():
            killed = next((k for c, k in self.kills if c == cid), None)
            if outcome is None and killed is None:
                continue  # hangs (a stall) or eats memory until the watchdog kills it
            del self.running_now[cid]
            if killed is not None:
                self.kills = [(c, k) for c, k in self.kills if c != cid]
                return [Died(cid, 4242, "signal SIGKILL", killed)]
            if isinstance(outcome, Died):
                return [dataclasses.replace(outcome, cid=cid)]
            if isinstance(outcome, ErrorRecord):
                outcome = ChunkResult.failed(cid, outcome, attempts=task.attempt)
            assert isinstance(outcome, ChunkResult)
            return [Finished(cid, outcome)]
        return []

    def progress(self) -> list[ProgressEvent]:
        out, self.updates = self.updates, []
        return out

    def running(self) -> dict[int, int]:
        return dict.fromkeys(self.running_now, 4242)

    def kill(self, cid: int, kill: Kill) -> None:
        self.kills.append((cid, kill))

    def killing(self, cid: int) -> bool:
        return any(c == cid for c, _ in self.kills)

    def rss(self, cid: int) -> int | None:
        return self.rss_of.get(cid)

    def discard(self) -> None:
        self.running_now.clear()

    def stop(self) -> None:
        self.stopped = True


@dataclass
class FakeLedger:
    settled: dict[int, int] = field(default_factory=dict)
    plans: list[str] = field(default_factory=list)
    asked: list[int] = field(default_factory=list)
    closed: int = 0

    def settled_rows(self, job_id: str, chunk_id: int) -> int | None:
        self.asked.append(chunk_id)
        return self.settled.get(chunk_id)

    def update_plan(self, job_id: str, plan: str) -> None:
        self.plans.append(plan)

    def close(self) -> None:
        self.closed += 1


def chunk(cid: int, rows: int = 100) -> Chunk:
    return Chunk(
        cid, f"SELECT * FROM t WHERE id >= {cid * rows}", f"id >= {cid * rows}", "{}", rows
    )


def make_spec(n: int = 4, **changes: Any) -> JobSpec:
    """A spec of ``n`` chunks; ``changes`` set JobSpec fields or, by name, JobConfig options."""
    pg = Endpoint("postgresql://u@h:5432/db", "postgresql")
    plan = Plan("key", "test", "id", "SELECT * FROM t", tuple(chunk(i) for i in range(n)), 100 * n)
    spec_fields = JobSpec.__dataclass_fields__
    options = {
        k: changes.pop(k)
        for k in list(changes)
        if k in JobConfig.__dataclass_fields__ and k not in spec_fields
    }
    options.setdefault("retry", RetryConfig(max_retries=2, base_delay=1.0, jitter=0.0))
    spec = JobSpec(
        job_id="unit",
        plan=plan,
        source=pg,
        target=pg,
        table=TableRef(None, "dst", "postgresql"),
        target_schema=pa.schema([("id", pa.int64())]),
        transform=TransformSpec("identity"),
        config=JobConfig(**options),
        workers=2,
    )
    return dataclasses.replace(spec, **changes)


def halve(source: Endpoint, plan: Plan, parent: Chunk, first: int) -> tuple[Chunk, Chunk]:
    rows = (parent.estimated_rows or 0) // 2
    return (
        Chunk(first, parent.sql + " /* a */", parent.predicate, "{}", rows),
        Chunk(first + 1, parent.sql + " /* b */", parent.predicate, "{}", rows),
    )


@dataclass
class Run:
    result: JobResult
    ex: FakeExecutor
    ledger: FakeLedger
    clock: Clock
    coordinator: Coordinator
    snapshots: list[ProgressSnapshot]
    splits: list[int]


def run(
    script: Script,
    spec: JobSpec | None = None,
    *,
    slots: int = 2,
    ledger: FakeLedger | None = None,
    rss: dict[int, int] | None = None,
) -> Run:
    spec = spec or make_spec()
    clock = Clock()
    ex = FakeExecutor(script, clock, slots=slots, rss_of=rss or {})
    ledger = ledger or FakeLedger()
    snapshots: list[ProgressSnapshot] = []
    splits: list[int] = []

    def split(source: Endpoint, plan: Plan, parent: Chunk, first: int) -> tuple[Chunk, Chunk]:
        splits.append(parent.chunk_id)
        return halve(source, plan, parent, first)

    def no_executor(spec: JobSpec, n: int) -> FakeExecutor:
        raise AssertionError("the coordinator must use the executor it was given")

    hooks = Hooks(
        clock=clock,
        sleep=clock.sleep,
        open_ledger=lambda spec: ledger,
        plan_split=split,
        export_snapshot=lambda source: (None, "snap-1"),
        make_executor=no_executor,
    )
    coordinator = Coordinator(spec, snapshots.append, 0.0, executor=ex, hooks=hooks)
    result = coordinator.run()
    return Run(result, ex, ledger, clock, coordinator, snapshots, splits)


def attempts_of(r: Run, cid: int) -> list[tuple[int, float]]:
    return [(a, at) for c, a, at in r.ex.submitted if c == cid]


# --------------------------------------------------------------------------- retries


def test_every_chunk_runs_once_when_nothing_fails() -> None:
    r = run(ok)
    assert r.result.success and r.result.rows_written == 400 and r.result.chunks == 4
    assert sorted(c for c, _, _ in r.ex.submitted) == [0, 1, 2, 3]
    assert r.ex.most_at_once == 2 and r.ex.fitted == 2 and r.ex.stopped
    assert r.result.attempt_errors == () and r.result.workers == 2


def test_a_transient_failure_is_retried_after_its_backoff() -> None:
    def script(cid: int, attempt: int) -> Outcome:
        return (
            fail("connect", True, "connection reset")
            if cid == 1 and attempt < 3
            else ok(cid, attempt)
        )

    r = run(script)
    assert r.result.success and r.result.rows_written == 400
    tries = attempts_of(r, 1)
    assert [a for a, _ in tries] == [1, 2, 3]
    # base_delay 1.0, factor 2, no jitter: 1 s after the first failure, 2 s after the second
    assert tries[1][1] - tries[0][1] >= 1.0 and tries[2][1] - tries[1][1] >= 2.0
    assert tries[2][1] - tries[1][1] < 2.5
    final = {c.chunk_id: c for c in r.result.chunk_results}[1]
    assert final.attempts == 3 and final.success
    assert len(r.result.attempt_errors) == 2
    assert all("connection reset" in e for e in r.result.attempt_errors)


def test_a_terminal_failure_is_not_retried() -> None:
    def script(cid: int, attempt: int) -> Outcome:
        return (
            fail("data", False, "ERROR 22012: division by zero") if cid == 2 else ok(cid, attempt)
        )

    r = run(script)
    assert not r.result.success and r.result.failed_chunks == (2,)
    assert [a for a, _ in attempts_of(r, 2)] == [1]
    failed = {c.chunk_id: c for c in r.result.chunk_results}[2]
    assert failed.kind == "data" and failed.transient is False and "22012" in (failed.error or "")
    assert r.result.rows_written == 300  # the three others


def test_a_transient_failure_stops_after_max_retries() -> None:
    r = run(lambda cid, attempt: fail("timeout", True) if cid == 0 else ok(cid, attempt))
    assert r.result.failed_chunks == (0,)
    assert [a for a, _ in attempts_of(r, 0)] == [1, 2, 3]  # max_retries=2: three attempts


def test_the_same_verification_mismatch_twice_is_terminal() -> None:
    def script(cid: int, attempt: int) -> Outcome:
        return fail("verification", True, "checksum differs") if cid == 3 else ok(cid, attempt)

    r = run(script, make_spec(retry=RetryConfig(max_retries=5, base_delay=0.1, jitter=0.0)))
    assert r.result.failed_chunks == (3,)
    assert [a for a, _ in attempts_of(r, 3)] == [1, 2]
    assert r.result.verification_failures == ("checksum differs", "checksum differs")


# --------------------------------------------------------------------------- the server


def test_no_free_connection_lowers_concurrency_instead_of_spending_a_retry() -> None:
    spec = make_spec(6, workers=3, retry=RetryConfig(max_retries=0, base_delay=0.1, jitter=0.0))

    def script(cid: int, attempt: int) -> Outcome:
        if cid == 0 and attempt == 1 and not limited:
            limited.append(cid)
            return fail("connection_limit", True, "ERROR 53300: too many connections")
        return ok(cid, attempt)

    limited: list[int] = []
    r = run(script, spec, slots=3)
    # max_retries=0: had the 53300 cost an attempt, chunk 0 would have failed for good
    assert r.result.success and r.result.rows_written == 600
    assert r.ex.concurrency == 2
    assert any("no free connections" in n and "at most 2" in n for n in r.result.notes)
    final = {c.chunk_id: c for c in r.result.chunk_results}[0]
    assert final.attempts == 1 and [a for a, _ in attempts_of(r, 0)] == [1, 1]
    assert r.ex.most_at_once == 3 and r.ex.most_after_limit == 2


# --------------------------------------------------------------------------- deaths


def test_a_worker_killed_like_the_oom_killer_has_its_chunk_split() -> None:
    def script(cid: int, attempt: int) -> Outcome:
        if cid == 1:
            return Died(None, 77, "signal SIGKILL", oom_like=True)
        return ok(cid, attempt)

    r = run(script)
    assert r.result.success
    assert r.splits == [1] and r.ledger.asked == [1] and r.ledger.closed == 1
    assert r.result.chunks == 5  # chunk 1 replaced by chunks 4 and 5
    assert sorted(c.chunk_id for c in r.result.chunk_results) == [0, 2, 3, 4, 5]
    assert r.result.rows_written == 500  # the fake's halves write 100 rows each
    assert any("chunk 1 split into 4 and 5" in n for n in r.result.notes)
    stored = json.loads(r.ledger.plans[-1])
    assert sorted(c["chunk_id"] for c in stored["chunks"]) == [0, 2, 3, 4, 5]


def test_a_chunk_the_ledger_says_committed_is_not_split_after_its_death() -> None:
    """A worker SIGKILLed during its COMMIT: the rows landed, so splitting would load them
    twice; the ledger's answer counts them instead."""

    def script(cid: int, attempt: int) -> Outcome:
        return Died(None, 77, "signal SIGKILL", oom_like=True) if cid == 2 else ok(cid, attempt)

    r = run(script, ledger=FakeLedger(settled={2: 100}))
    assert r.result.success and r.splits == [] and r.ledger.plans == []
    done = {c.chunk_id: c for c in r.result.chunk_results}[2]
    assert done.already_committed and done.rows_written == 100
    assert [a for a, _ in attempts_of(r, 2)] == [1]
    assert r.result.chunks == 4


def test_a_death_that_is_not_memory_costs_one_attempt() -> None:
    def script(cid: int, attempt: int) -> Outcome:
        if cid == 0 and attempt == 1:
            return Died(None, 77, "signal SIGSEGV")
        return ok(cid, attempt)

    r = run(script)
    assert r.result.success and r.splits == [] and r.ledger.asked == []
    assert [a for a, _ in attempts_of(r, 0)] == [1, 2]
    assert any("died (signal SIGSEGV)" in e for e in r.result.attempt_errors)


def test_a_chunk_that_cannot_be_split_is_retried_whole() -> None:
    def script(cid: int, attempt: int) -> Outcome:
        if cid == 0 and attempt == 1:
            return Died(None, 77, "signal SIGKILL", oom_like=True)
        return ok(cid, attempt)

    spec = make_spec()
    clock = Clock()
    ex = FakeExecutor(script, clock)
    hooks = Hooks(
        clock=clock,
        sleep=clock.sleep,
        open_ledger=lambda spec: FakeLedger(),
        plan_split=lambda source, plan, parent, first: None,
    )
    result = Coordinator(spec, None, 0.0, executor=ex, hooks=hooks).run()
    assert result.success and result.chunks == 4
    assert [a for c, a, _ in ex.submitted if c == 0] == [1, 2]


def test_workers_that_die_before_any_work_abandon_the_job() -> None:
    deaths: list[int] = []

    def script(cid: int, attempt: int) -> Outcome:
        deaths.append(cid)
        return Died(None, 77, "exit code 1", can_continue=len(deaths) < 3)

    r = run(script, make_spec(retry=RetryConfig(max_retries=5, base_delay=0.01, jitter=0.0)))
    assert len(r.ex.submitted) == 4  # the third death ends the job; no attempt after it
    assert not r.result.success and r.result.failed_chunks == (0, 1, 2, 3)
    errors = {c.chunk_id: c.error or "" for c in r.result.chunk_results}
    assert "died (exit code 1)" in errors[2]  # the death that told: its own error
    assert all("workers cannot start: exit code 1" in errors[c] for c in (0, 1, 3))
    assert r.ex.stopped


# --------------------------------------------------------------------------- watchdogs


def test_the_stall_watchdog_kills_a_chunk_that_does_not_move() -> None:
    def script(cid: int, attempt: int) -> Outcome:
        return None if cid == 1 and attempt == 1 else ok(cid, attempt)

    r = run(script, make_spec(stall_timeout=2.0))
    assert r.result.success
    assert any(
        "killed by the watchdog" in e and "made no progress" in e for e in r.result.attempt_errors
    )
    assert [a for a, _ in attempts_of(r, 1)] == [1, 2] and r.splits == []


def test_the_memory_watchdog_kills_and_splits() -> None:
    def script(cid: int, attempt: int) -> Outcome:
        return None if cid == 3 else ok(cid, attempt)

    r = run(script, make_spec(max_worker_memory=100), rss={3: 200 * 2**20})
    assert r.result.success and r.splits == [3]
    assert any("max_worker_memory 100 MiB" in n and "split into" in n for n in r.result.notes)


# --------------------------------------------------------------------------- resume, progress


def test_resume_skips_committed_chunks() -> None:
    r = run(ok, make_spec(committed={0: 100, 2: 100}))
    assert sorted(c for c, _, _ in r.ex.submitted) == [1, 3]
    assert r.result.skipped_chunks == (0, 2) and r.result.success
    assert r.result.rows_written == 200  # what this run wrote
    last = r.snapshots[-1]
    assert last.completed_chunks == 4 and last.done and last.progress_percentage == 100.0


def test_progress_goes_from_running_to_done_and_counts_failures() -> None:
    def script(cid: int, attempt: int) -> Outcome:
        return fail("query", False, "syntax error") if cid == 0 else ok(cid, attempt)

    r = run(script)
    assert any(s.running_chunks > 0 for s in r.snapshots)
    assert any(0 < s.progress_percentage < 100 for s in r.snapshots)
    last = r.snapshots[-1]
    assert (last.total_chunks, last.completed_chunks, last.failed_chunks) == (4, 3, 1)
    assert last.running_chunks == 0 and last.done


def test_remote_progress_events_reach_the_board() -> None:
    seen: list[int] = []

    def script(cid: int, attempt: int) -> Outcome:
        ex.updates.append(ProgressEvent("add", cid, "rows_written", 40))
        ex.updates.append(ProgressEvent("set", 99, "rows_written", 5))  # unknown: ignored
        return None if cid == 0 and not seen else ok(cid, attempt)

    def snap(s: ProgressSnapshot) -> None:
        for running in s.running:
            if running.chunk_id == 0 and running.rows_written == 40 and not seen:
                seen.append(running.rows_written)
                ex.running_now[0] = (ex.running_now[0][0], ok(0, 1))

    spec = make_spec(2)
    clock = Clock()
    ex = FakeExecutor(script, clock)
    hooks = Hooks(clock=clock, sleep=clock.sleep)
    result = Coordinator(spec, snap, 0.0, executor=ex, hooks=hooks).run()
    assert seen == [40] and result.success


def test_the_snapshot_is_exported_once_and_every_task_reads_it() -> None:
    r = run(ok, make_spec(snapshot=True))
    assert r.result.success and len(r.ex.tasks) == 4
    assert {t.snapshot for t in r.ex.tasks} == {"snap-1"}


@pytest.mark.parametrize("state", [ChunkState.DONE, ChunkState.SKIPPED])
def test_finished_states_are_final(state: ChunkState) -> None:
    from arrowmapper.run.progress import TRANSITIONS

    assert TRANSITIONS[state] == frozenset()


# --------------------------------------------------------------------------- the records


def test_a_failed_chunk_crosses_the_process_boundary_as_a_typed_record() -> None:
    import pickle

    from arrowmapper.errors import SourceError, error_record

    exc = SourceError("no slot", sqlstate="53300")
    result = ChunkResult.failed(3, error_record(exc), attempts=2, pid=9)
    back = pickle.loads(pickle.dumps(result))
    assert back == result and back.kind == "connection_limit" and back.transient
    assert back.error_record == ErrorRecord(
        "connection_limit", True, "53300", "SourceError: no slot"
    )
    assert ChunkResult.done(3, 5, 5, attempts=1).error_record is None


class _FakeEnd:
    """Stands for a worker's process and pipe: records what the pool did to it."""

    def __init__(self) -> None:
        self.sent: list[object] = []
        self.ended = False

    def send(self, obj: object) -> None:
        self.sent.append(obj)
        self.ended = obj is None

    def join(self, timeout: float | None = None) -> None:
        pass

    def is_alive(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_the_local_pool_runs_no_more_chunks_than_its_limit_and_stops_the_rest() -> None:
    """Lowering the limit (the server ran out of connections) stops idle workers beyond it at
    once and busy ones as their chunk ends: each holds a target connection between chunks."""
    from arrowmapper.run.executors import LocalPool, _Slot

    pool = LocalPool(3)
    ends = [_FakeEnd() for _ in range(3)]
    pool.slots = [_Slot(e, e) for e in ends]  # type: ignore[arg-type]
    assert (pool.size, pool.concurrency, pool.idle()) == (3, 3, 3)
    pool.slots[0].chunk_id = 7
    pool.limit(2)
    assert (pool.size, pool.concurrency, pool.busy(), pool.idle()) == (2, 2, 1, 1)
    assert [e.ended for e in ends] == [False, False, True]  # the last idle one was stopped
    pool.slots[1].chunk_id = 8
    assert pool.idle() == 0
    pool.limit(1)  # both busy: nothing stops until a chunk ends
    assert (pool.size, pool.concurrency, pool.idle()) == (2, 1, 0)
    assert not any(e.ended for e in ends[:2])


def test_only_our_memory_watchdog_or_an_unsent_sigkill_means_out_of_memory() -> None:
    assert Died(1, 2, "signal SIGKILL", oom_like=True).out_of_memory
    assert Died(1, 2, "signal SIGKILL", Kill("memory", "RSS 900 MiB")).out_of_memory
    stalled = Died(1, 2, "signal SIGKILL", Kill("stall", "no progress for 30s"))
    assert not stalled.out_of_memory and stalled.killed_for == "no progress for 30s"
    assert not Died(1, 2, "signal SIGSEGV").out_of_memory


# --------------------------------------------------------------------------- several jobs


def run_shared(
    script: Script,
    specs: list[JobSpec],
    slots: int = 2,
    progress: Callable[[ProgressSnapshot], Any] | None = None,
) -> tuple[list[JobResult], FakeExecutor]:
    from arrowmapper.run.coordinator import SharedCoordinator

    clock = Clock()
    ex = FakeExecutor(script, clock, slots=slots)
    hooks = Hooks(
        clock=clock,
        sleep=clock.sleep,
        open_ledger=lambda spec: FakeLedger(),
        plan_split=halve,
        export_snapshot=lambda source: (None, "snap"),
        make_executor=lambda spec, n: ex,
    )
    return SharedCoordinator(specs, progress, hooks=hooks).run(), ex


def test_several_jobs_share_one_executor_biggest_first() -> None:
    from arrowmapper.run.coordinator import KEY_STRIDE

    small = dataclasses.replace(make_spec(2), job_id="small")
    big = dataclasses.replace(make_spec(5), job_id="big")
    seen: list[ProgressSnapshot] = []
    results, ex = run_shared(ok, [small, big], progress=seen.append)
    assert [r.job_id for r in results] == ["small", "big"]  # in the order given
    assert [r.chunks for r in results] == [2, 5] and all(r.success for r in results)
    assert [r.rows_written for r in results] == [200, 500]
    keys = [k for k, _, _ in ex.submitted]
    assert sorted(keys) == [0, 1, *(KEY_STRIDE + i for i in range(5))]  # each chunk once
    assert keys[:5] == [KEY_STRIDE + i for i in range(5)]  # the big job's chunks first
    assert ex.most_at_once == 2 and ex.stopped
    # one progress for the whole run: both jobs' chunks and rows in each snapshot
    assert seen[-1].total_chunks == 7 and seen[-1].completed_chunks == 7
    assert seen[-1].progress_percentage == 100.0 and seen[-1].done


def test_a_failing_job_does_not_touch_the_others() -> None:
    from arrowmapper.run.coordinator import KEY_STRIDE

    def script(key: int, attempt: int) -> Outcome:
        if key == 1:  # the first job's chunk 1: a terminal failure
            return fail("data", False, "bad row")
        if key == KEY_STRIDE and attempt == 1:  # the second job's chunk 0: once, passing
            return fail("conflict", True, "deadlock")
        return ok(key, attempt)

    a = dataclasses.replace(make_spec(3), job_id="a")
    b = dataclasses.replace(make_spec(3), job_id="b")
    (ra, rb), _ = run_shared(script, [a, b])
    assert ra.failed_chunks == (1,) and ra.rows_written == 200 and "bad row" in ra.errors[0]
    assert rb.success and rb.rows_written == 300
    assert {c.chunk_id: c.attempts for c in rb.chunk_results}[0] == 2


def test_jobs_that_read_from_a_snapshot_share_one() -> None:
    exported: list[str] = []

    def export(source: Endpoint) -> tuple[None, str]:
        exported.append(str(source))
        return None, f"snap-{len(exported)}"

    from arrowmapper.run.coordinator import SharedCoordinator

    clock = Clock()
    ex = FakeExecutor(ok, clock)
    hooks = Hooks(
        clock=clock,
        sleep=clock.sleep,
        open_ledger=lambda spec: FakeLedger(),
        export_snapshot=export,
        make_executor=lambda spec, n: ex,
    )
    specs = [dataclasses.replace(make_spec(2), job_id=j, snapshot=True) for j in "ab"]
    results = SharedCoordinator(specs, hooks=hooks).run()
    assert all(r.success for r in results)
    assert len(exported) == 1  # one snapshot (one connection) for both tables
    assert {t.snapshot for t in ex.tasks} == {"snap-1"}


def test_the_stall_clock_starts_when_the_worker_begins_the_chunk() -> None:
    """A worker still starting (importing its drivers) has not stalled: the chunk's clock
    starts when the worker names itself on the board."""
    from arrowmapper.run.progress import ProgressBoard
    from arrowmapper.run.watchdog import Watchdogs

    now = [0.0]
    killed: list[int] = []

    class Ex:
        watchdog = True

        def running(self) -> dict[int, int]:
            return {0: 4242}

        def killing(self, cid: int) -> bool:
            return False

        def kill(self, cid: int, kill: Kill) -> None:
            killed.append(cid)

    board = ProgressBoard.create(2)
    try:
        dogs = Watchdogs(2.0, None, lambda: now[0])
        for t in (0.0, 5.0, 30.0):  # 30 s starting up: not a stall
            now[0] = t
            dogs.check(Ex(), board)  # type: ignore[arg-type]
        assert killed == []
        board.set(0, "pid", 4242)  # the worker begins
        dogs.check(Ex(), board)  # type: ignore[arg-type]
        now[0] = 31.0
        dogs.check(Ex(), board)  # type: ignore[arg-type]
        assert killed == []
        now[0] = 33.0  # 3 s without progress since it began
        dogs.check(Ex(), board)  # type: ignore[arg-type]
        assert killed == [0]
    finally:
        board.close()
