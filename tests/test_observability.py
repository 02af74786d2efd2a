"""Observability: bytes and seconds per phase in the result, progress by rows on a skewed key,
Prometheus metrics (textfile and HTTP), OpenTelemetry spans, JSON logs -- and never a
password in any of them. Real jobs on PostgreSQL, small."""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import arrowmapper as am
from arrowmapper import cli
from arrowmapper.run.progress import ChunkState, ProgressBoard, ProgressSnapshot
from tests.conftest import PG, with_userinfo

SECRET = "Sup3rSecretPw"


def skewed_source(pg: PG, name: str = "src") -> str:
    """5,000 rows; 4,000 of them have k below 1,000 (k from 0 to 9,999): equal-width ranges
    over k put 80% of the rows in the first one."""
    pg.execute(
        f"""
        CREATE TABLE {name} AS
        SELECT g AS id, CASE WHEN g <= 4000 THEN g / 4 ELSE 1000 + (g - 4000) * 9 END AS k,
               md5(g::text) AS label
        FROM generate_series(1, 5000) AS g
        """
    )
    return pg.t(name)


def secret_uri(pg: PG) -> str:
    return with_userinfo(pg.uri, "postgres", SECRET)  # trust auth: any password is let in


def test_skewed_key_progress_counts_rows_that_are_there(pg: PG) -> None:
    """The range holding 80% of the rows is estimated as such (not 1/5 of them), progress
    never claims more than 100% (nor 100% before the end), and the final estimate is the
    count."""
    src = skewed_source(pg)
    plan = am.plan_query(pg.uri, src, strategy="key", key="k", chunk_size=1_000)
    ests = [c.estimated_rows for c in plan.chunks]
    # five ranges and the NULL one (k is nullable), each counted
    assert ests == [4_111, 222, 222, 222, 223, 0], ests
    seen: list[ProgressSnapshot] = []
    r = am.map_query(
        pg.uri, src, pg.uri, "dst", schema=pg.schema, strategy="key", key="k",
        chunk_size=1_000, workers=1, progress=seen.append,
    )
    assert r.rows_written == 5_000 and seen
    for s in seen:
        assert s.rows_written <= s.rows_expected, s
        assert s.progress_percentage <= 100.0
        if not s.done:  # by rows: the big range done is most of the job, not a sixth
            assert s.progress_percentage < 100.0
            share = 100.0 * s.rows_written / s.rows_expected if s.rows_expected else 0.0
            assert s.progress_percentage == pytest.approx(min(99.99, share), abs=0.01)
    assert seen[-1].done and seen[-1].rows_expected == 5_000
    assert seen[-1].progress_percentage == 100.0 and seen[-1].eta_seconds == 0.0


def test_progress_estimates_are_corrected_as_chunks_finish() -> None:
    """A chunk estimated at 1,000 rows that writes 4,000: the expected total follows it, and
    the percentage is by rows (board only, no database)."""
    board = ProgressBoard.create(3)
    try:
        for cid in range(3):
            board.set(cid, "estimate", 1_000)
        board.move(0, ChunkState.RUNNING)
        board.set(0, "rows_written", 4_000)
        s = board.snapshot(0.0, now=10.0)
        assert s.rows_expected == 6_000 and s.progress_percentage == pytest.approx(66.67)
        assert s.eta_seconds == pytest.approx(5.0)  # 2,000 rows left at 400 rows/s
        board.move(0, ChunkState.DONE)
        for cid in (1, 2):
            board.move(cid, ChunkState.RUNNING)
            board.set(cid, "rows_written", 10)
            board.move(cid, ChunkState.DONE)
        s = board.snapshot(0.0, now=10.0)
        assert s.rows_expected == 4_020 == s.rows_written and s.progress_percentage == 100.0
    finally:
        board.close()


