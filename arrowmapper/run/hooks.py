"""What the coordinator reaches outside itself, gathered in :class:`Hooks` so a test can
replace each part: the clock, sleeping, the ledger read after a worker's death, splitting a
chunk and exporting a snapshot (both asked of the job's ``Source``), and making the executor.
The defaults are the real ones (they import the drivers lazily: only when first used)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..config import Endpoint
from ..plan import Chunk, Plan
from .base import Executor

if TYPE_CHECKING:
    from .spec import JobSpec


class Ledger(Protocol):
    """The part of the target the coordinator reads after a worker's death."""

    def settled_rows(self, job_id: str, chunk_id: int) -> int | None: ...
    def update_plan(self, job_id: str, plan: str) -> None: ...
    def close(self) -> None: ...


def _open_ledger(spec: JobSpec) -> Ledger:
    from ..targets import open_target

    return open_target(spec.target, spec.table)


def _plan_split(source: Endpoint, plan: Plan, chunk: Chunk, first: int) -> Any:
    from ..sources import open_source

    with open_source(source) as src:
        return src.split(plan, chunk, first)


def _export_snapshot(source: Endpoint) -> tuple[Any, str]:
    from ..sources import open_source

    with open_source(source) as src:  # the connection returned outlives the Source object
        return src.export_snapshot()


def _make_executor(spec: JobSpec, n: int) -> Executor:
    from .executors import DaskExecutor, LocalPool

    if spec.executor == "dask":
        return DaskExecutor(spec.cluster, n, spec.job_id)
    return LocalPool(spec.workers)


@dataclass(frozen=True)
class Hooks:
    """Everything the coordinator reaches outside itself: the clock, the ledger read after a
    death, splitting, the snapshot, the executor. The defaults are the real ones; the unit
    tests (``tests/test_coordinator_unit.py``) pass fakes and run without a process or server."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    open_ledger: Callable[[JobSpec], Ledger] = _open_ledger
    plan_split: Callable[[Endpoint, Plan, Chunk, int], Any] = _plan_split
    export_snapshot: Callable[[Endpoint], tuple[Any, str]] = _export_snapshot
    make_executor: Callable[[JobSpec, int], Executor] = _make_executor
    rng: random.Random = field(default_factory=random.Random)


__all__ = ["Hooks", "Ledger"]
