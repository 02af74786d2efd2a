"""Run a prepared job and finish it: every chunk committed, a replace job's stage is swapped
in and the job marked finished (in the swap's transaction), so resuming it is a no-op."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from ..targets import open_target
from .coordinator import Coordinator
from .executors import LocalPool
from .progress import ProgressSnapshot, print_progress
from .report import JobResult
from .spec import JobSpec

log = logging.getLogger("arrowmapper")

ProgressArg = bool | Callable[[ProgressSnapshot], Any] | None


def progress_callback(progress: ProgressArg) -> Callable[[ProgressSnapshot], Any] | None:
    """``progress`` as a callback: True prints a line per update, None/False none."""
    if progress is True:
        return print_progress
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    raise ConfigError(f"progress must be True, False, None or a callable, got {progress!r}")


def run_prepared(
    spec: JobSpec, progress: ProgressArg = None, pool: LocalPool | None = None
) -> JobResult:
    """Run a prepared job (``pool``: local workers already started, taken over and stopped)."""
    try:
        callback = progress_callback(progress)
    except ConfigError:
        if pool is not None:
            pool.discard()
        raise
    if spec.in_process and pool is not None:
        pool.discard()
        pool = None
    result = Coordinator(spec, callback, executor=pool).run()
    if result.success and not spec.already_finished:
        finish(spec)
    if spec.final_table is not None:  # report the table the rows are (or will be) in
        result = dataclasses.replace(result, table=spec.final_table.display)
    return result


def finish(spec: JobSpec) -> None:
    """Every chunk committed: swap a replace job's stage in, and mark the job finished (in
    the swap's transaction), so resuming it again is a no-op."""
    if spec.final_table is None:
        done = open_target(spec.target, spec.table)
        try:
            if spec.mark_name:  # a plan without chunks has no last commit to move it
                done.complete_run(spec.job_id, spec.mark_name)
            done.mark_finished(spec.job_id)
        finally:
            done.close()
        return
    final = open_target(spec.target, spec.final_table)
    try:
        columns = [c.name for c in spec.write.columns] if spec.write else []
        swapped = final.swap_in(
            spec.table, columns, spec.final_existed, spec.job_id, spec.swap_with
        )
    finally:
        final.close()
    if swapped:
        log.info("swapped %s into %s", spec.table.display, spec.final_table.display)
    else:
        log.warning("job %s was finished by another run; nothing swapped", spec.job_id)