def test_result_reports_bytes_and_seconds_per_phase(pg: PG) -> None:
    src = skewed_source(pg)
    r = am.map_query(
        pg.uri, src, pg.uri, "dst", schema=pg.schema, key="id", strategy="key",
        chunk_size=2_500, workers=1, verify=True, path="arrow",  # the relay has no read phase
    )
    assert r.rows_written == 5_000 and len(r.chunk_results) == 3  # and the NULL one
    assert r.bytes_read == sum(c.bytes_read for c in r.chunk_results) > 5_000 * 8
    p = r.phases
    assert p.connect_s > 0 and p.plan_s > 0 and p.preflight_s > 0 and p.worker_start_s > 0
    assert p.read_s > 0 and p.transform_s > 0 and p.write_s > 0 and p.verify_s > 0
    for c in r.chunk_results:  # the phases of a chunk are parts of its time
        assert c.read_s + c.transform_s + c.write_s + c.verify_s == pytest.approx(c.duration_s)
    data = json.loads(r.to_json())
    assert data["bytes_read"] == r.bytes_read and data["phases"]["read_s"] == p.read_s
    assert "read (Arrow)" in r.summary() and "worker start" in r.summary()


def _families(text: str) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: dict[str, Any], sample: str, **labels: str) -> float:
    for fam in families.values():
        for s in fam.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no sample {sample} {labels}")


def test_metrics_file_and_port(pg: PG, tmp_path: Path) -> None:
    """The textfile holds rows, bytes, phases, the chunk-duration histogram and chunks by
    state; the HTTP endpoint serves the same registry while the job runs; no password."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = skewed_source(pg)
    path = tmp_path / "job.prom"
    served: list[str] = []

    def scrape(_: ProgressSnapshot) -> None:
        if not served:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                served.append(resp.read().decode())

    uri = secret_uri(pg)
    r = am.map_query(
        uri, src, uri, "dst", schema=pg.schema, strategy="key", key="k", chunk_size=1_000,
        workers=2, job_id="obs-metrics", metrics_file=str(path), metrics_port=port,
        progress=scrape,
    )
    text = path.read_text()
    assert SECRET not in text and served and SECRET not in served[0]
    assert "arrowmapper_rows_total" in served[0]
    fams = _families(text)
    lb = {"job": "obs-metrics", "table": f"{pg.schema}.dst"}
    assert _value(fams, "arrowmapper_rows_total", phase="write", **lb) == 5_000
    assert _value(fams, "arrowmapper_bytes_total", phase="read", **lb) == r.bytes_read
    assert _value(fams, "arrowmapper_chunk_duration_seconds_count", outcome="committed", **lb) == 6
    assert _value(fams, "arrowmapper_chunks", state="done", **lb) == 6
    assert _value(fams, "arrowmapper_job_success", **lb) == 1
    assert _value(fams, "arrowmapper_phase_seconds_total", phase="plan", **lb) > 0
    assert _value(fams, "arrowmapper_phase_seconds_total", phase="write", **lb) > 0
    assert not list(tmp_path.glob("job.prom.*"))  # the temporary file was renamed over it
    with pytest.raises(OSError):  # the server stopped with the job
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


@pytest.fixture(scope="module")
def spans() -> Any:
    """An in-memory span exporter on the global tracer provider (set once per process)."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.clear()


def test_spans_per_job_and_chunk(pg: PG, spans: Any) -> None:
    """A job span, a chunk span per attempt (its child, with the chunk's rows and bytes), and
    -- run in this process here, so its spans reach the exporter -- the worker's span, the
    child of its chunk's span through the traceparent in the task. No password."""
    spans.clear()
    src = skewed_source(pg)
    uri = secret_uri(pg)
    r = am.map_query(
        uri, src, uri, "dst", schema=pg.schema, strategy="key", key="k", chunk_size=1_000,
        workers=2, job_id="obs-spans",
    )
    got = spans.get_finished_spans()
    jobs = [s for s in got if s.name == "arrowmapper.job"]
    chunks = [s for s in got if s.name == "arrowmapper.chunk"]
    assert len(jobs) == 1 and len(chunks) == 6
    job = jobs[0]
    assert job.attributes["arrowmapper.job_id"] == "obs-spans"
    assert job.attributes["arrowmapper.rows_written"] == 5_000
    for c in chunks:
        assert c.parent is not None and c.parent.span_id == job.context.span_id
        assert c.context.trace_id == job.context.trace_id
        assert c.attributes["arrowmapper.attempt"] == 1
    assert sum(c.attributes["arrowmapper.rows_written"] for c in chunks) == 5_000
    assert sum(c.attributes["arrowmapper.bytes_read"] for c in chunks) == r.bytes_read
    assert SECRET not in repr([(s.name, dict(s.attributes or {})) for s in got])

    # in this process: the worker's span is the chunk span's child
    from arrowmapper.run.worker import ChunkTask, release_worker_state, run_chunk

    spans.clear()
    from arrowmapper import api

    prepared = api.prepare(uri, src, uri, "dst2", schema=pg.schema, strategy="none")
    from arrowmapper.run.telemetry import Telemetry

    tel = Telemetry(prepared.spec)
    parent = tel.chunk_started(0, 1)
    task = ChunkTask.for_job(
        prepared.spec, prepared.spec.plan.chunks[0], attempt=1, board_name=None, n_chunks=1,
        snapshot=None, traceparent=parent,
    )
    try:
        result = run_chunk(task)
    finally:
        release_worker_state()
    tel.chunk_ended(result, retried=False)
    tel.end(None)
    got = {s.name: s for s in spans.get_finished_spans()}
    work, chunk = got["arrowmapper.chunk.work"], got["arrowmapper.chunk"]
    assert work.parent is not None and work.parent.span_id == chunk.context.span_id
    assert work.attributes["arrowmapper.rows_written"] == 5_000


