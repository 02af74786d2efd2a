"""What a running job tells the outside: Prometheus metrics, OpenTelemetry spans, log records.

* **Metrics** (``metrics_file`` / ``--metrics-file``, ``metrics_port`` / ``--metrics-port``):
  one :class:`prometheus_client.CollectorRegistry` per job, written atomically to a textfile
  (node-exporter textfile collector style) every few seconds and at the end, and served over
  HTTP while the job runs when a port is given. Labels are the job id, the target table and
  the phase or state: never a URI, so never a credential.
* **Spans**: ``arrowmapper.job`` for the job and ``arrowmapper.chunk`` per chunk attempt (its
  child) are made in the coordinator; the chunk span's W3C ``traceparent`` travels in the
  :class:`~arrowmapper.run.worker.ChunkTask`, and the worker's ``arrowmapper.chunk.work`` span
  is its child. Only ``opentelemetry-api`` is used, imported lazily: without it, or without a
  configured SDK (a TracerProvider), every span is a no-op.
* **Logs**: the ``arrowmapper`` logger (and its children); :func:`configure_logging` is what
  the CLI's ``--log-file`` and ``--log-json`` set up. Every line is redacted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..redact import redact

if TYPE_CHECKING:
    from .progress import ProgressSnapshot
    from .report import ChunkResult, JobResult
    from .spec import JobSpec

log = logging.getLogger("arrowmapper.telemetry")

#: seconds between two writes of the metrics textfile while a job runs
METRICS_FILE_INTERVAL = 2.0
#: the chunk-duration histogram's buckets (seconds)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
_PHASES = ("read", "transform", "write", "verify")


def _label(text: str) -> str:
    return redact(str(text))


class Metrics:
    """A job's Prometheus registry, its textfile and (optionally) its HTTP endpoint."""

    def __init__(
        self, job_id: str, table: str, path: str | None = None, port: int | None = None
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.path = path
        self.registry = CollectorRegistry()
        self.labels = {"job": _label(job_id), "table": _label(table)}
        names = ("job", "table")
        r = self.registry
        self.rows = Counter(
            "arrowmapper_rows",
            "Rows of committed chunks, by phase (read from the source, written to the target)",
            [*names, "phase"],
            registry=r,
        )
        self.bytes = Counter(
            "arrowmapper_bytes",
            "Arrow buffer bytes read from the source by committed chunks",
            [*names, "phase"],
            registry=r,
        )
        self.seconds = Counter(
            "arrowmapper_phase_seconds",
            "Seconds per phase: coordinator phases (wall) and chunk phases (summed over attempts)",
            [*names, "phase"],
            registry=r,
        )
        self.durations = Histogram(
            "arrowmapper_chunk_duration_seconds",
            "Seconds per chunk attempt",
            [*names, "outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "arrowmapper_retries", "Failed chunk attempts that were retried", names, registry=r
        )
        self.chunks = Gauge(
            "arrowmapper_chunks", "Chunks by state", [*names, "state"], registry=r
        )
        self.progress = Gauge(
            "arrowmapper_progress_ratio", "Rows written / rows expected (0..1)", names, registry=r
        )
        self.expected = Gauge(
            "arrowmapper_rows_expected",
            "Rows the job is expected to move (estimates corrected as chunks finish)",
            names,
            registry=r,
        )
        self.eta = Gauge("arrowmapper_eta_seconds", "Estimated seconds left", names, registry=r)
        self.finished = Gauge(
            "arrowmapper_job_finished", "1 once the job ended (see arrowmapper_job_success)",
            names, registry=r,
        )
        self.success = Gauge(
            "arrowmapper_job_success", "1 when the job ended with every chunk committed",
            names, registry=r,
        )
        self._server: Any = None
        self._written = 0.0
        if port is not None:
            from prometheus_client import start_http_server

            try:
                self._server, _ = start_http_server(port, registry=r)
            except OSError as exc:
                raise ConfigError(
                    f"metrics_port={port}: cannot serve the metrics there ({exc.strerror or exc}); "
                    "pick a free port, or drop metrics_port"
                ) from None
            log.info("metrics of job %s served on port %d", job_id, port)
        self.write(force=True)

    def chunk(self, result: ChunkResult, retried: bool) -> None:
        """One chunk attempt ended."""
        lb = self.labels
        outcome = "committed" if result.success else ("retried" if retried else "failed")
        self.durations.labels(**lb, outcome=outcome).observe(result.duration_s)
        for phase in _PHASES:
            self.seconds.labels(**lb, phase=phase).inc(getattr(result, f"{phase}_s"))
        if result.success:
            self.rows.labels(**lb, phase="read").inc(result.rows_read)
            self.rows.labels(**lb, phase="write").inc(result.rows_written)
            self.bytes.labels(**lb, phase="read").inc(result.bytes_read)
        if retried:
            self.retries.labels(**lb).inc()

    def phase(self, name: str, seconds: float) -> None:
        """A coordinator phase took ``seconds``."""
        self.seconds.labels(**self.labels, phase=name).inc(max(0.0, seconds))

    def states(self, counts: Mapping[str, int]) -> None:
        """Chunks per state, now."""
        for state, n in counts.items():
            self.chunks.labels(**self.labels, state=state).set(n)

    def snapshot(self, snap: ProgressSnapshot) -> None:
        """Progress and ETA from a progress snapshot."""
        lb = self.labels
        self.expected.labels(**lb).set(snap.rows_expected)
        self.progress.labels(**lb).set(snap.progress_percentage / 100.0)
        self.eta.labels(**lb).set(snap.eta_seconds if snap.eta_seconds is not None else -1)

    def end(self, result: JobResult) -> None:
        """The job ended."""
        self.finished.labels(**self.labels).set(1)
        self.success.labels(**self.labels).set(1 if result.success else 0)
        self.progress.labels(**self.labels).set(1.0 if result.success else 0.0)
        self.eta.labels(**self.labels).set(0)

    def write(self, force: bool = False) -> None:
        """Write the textfile (atomically: a temporary file renamed over it), at most every
        :data:`METRICS_FILE_INTERVAL` seconds unless ``force``."""
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._written < METRICS_FILE_INTERVAL:
            return
        self._written = now
        from prometheus_client import write_to_textfile

        try:
            write_to_textfile(self.path, self.registry)
        except OSError as exc:  # a full disk must not fail the job it reports on
            log.warning("could not write the metrics file %s: %s", self.path, exc)

    def close(self) -> None:
        """Stop serving (the textfile stays)."""
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.shutdown()
                self._server.server_close()
            self._server = None


def check_outputs(metrics_file: str | None, metrics_port: int | None) -> None:
    """Refuse, before anything runs, a metrics file whose folder does not exist and a metrics
    port something else listens on."""
    if metrics_file:
        folder = os.path.dirname(os.path.abspath(metrics_file))
        if not os.path.isdir(folder):
            raise ConfigError(
                f"metrics_file={metrics_file!r}: the folder {folder!r} does not exist; create "
                "it or write the metrics elsewhere"
            )
    if metrics_port is not None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("", metrics_port))
            except OSError as exc:
                raise ConfigError(
                    f"metrics_port={metrics_port}: cannot serve the metrics there "
                    f"({exc.strerror or exc}); pick a free port, or drop metrics_port"
                ) from None


# --------------------------------------------------------------------------- tracing


def _tracer() -> Any:
    """The arrowmapper tracer, or None when ``opentelemetry-api`` is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace.get_tracer("arrowmapper")


def traceparent(span: Any) -> str | None:
    """The W3C ``traceparent`` of ``span`` (None when it is not recording)."""
    if span is None:
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent")


@contextlib.contextmanager
def work_span(parent: str | None, attributes: Mapping[str, Any]) -> Iterator[Any]:
    """A worker's ``arrowmapper.chunk.work`` span, the child of the ``traceparent`` it was
    given (None when tracing is off: no span)."""
    tracer = _tracer() if parent else None
    if tracer is None:
        yield None
        return
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    ctx = TraceContextTextMapPropagator().extract({"traceparent": parent or ""})
    with tracer.start_as_current_span(
        "arrowmapper.chunk.work", context=ctx, attributes=dict(attributes)
    ) as span:
        yield span


def flush_spans() -> None:
    """Export the spans this process still buffers (a worker before it exits); nothing when
    OpenTelemetry was never imported here."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return
    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush is not None:
        with contextlib.suppress(Exception):
            flush(5_000)


def _error_status(span: Any, message: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, redact(message)))


