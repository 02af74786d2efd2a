"""JobSpec: a planned, preflighted job, ready to run (what prepare hands the coordinator)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from ..config import Endpoint, RetryConfig
from ..plan import Plan
from ..sources import SourceLayout
from ..targets import TableRef, WriteLayout
from ..transform import TransformSpec


@dataclass(frozen=True)
class JobSpec:
    """A planned, preflighted job, ready to run."""

    job_id: str
    plan: Plan
    source: Endpoint
    target: Endpoint
    table: TableRef
    target_schema: pa.Schema
    transform: TransformSpec
    retry: RetryConfig = field(default_factory=RetryConfig)
    workers: int = 1
    batch_size: int = 65_536
    committed: dict[int, int] = field(default_factory=dict)  # resume: chunk -> rows
    in_process: bool = False
    verify: bool = False
    statement_timeout: float | None = None  # seconds per source query (PostgreSQL, MySQL)
    stall_timeout: float | None = None  # kill a worker whose chunk shows no progress this long
    notes: tuple[str, ...] = ()  # decisions made while preparing (fewer workers, ...)
    snapshot: bool = False  # read every chunk from one exported PostgreSQL snapshot
    max_worker_memory: int | None = None  # MiB of RSS per worker before it is killed and split
    layout: SourceLayout | None = None  # how source columns are read (type preflight)
    write: WriteLayout | None = None  # how chunks are written (staged casts, merge key)
    mode: str = "append"
    final_table: TableRef | None = None  # replace: the table the loaded stage is swapped into
    final_existed: bool = False  # replace: whether that table existed (rows swap vs rename)
    executor: str = "local"  # local: this machine's process pool; dask: a Dask cluster
    cluster: str | None = None  # dask: the scheduler's address (None: a LocalCluster)
    swap_with: str = "truncate"  # replace: how the old rows go (delete keeps old snapshots right)
    already_finished: bool = False  # resumed after it finished: nothing runs, nothing swaps
