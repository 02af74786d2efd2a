"""The worker side of the process boundary: one task in, one :class:`ChunkResult` out.

:func:`run_chunk` reads a chunk through the job's :class:`~arrowmapper.sources.Source` (an
Arrow stream -- connectorx for SQL -- so memory depends on the batch size, not the chunk),
transforms each batch with Polars, casts it to the target's exact types and ingests it with
ADBC -- the chunk's rows and its ledger row in one target transaction. It never raises: every failure comes back as a classified ChunkResult.

:func:`worker_main` is the loop of a long-lived worker process; it keeps the target connection
between chunks and exits when the parent closes its pipe or dies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..config import Endpoint
from ..errors import error_record, printable
from ..plan import Chunk
from ..sources import ReadOptions, Source, SourceLayout, open_source
from ..targets import (
    TableRef,
    Target,
    WriteLayout,
    Written,
    conform,
    open_copy_target,
    open_target,
)
from ..transform import Transformer, TransformSpec
from .progress import ChunkState, ProgressBoard
from .report import ChunkResult
from .telemetry import flush_spans, result_attributes, work_span

if TYPE_CHECKING:
    from .spec import JobSpec


@dataclass(frozen=True)
class ChunkTask:
    """Everything a worker needs for one chunk; plain data, picklable."""

    job_id: str
    chunk: Chunk
    source: Endpoint
    target: Endpoint
    table: TableRef
    target_schema: pa.Schema
    transform: TransformSpec
    attempt: int = 1
    batch_size: int = 65_536
    board_name: str | None = None
    n_chunks: int = 0
    verify: bool = False
    statement_timeout: float | None = None
    snapshot: str | None = None  # an exported PostgreSQL snapshot every read joins
    layout: SourceLayout | None = None  # text-read columns and their parsing
    write: WriteLayout | None = None  # staged casts and the merge key
    progress_topic: str | None = None  # Dask: progress goes out as events on this topic
    mark_name: str | None = None  # a recurring job's run: its last chunk moves the name's mark
    traceparent: str | None = None  # W3C trace context of the coordinator's chunk span
    #: the COPY fast path: the columns whose binary COPY stream is relayed (empty: Arrow)
    copy_columns: tuple[str, ...] = ()

    @classmethod
    def for_job(
        cls,
        spec: JobSpec,
        chunk: Chunk,
        *,
        attempt: int,
        board_name: str | None,
        n_chunks: int,
        snapshot: str | None,
        traceparent: str | None = None,
    ) -> ChunkTask:
        """The task for one attempt at ``chunk`` of the job ``spec``."""
        return cls(
            job_id=spec.job_id,
            chunk=chunk,
            source=spec.source,
            target=spec.target,
            table=spec.table,
            target_schema=spec.target_schema,
            transform=spec.transform,
            attempt=attempt,
            batch_size=spec.batch_size,
            board_name=board_name,
            n_chunks=n_chunks,
            verify=spec.verify,
            statement_timeout=spec.statement_timeout,
            snapshot=snapshot,
            layout=spec.layout,
            write=spec.write,
            mark_name=spec.mark_name,
            traceparent=traceparent,
            copy_columns=spec.copy_columns if spec.path == "copy" else (),
        )


# Per-process caches: a worker keeps its target connection and transform between chunks.
_TARGETS: dict[tuple[str, TableRef, int, bool], Target] = {}
_TRANSFORMERS: dict[TransformSpec, Transformer] = {}
_BOARDS: dict[str, ProgressBoard] = {}
_SOURCES: dict[tuple[str, int], Source] = {}


def _target_key(task: ChunkTask) -> tuple[str, TableRef, int, bool]:
    # per thread: a Dask worker may run several tasks at once in one process; a relayed
    # chunk's target is on a connection that can COPY (psycopg's)
    return (task.target.uri, task.table, threading.get_ident(), bool(task.copy_columns))


def _target(task: ChunkTask) -> Target:
    key = _target_key(task)
    if key not in _TARGETS:
        opener = open_copy_target if task.copy_columns else open_target
        _TARGETS[key] = opener(task.target, task.table)
    return _TARGETS[key]


def _drop_target(task: ChunkTask) -> None:
    target = _TARGETS.pop(_target_key(task), None)
    if target is not None:
        target.close()


class EventBoard:
    """The progress board's writing half for a Dask worker: each update is a Dask event
    (``log_event``) that the coordinator applies to its own board."""

    def __init__(self, topic: str) -> None:
        from distributed import get_worker

        self.topic = topic
        self.worker = get_worker()

    def set(self, cid: int, name: str, value: int) -> None:
        self.worker.log_event(self.topic, ("set", cid, name, int(value)))

    def add(self, cid: int, name: str, value: int) -> None:
        self.worker.log_event(self.topic, ("add", cid, name, int(value)))


def _board(task: ChunkTask) -> Any:
    if task.progress_topic:
        try:
            return EventBoard(task.progress_topic)
        except Exception:  # not inside a Dask worker (a test calling run_chunk directly)
            return None
    if not task.board_name:
        return None
    if task.board_name not in _BOARDS:
        _BOARDS[task.board_name] = ProgressBoard.attach(task.board_name, task.n_chunks)
    return _BOARDS[task.board_name]


def _source(task: ChunkTask) -> Source:
    # per thread, like the targets: a source may hold a connection (a snapshot's reader)
    key = (task.source.uri, threading.get_ident())
    if key not in _SOURCES:
        _SOURCES[key] = open_source(task.source)
    return _SOURCES[key]


def _drop_source(task: ChunkTask) -> None:
    source = _SOURCES.pop((task.source.uri, threading.get_ident()), None)
    if source is not None:
        source.close()


def _relay(task: ChunkTask, board: Any, read: list[int], clock: ChunkClock) -> Written | None:
    """The COPY fast path's chunk: the source's binary COPY stream of the chunk's SELECT
    relayed undecoded into the target's COPY, inside the chunk's exactly-once transaction.
    Rows come from the COPYs' row counts, bytes from the stream."""
    cid = task.chunk.chunk_id

    def on_bytes(n: int) -> None:  # the relay's bytes: the binary COPY stream, not Arrow's
        clock.arrow_bytes += n
        if board is not None:
            board.add(cid, "bytes_read", n)

    how = ReadOptions(task.snapshot, task.batch_size, task.statement_timeout, job_id=task.job_id)
    blocks = _source(task).copy_out(task.chunk, how, read)
    written = _target(task).relay_chunk(
        task.job_id,
        cid,
        task.chunk.bounds,
        blocks,
        list(task.copy_columns),
        lambda: read[0],
        verify=task.verify,
        on_bytes=on_bytes,
        mark_name=task.mark_name,
    )
    if board is not None and written is not None:
        board.set(cid, "rows_read", read[0])
        board.set(cid, "rows_written", written.rows)
    return written