def result_attributes(result: ChunkResult) -> dict[str, Any]:
    """A chunk attempt's span attributes: rows, bytes, the error (redacted)."""
    attrs: dict[str, Any] = {
        "arrowmapper.rows_read": result.rows_read,
        "arrowmapper.rows_written": result.rows_written,
        "arrowmapper.bytes_read": result.bytes_read,
        "arrowmapper.success": result.success,
    }
    if result.error:
        attrs["arrowmapper.error"] = redact(result.error)
        attrs["arrowmapper.error_kind"] = result.kind or "failed"
    return attrs


# --------------------------------------------------------------------------- the job's telemetry


class Telemetry:
    """A job's metrics and spans, driven by the coordinator (every method is a no-op for
    what is not configured, and none of them raises: telemetry must not fail a job)."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.job_id = spec.job_id
        self.metrics: Metrics | None = None
        c = spec.config
        path: str | None = getattr(c, "metrics_file", None)
        port: int | None = getattr(c, "metrics_port", None)
        if path or port:
            table = (spec.final_table or spec.table).display
            self.metrics = Metrics(spec.job_id, table, path, port)
            for name, seconds in spec.timings.items():
                self.metrics.phase(name.removesuffix("_s"), seconds)
        self.tracer = _tracer()
        self.job_span: Any = None
        self.chunk_spans: dict[int, Any] = {}
        if self.tracer is not None:
            self.job_span = self.tracer.start_span(
                "arrowmapper.job",
                attributes={
                    "arrowmapper.job_id": _label(spec.job_id),
                    "arrowmapper.table": _label((spec.final_table or spec.table).display),
                    "arrowmapper.strategy": spec.plan.strategy,
                    "arrowmapper.chunks": len(spec.plan.chunks),
                    "arrowmapper.workers": spec.workers,
                },
            )

    @property
    def watching(self) -> bool:
        """Whether progress reports feed anything here (the metrics)."""
        return self.metrics is not None

    def chunk_started(self, cid: int, attempt: int) -> str | None:
        """A chunk attempt starts: its span; returns the traceparent for its task."""
        if self.tracer is None or self.job_span is None:
            return None
        from opentelemetry import trace

        span = self.tracer.start_span(
            "arrowmapper.chunk",
            context=trace.set_span_in_context(self.job_span),
            attributes={
                "arrowmapper.job_id": _label(self.job_id),
                "arrowmapper.chunk_id": cid,
                "arrowmapper.attempt": attempt,
            },
        )
        self.chunk_spans[cid] = span
        return traceparent(span)

    def chunk_ended(self, result: ChunkResult, retried: bool) -> None:
        """A chunk attempt ended (successfully or not)."""
        if self.metrics is not None:
            self.metrics.chunk(result, retried)
        span = self.chunk_spans.pop(result.chunk_id, None)
        if span is not None:
            span.set_attributes(result_attributes(result))
            span.set_attribute("arrowmapper.retried", retried)
            if not result.success:
                _error_status(span, result.error or "failed")
            span.end()

    def chunk_split(self, cid: int, halves: list[int], why: str | None) -> None:
        """A chunk attempt's worker ran out of memory: the chunk was replaced by ``halves``."""
        if self.metrics is not None:
            self.metrics.retries.labels(**self.metrics.labels).inc()
        span = self.chunk_spans.pop(cid, None)
        if span is not None:
            span.set_attribute("arrowmapper.split_into", ",".join(map(str, halves)))
            _error_status(span, f"worker out of memory ({why or 'SIGKILL'}); chunk split")
            span.end()

    def phase(self, name: str, seconds: float) -> None:
        """A coordinator phase (``worker_start``) took ``seconds``."""
        if self.metrics is not None:
            self.metrics.phase(name, seconds)

    def progress(self, snap: ProgressSnapshot, states: Mapping[str, int]) -> None:
        """A progress report: the metrics' gauges, and the textfile every few seconds."""
        if self.metrics is not None:
            self.metrics.snapshot(snap)
            self.metrics.states(states)
            self.metrics.write()

    def end(self, result: JobResult | None, error: BaseException | None = None) -> None:
        """The job ended: the final textfile, the job span closed, the server stopped."""
        try:
            if self.metrics is not None:
                if result is not None:
                    self.metrics.end(result)
                self.metrics.write(force=True)
            for span in self.chunk_spans.values():  # interrupted attempts
                span.end()
            self.chunk_spans.clear()
            if self.job_span is not None:
                if result is not None:
                    self.job_span.set_attributes(
                        {
                            "arrowmapper.rows_read": result.rows_read,
                            "arrowmapper.rows_written": result.rows_written,
                            "arrowmapper.bytes_read": result.bytes_read,
                            "arrowmapper.failed_chunks": len(result.failed_chunks),
                            "arrowmapper.success": result.success,
                        }
                    )
                    if not result.success:
                        _error_status(self.job_span, result.errors[0] if result.errors else "")
                if error is not None:
                    self.job_span.set_attribute("arrowmapper.error", redact(str(error)))
                    _error_status(self.job_span, str(error))
                self.job_span.end()
                self.job_span = None
        finally:
            if self.metrics is not None:
                self.metrics.close()