def test_cli_json_log_file_and_metrics_never_show_the_password(
    pg: PG, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = skewed_source(pg)
    uri = secret_uri(pg)
    log_file, prom = tmp_path / "job.log", tmp_path / "job.prom"
    root = logging.getLogger()
    before = [(h, h.level) for h in root.handlers]
    try:
        code = cli.main(
            [
                "run", "--source", uri, "--query", src, "--target", uri, "--table", "dst",
                "--schema", pg.schema, "--strategy", "key", "--key", "k", "--chunk-size",
                "1000", "--workers", "2", "--job-id", "obs-cli", "--json",
                "--log-file", str(log_file), "--log-json", "--metrics-file", str(prom),
            ]
        )
    finally:
        for h, level in before:
            h.setLevel(level)
    out = capsys.readouterr()
    assert code == 0, out.err
    data = json.loads(out.out)
    assert data["rows_written"] == 5_000 and data["bytes_read"] > 0
    assert set(data["phases"]) >= {"connect_s", "plan_s", "worker_start_s", "read_s", "write_s"}
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    assert any(x.get("job_id") == "obs-cli" for x in lines)
    for text in (log_file.read_text(), prom.read_text(), out.out, out.err):
        assert SECRET not in text
    assert not logging.getLogger("arrowmapper").handlers  # the CLI took its handler off


def test_a_busy_metrics_port_or_missing_folder_is_refused_before_anything_runs(
    pg: PG, tmp_path: Path
) -> None:
    import socket

    src = skewed_source(pg)
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(am.ConfigError, match=f"metrics_port={port}"):
            am.map_query(pg.uri, src, pg.uri, "dst", schema=pg.schema, metrics_port=port)
    with pytest.raises(am.ConfigError, match="does not exist"):
        am.map_query(
            pg.uri, src, pg.uri, "dst", schema=pg.schema,
            metrics_file=str(tmp_path / "nowhere" / "job.prom"),
        )
    assert pg.scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s", (pg.schema,)
    ) == 1  # only the source: no table, no ledger


