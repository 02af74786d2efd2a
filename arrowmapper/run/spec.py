"""JobSpec: a planned, preflighted job, ready to run (what prepare hands the coordinator).

It holds the job's :class:`~arrowmapper.config.JobConfig` (what was asked) and what
:func:`arrowmapper.run.prepare.prepare_job` decided (the plan, the endpoints, the table loaded,
the workers that fit, ...). The options the coordinator and workers read keep their names as
properties over the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

import pyarrow as pa

from ..config import Endpoint, JobConfig, RetryConfig
from ..plan import Plan
from ..sources import SourceLayout
from ..targets import TableRef, WriteLayout
from ..transform import TransformSpec

_T = TypeVar("_T")


class _FromConfig(Generic[_T]):
    """A JobSpec attribute read from its JobConfig (``spec.retry`` is ``spec.config.retry``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, spec: JobSpec, owner: type | None = None) -> _T:
        value: _T = getattr(spec.config, self.name)
        return value


@dataclass(frozen=True)
class JobSpec:
    """A planned, preflighted job, ready to run."""

    job_id: str
    plan: Plan
    source: Endpoint
    target: Endpoint
    table: TableRef  # the table chunks are loaded into (replace: the stage)
    target_schema: pa.Schema
    transform: TransformSpec
    config: JobConfig = field(default_factory=JobConfig)  # what was asked
    workers: int = 1  # the config's workers, fitted to the servers' free connections
    committed: dict[int, int] = field(default_factory=dict)  # resume: chunk -> rows
    in_process: bool = False
    notes: tuple[str, ...] = ()  # decisions made while preparing (fewer workers, ...)
    snapshot: bool = False  # read every chunk from one exported PostgreSQL snapshot
    layout: SourceLayout | None = None  # how source columns are read (type preflight)
    write: WriteLayout | None = None  # how chunks are written (staged casts, merge key)
    final_table: TableRef | None = None  # replace: the table the loaded stage is swapped into
    final_existed: bool = False  # replace: whether that table existed (rows swap vs rename)
    already_finished: bool = False  # resumed after it finished: nothing runs, nothing swaps
    mark_name: str | None = None  # a run of a recurring job (cursor=): it moves this name's mark
    #: seconds the preparation spent per phase (connect, plan, preflight): JobResult.phases
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    path: str = "arrow"  # how chunks travel: arrow, or copy (the binary COPY relay)
    path_reason: str = ""  # why (run/copypath.py)
    copy_columns: tuple[str, ...] = ()  # copy: the relayed columns, in the query's order

    # the options the coordinator and workers read, under the names they have always had
    retry = _FromConfig[RetryConfig]("retry")
    batch_size = _FromConfig[int]("batch_size")  # rows per Arrow batch
    verify = _FromConfig[bool]("verify")  # each chunk read back inside its transaction
    statement_timeout = _FromConfig[float | None]("statement_timeout")  # s per source query
    stall_timeout = _FromConfig[float | None]("stall_timeout")  # kill a stalled worker
    max_worker_memory = _FromConfig[int | None]("max_worker_memory")  # MiB RSS per worker
    mode = _FromConfig[str]("mode")  # append, create, replace, merge, truncate
    executor = _FromConfig[str]("executor")  # local: a process pool; dask: a Dask cluster
    cluster = _FromConfig[str | None]("cluster")  # dask: the scheduler (None: LocalCluster)
    swap_with = _FromConfig[str]("swap")  # replace: how the old rows go