# --------------------------------------------------------------------------- logging

LOGGERS = ("arrowmapper", "arrowmapper.telemetry")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and
    ``job_id`` / ``chunk_id`` when the record carries them; redacted."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in ("job_id", "chunk_id"):
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


class RedactingFormatter(logging.Formatter):
    """The plain format, every line redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JobContext(logging.Filter):
    """Stamps ``job_id`` on the records of a handler while a job runs (the coordinator sets
    :data:`current_job`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None and current_job[0] is not None:
            record.job_id = current_job[0]
        return True


#: the id of the job this process is coordinating now (for log records), or None
current_job: list[str | None] = [None]


def configure_logging(
    path: str | None, as_json: bool, level: int = logging.INFO
) -> logging.Handler | None:
    """A handler on the ``arrowmapper`` logger writing to ``path`` (stderr when None and
    ``as_json``), JSON lines with ``as_json``; None when neither is asked for."""
    if path is None and not as_json:
        return None
    handler: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler()
    )
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    handler.addFilter(JobContext())
    handler.setLevel(level)
    logger = logging.getLogger("arrowmapper")
    logger.addHandler(handler)
    if path is None:  # JSON on stderr: not the plain line as well
        logger.propagate = False
    if logger.getEffectiveLevel() > level:
        root = logging.getLogger()
        for other in root.handlers:  # the records now let through stay off their stderr
            if other.level == logging.NOTSET:
                other.setLevel(root.level)
        logger.setLevel(level)
    return handler


def remove_logging(handler: logging.Handler | None) -> None:
    """Undo :func:`configure_logging`: the handler off the ``arrowmapper`` logger, closed."""
    if handler is None:
        return
    logger = logging.getLogger("arrowmapper")
    logger.removeHandler(handler)
    logger.propagate = True
    handler.close()