def test_a_lost_worker_in_metrics_spans_and_json_log(
    pg: PG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spans: Any
) -> None:
    """Chunk 1's worker is SIGKILLed before its commit, once (taken for the OOM killer: the
    chunk is split in two and retried): the retry is counted, the lost attempt is an ERROR
    span naming its halves, the halves' spans are committed, and the JSON log's warning names
    the job and the chunk -- with no password anywhere."""
    from arrowmapper.run.telemetry import configure_logging

    monkeypatch.setenv("ARROWMAPPER_FAULT", "before_commit:1")
    monkeypatch.setenv("ARROWMAPPER_FAULT_MARKER", str(tmp_path / "fault"))
    spans.clear()
    src = skewed_source(pg)
    uri = secret_uri(pg)
    prom, log_file = tmp_path / "job.prom", tmp_path / "job.log"
    handler = configure_logging(str(log_file), True)
    assert handler is not None
    try:
        r = am.map_query(
            uri, src, uri, "dst", schema=pg.schema, strategy="key", key="k", chunk_size=1_000,
            workers=1, job_id="obs-retry", metrics_file=str(prom),
        )
    finally:
        logging.getLogger("arrowmapper").removeHandler(handler)
        handler.close()
    assert r.rows_written == 5_000 and (tmp_path / "fault").exists()
    fams = _families(prom.read_text())
    lb = {"job": "obs-retry", "table": f"{pg.schema}.dst"}
    assert _value(fams, "arrowmapper_retries_total", **lb) == 1
    assert _value(fams, "arrowmapper_chunk_duration_seconds_count", outcome="committed", **lb) == 7
    assert _value(fams, "arrowmapper_rows_total", phase="write", **lb) == 5_000
    assert _value(fams, "arrowmapper_chunks", state="done", **lb) == 7  # 6 - 1 + 2 halves
    chunk_spans = {
        s.attributes["arrowmapper.chunk_id"]: s
        for s in spans.get_finished_spans()
        if s.name == "arrowmapper.chunk"
    }
    lost = chunk_spans[1]
    assert not lost.status.is_ok and lost.attributes["arrowmapper.split_into"] == "6,7"
    assert chunk_spans[6].status.is_ok and chunk_spans[7].status.is_ok
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    split = [x for x in lines if x["level"] == "WARNING" and x.get("chunk_id") == 1]
    assert split and split[0]["job_id"] == "obs-retry" and "split" in split[0]["message"]
    attrs = repr([dict(s.attributes or {}) for s in spans.get_finished_spans()])
    for text in (prom.read_text(), log_file.read_text(), attrs):
        assert SECRET not in text


def test_the_compat_result_exposes_bytes_and_phases() -> None:
    from arrowmapper.compat import ParallelProcessingResult
    from arrowmapper.run.report import JobResult, PhaseTimes

    job = JobResult("j", "t", "key", "", 1, 10, 10, 1.0, bytes_read=80, phases=PhaseTimes(read_s=0.5))
    compat = ParallelProcessingResult.from_job(job, parallel=True)
    assert compat.bytes_read == 80 and compat.phases.read_s == 0.5
    assert "read 0.50 s" in job.summary() and "80 B read (Arrow)" in job.summary()
    failed = ParallelProcessingResult.failure(am.ConfigError("no"))
    assert failed.bytes_read == 0 and failed.phases == PhaseTimes()


SITECUSTOMIZE = """
import json, os
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class ToFile(SpanExporter):
    def export(self, spans):
        with open(os.environ["AM_TEST_SPANS"], "a") as fh:
            for s in spans:
                fh.write(json.dumps({
                    "name": s.name, "trace": s.context.trace_id, "id": s.context.span_id,
                    "parent": s.parent.span_id if s.parent else None,
                    "attributes": dict(s.attributes or {}),
                }) + "\\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ToFile()))
trace.set_tracer_provider(provider)
"""


def test_worker_spans_are_children_of_the_chunk_spans_across_processes(
    pg: PG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spans: Any
) -> None:
    """Workers configured from the environment (a sitecustomize here) record their spans; each
    is the child of the coordinator's span of its chunk attempt, in the job's trace: the
    traceparent crossed the process boundary in the task."""
    import os

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("AM_TEST_SPANS", str(tmp_path / "spans.jsonl"))
    spans.clear()
    src = skewed_source(pg)
    am.map_query(
        pg.uri, src, pg.uri, "dst", schema=pg.schema, strategy="key", key="k",
        chunk_size=2_500, workers=1, job_id="obs-cross",
    )
    mine = {s.context.span_id: s for s in spans.get_finished_spans() if s.name == "arrowmapper.chunk"}
    job = next(s for s in spans.get_finished_spans() if s.name == "arrowmapper.job")
    work = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    work = [w for w in work if w["name"] == "arrowmapper.chunk.work"]
    assert work and len(work) == len(mine)
    for w in work:
        parent = mine[w["parent"]]
        assert w["trace"] == job.context.trace_id
        assert w["attributes"]["arrowmapper.chunk_id"] == parent.attributes["arrowmapper.chunk_id"]
        assert w["attributes"]["arrowmapper.rows_written"] == parent.attributes["arrowmapper.rows_written"]
