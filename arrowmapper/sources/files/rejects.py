"""Rows a file source rejected (``bad_rows``): counted per chunk, and with ``bad_rows="file"``
written to the chunk's side file, ``<rejects>/<job id>/chunk-<chunk id>.csv``, a CSV file with
the columns ``file``, ``line`` (the physical line the row starts on, empty when it is not known),
``reason`` and ``raw`` (the row's text as the file holds it).

**Exactly once per committed chunk.** A chunk's rejected rows are written to a temporary file
beside the side file while the chunk is read; once every row is read -- after the chunk's last
batch, before the target commits the chunk's transaction -- the temporary file is flushed to
disk and renamed over ``chunk-<n>.csv`` (a chunk with no rejected row removes it instead). A
failed attempt leaves nothing (its temporary file is removed; a worker killed outright leaves a
``.chunk-<n>.csv.*.tmp`` that nothing reads); a retried or resumed chunk reads the same rows
again and replaces its file whole, so its rows are never in it twice. A chunk split in two
after its worker ran out of memory removes the file of the chunk it replaces.

The window that remains: the rename happens before the commit. If the commit then fails, or the
worker dies between the two, ``chunk-<n>.csv`` exists for a chunk the ledger does not hold until
the chunk is retried or the job resumed (which writes it again). A job left unfinished there can
leave one side file too many: a side file counts only when its chunk id is in the ledger
(``arrowmapper_ledger``) as committed.
"""

from __future__ import annotations

import contextlib
import csv
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the side file's columns
COLUMNS: tuple[str, ...] = ("file", "line", "reason", "raw")


@dataclass(frozen=True)
class Rejected:
    """One rejected row: its file, the line it starts on (None: not known), why, its text."""

    path: str
    line: int | None
    reason: str
    raw: str


class Rejects:
    """The rows one chunk's read rejected: counted, and handed to ``keep`` (the side file's
    writer) when given."""

    def __init__(self, keep: SideFile | None = None) -> None:
        self.count = 0
        self._keep = keep

    @property
    def keeps(self) -> bool:
        """Whether the rows themselves are wanted (else only counted: no line is looked up)."""
        return self._keep is not None

    def add(self, row: Rejected) -> None:
        self.count += 1
        if self._keep is not None:
            self._keep.write(row)

    def skip(self, n: int) -> None:
        """``n`` rows rejected whose details nobody keeps."""
        self.count += n


def rejects_folder(rejects: str, job_id: str) -> Path:
    """The folder of a job's side files (a job id is letters, digits and ``_.:-``; one that is
    only dots is not taken as a folder above)."""
    name = job_id if job_id.strip(".") else f"job-{job_id}"
    return Path(rejects) / name


class SideFile:
    """The side file of one chunk, written to a temporary name and renamed into place by
    :meth:`commit` (see the module's text)."""

    def __init__(self, folder: Path, chunk_id: int, replaces: tuple[int, ...] = ()) -> None:
        self.folder = folder
        self.final = folder / f"chunk-{chunk_id}.csv"
        self.tmp = folder / f".chunk-{chunk_id}.csv.{os.getpid()}-{threading.get_ident()}.tmp"
        self.replaces = replaces
        self._fh: Any = None
        self._csv: Any = None
        self._done = False

    def write(self, row: Rejected) -> None:
        if self._csv is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._csv = csv.writer(self._fh)
            self._csv.writerow(COLUMNS)
        self._csv.writerow([row.path, "" if row.line is None else row.line, row.reason, row.raw])

    def commit(self) -> None:
        """Every row of the chunk is read: its rejected rows become ``chunk-<n>.csv`` (durably:
        flushed, renamed, the folder synced), or that file goes when there were none."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
            os.replace(self.tmp, self.final)
        elif self.final.exists():
            self.final.unlink()
        for old in self.replaces:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / f"chunk-{old}.csv").unlink()
        if self.folder.exists():
            _sync_folder(self.folder)
        self._done = True

    def discard(self) -> None:
        """The read did not finish: its temporary file goes (a no-op after :meth:`commit`)."""
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None
        if not self._done:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["COLUMNS", "Rejected", "Rejects", "SideFile", "rejects_folder"]
