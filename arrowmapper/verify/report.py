"""What :func:`~arrowmapper.verify.verify` found: a :class:`ChunkCheck` per chunk and the
job's :class:`VerifyReport`, with the words the report uses for each check."""

from __future__ import annotations

from dataclasses import dataclass

#: The checks :func:`verify` can run, in the words the report uses.
COUNTS = "row counts"
READER = "reader checksums (the chunk read again through connectorx, cast as the job did)"
SERVER = "server checksums (the source and target servers hash each row's text)"


@dataclass(frozen=True)
class ChunkCheck:
    """One chunk of a finished job: the source now, the ledger, and the target's rows.

    ``source_checksum``/``target_checksum``: the reader checksums (see the module's doc);
    ``server_source_checksum``/``server_target_checksum``: computed by the servers themselves;
    ``read_error``: why the chunk could not be read again the way the job read it.
    """

    chunk_id: int
    predicate: str
    source_rows: int
    rows_read: int | None
    rows_written: int | None
    target_rows: int | None = None
    source_checksum: str | None = None
    target_checksum: str | None = None
    ledger_checksum: str | None = None
    server_source_checksum: str | None = None
    server_target_checksum: str | None = None
    read_error: str | None = None

    @property
    def committed(self) -> bool:
        """Whether the ledger records the chunk as committed."""
        return self.rows_written is not None

    @property
    def problems(self) -> list[str]:
        """What is wrong with this chunk, one phrase each (empty: nothing)."""
        if not self.committed:
            return ["not committed"]
        found = []
        read = self.rows_read if self.rows_read is not None else self.rows_written
        if read != self.source_rows:
            found.append(f"source now has {self.source_rows} rows, {read} were read")
        if self.target_rows is not None and self.target_rows != self.rows_written:
            found.append(f"target holds {self.target_rows} rows, {self.rows_written} were written")
        sums = {x for x in (self.source_checksum, self.target_checksum, self.ledger_checksum) if x}
        if len(sums) > 1:
            found.append(
                f"checksums differ (source {self.source_checksum}, target "
                f"{self.target_checksum}, ledger {self.ledger_checksum})"
            )
        server = (self.server_source_checksum, self.server_target_checksum)
        if all(server) and server[0] != server[1]:
            found.append(
                f"the source server's checksum of the chunk's rows ({server[0]}) differs from "
                f"the target server's ({server[1]}): a value differs between source and target"
            )
        if self.read_error:
            found.append(f"the source cannot be read as the job read it: {self.read_error}")
        return found

    @property
    def ok(self) -> bool:
        """Whether the chunk passed every check that ran."""
        return not self.problems


@dataclass(frozen=True)
class VerifyReport:
    """The result of :func:`verify`: per-chunk checks and the target table's total."""

    job_id: str
    table: str
    checks: tuple[ChunkCheck, ...]
    target_rows: int
    checks_done: tuple[str, ...] = (COUNTS,)
    checks_skipped: tuple[str, ...] = ()  # a check that could not run, and why
    source_total: int | None = None  # the query's rows now, counted once (chunks must add up)
    #: why nothing was checked: a later job replaced or emptied the table (see ``state``)
    superseded: str | None = None

    @property
    def overlap(self) -> str | None:
        """Why the chunks do not add up to the query (rows in two chunks, or in none)."""
        if self.source_total is None:
            return None
        in_chunks = sum(c.source_rows for c in self.checks)
        if in_chunks == self.source_total:
            return None
        return (
            f"the chunks' queries hold {in_chunks:,} rows where the query holds "
            f"{self.source_total:,}: chunks overlap or miss rows"
        )

    @property
    def ledger_rows(self) -> int:
        """The rows the ledger says this job wrote."""
        return sum(c.rows_written or 0 for c in self.checks)

    @property
    def ok(self) -> bool:
        """Whether every chunk passed every check that ran, and the chunks add up (False
        where nothing could be checked: ``superseded``)."""
        if self.superseded:
            return False
        return all(c.ok for c in self.checks) and self.overlap is None

    @property
    def state(self) -> str:
        """``ok``; ``mismatch`` (a check failed); or ``superseded``: a later job replaced or
        emptied the table, so this job's rows are gone and nothing was compared."""
        if self.superseded:
            return "superseded"
        return "ok" if self.ok else "mismatch"

    def summary(self) -> str:
        """A few lines: the totals, the checks that ran, and each chunk that failed one."""
        if self.superseded:
            return f"job {self.job_id} -> {self.table}: not checked: {self.superseded}"
        bad = [c for c in self.checks if not c.ok]
        checked = "counts and checksums" if len(self.checks_done) > 1 else "counts"
        lines = [
            f"job {self.job_id} -> {self.table}: {len(self.checks)} chunks, "
            f"{len(self.checks) - len(bad)} match the source ({checked}); "
            f"ledger {self.ledger_rows:,} rows, table {self.target_rows:,} rows",
            f"  checked: {'; '.join(self.checks_done)}",
        ]
        lines.extend(f"  not checked: {why}" for why in self.checks_skipped)
        if self.overlap:
            lines.append(f"  {self.overlap}")
        for c in bad:
            lines.append(f"  chunk {c.chunk_id} ({c.predicate}): {'; '.join(c.problems)}")
        if self.target_rows != self.ledger_rows:
            lines.append(
                "  note: the table's row count differs from this job's ledger (other "
                "jobs or writers use the table, or the transform changes row counts)"
            )
        return "\n".join(lines)