@dataclass
class ChunkClock:
    """What one chunk attempt measured: rows and Arrow bytes read, and the seconds spent
    inside the source's reader and inside the transform (the rest of the chunk's time is the
    write: ingest, ledger row, commit)."""

    rows: int = 0
    arrow_bytes: int = 0
    read_s: float = 0.0
    transform_s: float = 0.0


def source_batches(
    task: ChunkTask, board: Any, read: list[int], clock: ChunkClock | None = None
) -> Iterator[pa.RecordBatch]:
    """The chunk's rows read through the job's :class:`~arrowmapper.sources.Source`, each
    batch transformed and conformed to the target's schema; ``read[0]`` counts rows read, the
    board's ``bytes_read`` the source bytes the source reports (``ReadOptions.on_bytes``),
    ``arrow_bytes`` the Arrow buffer bytes of the batches read; ``clock`` (when given) the
    time spent reading and transforming."""
    transformer = _TRANSFORMERS.get(task.transform)
    if transformer is None:
        transformer = _TRANSFORMERS[task.transform] = Transformer(task.transform)
    clock = clock if clock is not None else ChunkClock()
    cid = task.chunk.chunk_id

    def on_bytes(n: int) -> None:  # the relay's bytes: the binary COPY stream, not Arrow's
        clock.arrow_bytes += n
        if board is not None:
            board.add(cid, "bytes_read", n)

    how = ReadOptions(
        task.snapshot, task.batch_size, task.statement_timeout, on_bytes, job_id=task.job_id
    )
    dialect = task.table.dialect
    # a guard's refusal (infinity, 24:00, ...) is raised by the source as the terminal error
    batches = iter(_source(task).read_chunk(task.chunk, task.layout, how))
    tick = time.perf_counter
    while True:
        t0 = tick()
        batch = next(batches, None)
        t1 = tick()
        clock.read_s += t1 - t0
        if batch is None:
            return
        read[0] += batch.num_rows
        clock.rows += batch.num_rows
        nbytes = batch.nbytes
        clock.arrow_bytes += nbytes
        if board is not None:
            board.add(cid, "rows_read", batch.num_rows)
            board.add(cid, "arrow_bytes", nbytes)
        outs = iter(transformer.batches(batch))
        while True:
            t0 = tick()
            out = next(outs, None)
            if out is not None:
                out = conform(out, task.target_schema, dialect)
            clock.transform_s += tick() - t0
            if out is None:
                break
            if board is not None:
                board.add(cid, "rows_written", out.num_rows)
            yield out


