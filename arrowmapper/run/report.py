"""Result records: one :class:`ChunkResult` per chunk, one :class:`JobResult` per job.

Both are frozen and picklable: a ChunkResult is what a worker process sends back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

from ..errors import ErrorKind, ErrorRecord
from .progress import human_bytes

if TYPE_CHECKING:
    from .spec import JobSpec


@dataclass(frozen=True)
class ChunkResult:
    """The outcome of one attempt at one chunk (or, in a JobResult, of its last attempt)."""

    chunk_id: int
    success: bool
    rows_read: int = 0
    rows_written: int = 0
    duration_s: float = 0.0
    attempts: int = 1
    error: str | None = None
    transient: bool = False
    sqlstate: str | None = None
    pid: int | None = None
    already_committed: bool = False
    checksum: str | None = None
    kind: str | None = None  # the error's kind (errors.ErrorKind) when it failed
    #: rows the source skipped as bad (a file source's ``bad_rows``), not in ``rows_read``
    rows_rejected: int = 0
    #: Arrow buffer bytes of the batches read from the source (before the transform)
    bytes_read: int = 0
    #: seconds inside the source's reader, inside the transform (and the cast to the target's
    #: types), in the write (ingest, ledger row, commit: the rest of ``duration_s``), and
    #: reading the chunk back to verify it
    read_s: float = 0.0
    transform_s: float = 0.0
    write_s: float = 0.0
    verify_s: float = 0.0

    @classmethod
    def done(
        cls,
        chunk_id: int,
        rows_read: int,
        rows_written: int,
        *,
        attempts: int,
        duration_s: float = 0.0,
        pid: int | None = None,
        checksum: str | None = None,
        earlier: bool = False,
        rejected: int = 0,
    ) -> ChunkResult:
        """A successful attempt (``earlier``: the chunk was committed by an earlier one;
        ``rejected``: rows its source skipped as bad)."""
        return cls(
            chunk_id,
            True,
            rows_read,
            rows_written,
            duration_s,
            attempts,
            pid=pid,
            already_committed=earlier,
            checksum=checksum,
            rows_rejected=rejected,
        )

    @classmethod
    def failed(
        cls,
        chunk_id: int,
        error: ErrorRecord,
        *,
        attempts: int,
        duration_s: float = 0.0,
        rows_read: int = 0,
        pid: int | None = None,
    ) -> ChunkResult:
        """A failed attempt, with its classified error."""
        return cls(
            chunk_id,
            False,
            rows_read,
            0,
            duration_s,
            attempts,
            error=error.message,
            transient=error.transient,
            sqlstate=error.sqlstate,
            pid=pid,
            kind=error.kind,
        )

    @property
    def error_record(self) -> ErrorRecord | None:
        """The failure as a typed record (None when the attempt succeeded)."""
        if self.success:
            return None
        kind = cast("ErrorKind", self.kind or "failed")
        return ErrorRecord(kind, self.transient, self.sqlstate, self.error or "")

    @property
    def rows_processed(self) -> int:
        """Rows written by this chunk (the existing executor's name)."""
        return self.rows_written

    @property
    def duration_seconds(self) -> float:
        """Seconds spent on the chunk (the existing executor's name)."""
        return self.duration_s


@dataclass(frozen=True)
class PhaseTimes:
    """Seconds per phase of a job.

    ``connect_s``, ``plan_s``, ``preflight_s`` and ``worker_start_s`` are wall time in the
    coordinator (reaching the servers; describing, sampling and planning the query; the checks,
    the ledger claim and the table; starting the workers). ``read_s``, ``transform_s``,
    ``write_s`` and ``verify_s`` are summed over the chunks' attempts (failed ones included),
    so with N workers they add up to about N times the wall time they overlap.
    """

    connect_s: float = 0.0
    plan_s: float = 0.0
    preflight_s: float = 0.0
    worker_start_s: float = 0.0
    read_s: float = 0.0
    transform_s: float = 0.0
    write_s: float = 0.0
    verify_s: float = 0.0

    def line(self) -> str:
        """The phases as one line: ``connect 0.01 s, plan 0.20 s, ...``."""
        return ", ".join(
            f"{f.name[:-2].replace('_', ' ')} {getattr(self, f.name):.2f} s" for f in fields(self)
        )


@dataclass(frozen=True)
class JobResult:
    """What a job did: rows, chunks, time, and every chunk's final result."""

    job_id: str
    table: str
    strategy: str
    strategy_reason: str
    chunks: int
    rows_read: int
    rows_written: int
    elapsed_s: float
    chunk_results: tuple[ChunkResult, ...] = field(default_factory=tuple)
    failed_chunks: tuple[int, ...] = ()
    skipped_chunks: tuple[int, ...] = ()
    workers: int = 1
    verified: bool = False
    verification_failures: tuple[str, ...] = ()
    attempt_errors: tuple[str, ...] = ()  # every failed attempt, including retried ones
    notes: tuple[str, ...] = ()  # what the coordinator decided on the way (fewer workers, ...)
    #: rows the source skipped as bad in the chunks this run committed (``bad_rows``)
    rows_rejected: int = 0
    #: Arrow buffer bytes read from the source by the chunks this run committed
    bytes_read: int = 0
    #: seconds per phase (coordinator phases wall time; chunk phases summed over attempts)
    phases: PhaseTimes = field(default_factory=PhaseTimes)
    #: how the chunks travelled: ``arrow`` (read, transform, write Arrow batches) or ``copy``
    #: (each chunk's binary COPY stream relayed undecoded), and why
    path: str = "arrow"
    path_reason: str = ""

    @classmethod
    def collect(
        cls,
        spec: JobSpec,
        results: Iterable[ChunkResult],
        *,
        chunks: int,
        elapsed_s: float,
        failed_chunks: tuple[int, ...],
        workers: int,
        verification_failures: tuple[str, ...],
        attempt_errors: tuple[str, ...],
        notes: tuple[str, ...],
        attempts: Iterable[ChunkResult] = (),
        phases: Mapping[str, float] | None = None,
    ) -> JobResult:
        """The job's result from each chunk's last result (rows count successful ones);
        ``attempts``: every attempt's result (their phase seconds are summed; default: the
        last ones), ``phases``: the coordinator's phase seconds."""
        ordered = tuple(sorted(results, key=lambda r: r.chunk_id))
        ok = [r for r in ordered if r.success]
        tried = list(attempts) or list(ordered)
        times = dict(phases or {})
        for name in ("read_s", "transform_s", "write_s", "verify_s"):
            times[name] = times.get(name, 0.0) + sum(getattr(r, name) for r in tried)
        return cls(
            job_id=spec.job_id,
            table=(spec.final_table or spec.table).display,  # never a replace job's stage
            strategy=spec.plan.strategy,
            strategy_reason=spec.plan.reason,
            chunks=chunks,
            rows_read=sum(r.rows_read for r in ok),
            rows_written=sum(r.rows_written for r in ok),
            elapsed_s=elapsed_s,
            chunk_results=ordered,
            failed_chunks=failed_chunks,
            skipped_chunks=tuple(sorted(spec.committed)),
            workers=workers,
            verified=spec.verify,
            verification_failures=verification_failures,
            attempt_errors=attempt_errors,
            notes=notes,
            rows_rejected=sum(r.rows_rejected for r in ok),
            bytes_read=sum(r.bytes_read for r in ok),
            phases=PhaseTimes(**{k: round(v, 6) for k, v in times.items()}),
            path=spec.path,
            path_reason=spec.path_reason,
        )

    @property
    def success(self) -> bool:
        return not self.failed_chunks

    @property
    def rows_per_s(self) -> float:
        return self.rows_written / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def bytes_per_s(self) -> float:
        """Arrow bytes read per second of the job's elapsed time."""
        return self.bytes_read / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def errors(self) -> list[str]:
        return [
            f"chunk {r.chunk_id}: {r.error}"
            for r in self.chunk_results
            if not r.success and r.error
        ]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            success=self.success,
            rows_per_s=round(self.rows_per_s, 1),
            bytes_per_s=round(self.bytes_per_s, 1),
            errors=self.errors,
        )
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str)

    def summary(self) -> str:
        head = "OK" if self.success else f"FAILED ({_n(len(self.failed_chunks), 'chunk')} failed)"
        text = (
            f"{head}: job {self.job_id}: {_n(self.rows_written, 'row')} into {self.table} in "
            f"{self.elapsed_s:.2f} s ({self.rows_per_s:,.0f} rows/s); {_n(self.chunks, 'chunk')}, "
            f"strategy {self.strategy}, "
            + (_n(self.workers, "worker") if self.workers else "in this process (no workers)")
        )
        if self.bytes_read:
            text += f"; {human_bytes(self.bytes_read)} read (Arrow)"
        text += f"\n  time: {self.phases.line()}"
        if self.path == "copy":
            text += ", COPY fast path (binary stream relayed)"
        if self.rows_rejected:
            n = self.rows_rejected
            text += f"; {n:,} bad row{'s' if n != 1 else ''} rejected"
        if self.verified:
            n = len(self.verification_failures)
            text += f"; verified ({n} mismatch{'' if n == 1 else 'es'} re-run)"
        if self.skipped_chunks:
            text += f"; {_n(len(self.skipped_chunks), 'chunk')} already committed (resumed)"
        for note in self.notes:
            text += f"\n  note: {note}"
        for err in self.errors[:5]:
            text += f"\n  {err}"
        return text


def _n(count: int, word: str) -> str:
    """``1 chunk``, ``2 chunks``, ``1,000 rows``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"
