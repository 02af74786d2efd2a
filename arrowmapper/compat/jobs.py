"""The old executor's two entry points take the same job; its arguments are declared once, here.

``ParallelProcessor.process_mapper_job(source_conn, source_sql, target_conn, target_schema,
target_table, transform, strategy, key, params)`` and ``execute_query_parallel(...)`` (the same
nine, then ``max_workers, chunk_size, max_retries, progress_callback, retry_config``) are the
drop-in contract: names, order, types and defaults. Each is the constructor of a frozen record
(:class:`MapperJob`, and :class:`QueryJob`, which extends it), and :func:`called_as` /
:func:`method_called_as` give a function of that record the record's own signature -- to
callers, to ``inspect.signature`` and ``help()``, and to mypy (through a ``ParamSpec``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..config import RetryConfig
from ..run.progress import ProgressSnapshot
from .records import ChunkingStrategy

_P = ParamSpec("_P")
_J = TypeVar("_J")
_R = TypeVar("_R")
_S = TypeVar("_S")


@dataclass(frozen=True)
class MapperJob:
    """One mapper job as the old executor's callers pass it (``process_mapper_job``'s
    arguments, in their order)."""

    source_conn: Any
    source_sql: str | None  # None: every row of a file source
    target_conn: Any
    target_schema: str | None
    target_table: str
    transform: Any = None
    strategy: ChunkingStrategy | str | None = None
    key: str | None = None
    params: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class QueryJob(MapperJob):
    """``execute_query_parallel``'s arguments: a :class:`MapperJob`, then the processor's
    sizing, retries and progress callback."""

    max_workers: int | None = None
    chunk_size: int | None = None
    max_retries: int | None = None
    progress_callback: Callable[[ProgressSnapshot], Any] | None = None
    retry_config: RetryConfig | None = None

    @property
    def job(self) -> MapperJob:
        """The job alone, without how it is run."""
        fields = MapperJob.__dataclass_fields__
        return MapperJob(**{name: getattr(self, name) for name in fields})


def _signature(record: Callable[..., Any], run: Callable[..., Any], method: bool) -> Any:
    params = list(inspect.signature(record).parameters.values())
    if method:
        params.insert(0, inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD))
    return inspect.signature(run).replace(parameters=params)


def called_as(record: Callable[_P, _J]) -> Callable[[Callable[[_J], _R]], Callable[_P, _R]]:
    """A function of one ``record``, called with the record's constructor arguments."""

    def wrap(run: Callable[[_J], _R]) -> Callable[_P, _R]:
        @functools.wraps(run)
        def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            return run(record(*args, **kwargs))

        call.__signature__ = _signature(record, run, method=False)  # type: ignore[attr-defined]
        return call

    return wrap


def method_called_as(
    record: Callable[_P, _J],
) -> Callable[[Callable[[_S, _J], _R]], Callable[Concatenate[_S, _P], _R]]:
    """A method of one ``record``, called with the record's constructor arguments."""

    def wrap(run: Callable[[_S, _J], _R]) -> Callable[Concatenate[_S, _P], _R]:
        @functools.wraps(run)
        def call(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            return run(self, record(*args, **kwargs))

        call.__signature__ = _signature(record, run, method=True)  # type: ignore[attr-defined]
        return call

    return wrap