def run_chunk(task: ChunkTask) -> ChunkResult:
    """Move one chunk: read, transform, conform, ingest + ledger row in one transaction.
    With a ``traceparent`` in the task, inside an ``arrowmapper.chunk.work`` span (a no-op
    unless this process has an OpenTelemetry SDK configured)."""
    if not task.traceparent:
        return _run_chunk(task)
    attrs = {
        "arrowmapper.job_id": task.job_id,
        "arrowmapper.chunk_id": task.chunk.chunk_id,
        "arrowmapper.attempt": task.attempt,
    }
    with work_span(task.traceparent, attrs) as span:
        result = _run_chunk(task)
        if span is not None:
            span.set_attributes(result_attributes(result))
        return result


def _run_chunk(task: ChunkTask) -> ChunkResult:
    started = time.monotonic()
    pid = os.getpid()
    cid = task.chunk.chunk_id
    board = _board(task)
    if board is not None:
        board.set(cid, "pid", pid)
        board.set(cid, "started_ns", time.time_ns())
        board.set(cid, "rows_read", 0)
        board.set(cid, "rows_written", 0)
        board.set(cid, "bytes_read", 0)
        board.set(cid, "arrow_bytes", 0)
    clock = ChunkClock()
    try:
        read = [0]
        if task.copy_columns:
            written = _relay(task, board, read, clock)
        else:
            written = _target(task).write_chunk(
                task.job_id,
                cid,
                task.chunk.bounds,
                source_batches(task, board, read, clock),
                lambda: read[0],
                verify=task.verify,
                layout=task.write,
                mark_name=task.mark_name,
            )
        if board is not None:
            board.set(cid, "ended_ns", time.time_ns())
        if written is None:  # committed before: by an earlier attempt, run or a zombie
            if board is not None:
                board.set(cid, "rows_written", 0)
            elapsed = time.monotonic() - started
            return ChunkResult.done(
                cid, 0, 0, attempts=task.attempt, duration_s=elapsed, pid=pid, earlier=True
            )
        elapsed = time.monotonic() - started
        return dataclasses.replace(
            ChunkResult.done(
                cid,
                read[0],
                written.rows,
                attempts=task.attempt,
                duration_s=elapsed,
                pid=pid,
                checksum=written.checksum,
                # counted by the read this commit holds (a relayed chunk rejects nothing)
                rejected=0 if task.copy_columns else _source(task).rejected(cid),
            ),
            **_timings(clock, elapsed, written.verify_s),
        )
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        error = error_record(exc)
        if error.transient:
            _drop_target(task)  # the connection may be dead: reconnect on the next chunk
            _drop_source(task)
        if os.environ.get("ARROWMAPPER_DEBUG"):
            traceback.print_exception(printable(exc))
        if board is not None:
            board.set(cid, "ended_ns", time.time_ns())
        elapsed = time.monotonic() - started
        return dataclasses.replace(
            ChunkResult.failed(
                cid, error, attempts=task.attempt, duration_s=elapsed, pid=pid
            ),
            **_timings(clock, elapsed, 0.0),
        )


def _timings(clock: ChunkClock, elapsed: float, verify_s: float) -> dict[str, Any]:
    """A ChunkResult's measured fields: Arrow bytes read and seconds per phase (the write is
    what the chunk's time leaves after reading, transforming and verifying)."""
    return {
        "bytes_read": clock.arrow_bytes,
        "read_s": clock.read_s,
        "transform_s": clock.transform_s,
        "write_s": max(0.0, elapsed - clock.read_s - clock.transform_s - verify_s),
        "verify_s": verify_s,
    }


def _warm_up() -> None:
    """Import the drivers now, while the coordinator is still planning (arrowmapper.adbc, not
    the ADBC DB-API: that one pulls in pyarrow.dataset, and pandas when installed)."""
    import importlib

    for name in ("connectorx", "arrowmapper.adbc", "adbc_driver_postgresql", "adbc_driver_sqlite"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def worker_main(conn: Any) -> None:
    """Loop of a worker process: receive a task, send its result; stop on None or EOF.

    Ctrl-C reaches the whole process group; a worker ignores it: the coordinator decides (it
    stops its workers, and what they had not committed is rolled back by the server)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _warm_up()
        # what the imports made lives as long as the process: keep it out of the collector's
        # passes (py-spy showed ~3% of a worker's main thread in gc_collect_main)
        gc.freeze()
        _serve(conn)
    finally:
        release_worker_state()
        flush_spans()


def _serve(conn: Any) -> None:
    parent = os.getppid()
    while True:
        try:
            while not conn.poll(1.0):
                if os.getppid() != parent:  # the coordinator died: stop taking work
                    return
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        result = run_chunk(task)
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            return


def release_worker_state() -> None:
    """Close this process's cached sources, target connections and progress-board handles."""
    for target in _TARGETS.values():
        target.close()
    for board in _BOARDS.values():
        board.close()
    for source in _SOURCES.values():
        source.close()
    _TARGETS.clear()
    _BOARDS.clear()
    _SOURCES.clear()


__all__ = ["ChunkState", "ChunkTask", "run_chunk", "worker_main"]
