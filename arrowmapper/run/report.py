"""Result records: one :class:`ChunkResult` per chunk, one :class:`JobResult` per job.

Both are frozen and picklable: a ChunkResult is what a worker process sends back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


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

    @property
    def rows_processed(self) -> int:
        """Rows written by this chunk (the existing executor's name)."""
        return self.rows_written

    @property
    def duration_seconds(self) -> float:
        """Seconds spent on the chunk (the existing executor's name)."""
        return self.duration_s


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

    @property
    def success(self) -> bool:
        return not self.failed_chunks

    @property
    def rows_per_s(self) -> float:
        return self.rows_written / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def errors(self) -> list[str]:
        return [
            f"chunk {r.chunk_id}: {r.error}"
            for r in self.chunk_results
            if not r.success and r.error
        ]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(success=self.success, rows_per_s=round(self.rows_per_s, 1), errors=self.errors)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str)

    def summary(self) -> str:
        head = "OK" if self.success else f"FAILED ({len(self.failed_chunks)} chunks failed)"
        text = (
            f"{head}: {self.rows_written:,} rows into {self.table} in {self.elapsed_s:.2f} s "
            f"({self.rows_per_s:,.0f} rows/s); {self.chunks} chunks, strategy {self.strategy}, "
            f"{self.workers} workers"
        )
        if self.verified:
            text += f"; verified ({len(self.verification_failures)} mismatches re-run)"
        if self.skipped_chunks:
            text += f"; {len(self.skipped_chunks)} chunks already committed (resumed)"
        for note in self.notes:
            text += f"\n  note: {note}"
        for err in self.errors[:5]:
            text += f"\n  {err}"
        return text
