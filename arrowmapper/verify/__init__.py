"""Re-checking a finished job against its source: :func:`verify` (``arrowmapper verify``).

Per chunk of the job's stored plan, up to three independent checks:

* **counts**: the rows the chunk's query returns now, what the ledger says was read and
  written, and the rows the target holds for the chunk (found by its locator: the PostgreSQL
  transaction that wrote them, or a SQLite rowid range).
* **reader checksums**: the chunk is read again exactly as the job read it (connectorx, the
  job's transform, the cast to the target's types) and the order-independent checksum of
  those rows is compared with the target's rows and, for ``verify=True`` jobs, the ledger's.
  This catches a write that changed or lost a value, but not a value the *reader* changed:
  it would change it again in the same way.
* **server checksums** (PostgreSQL source and target, no transform): the source server
  hashes the text of each of the chunk's rows, rendered in the target's column types, and
  sums the hashes; the target server does the same over the rows the chunk committed. Neither
  side goes through connectorx, Arrow or Polars, so a value the reader changed (as connectorx
  does with ``infinity``) shows up as a mismatch.

:attr:`VerifyReport.checks_done` names the checks that ran. The report's records are in
:mod:`.report`, the per-chunk checks in :mod:`.chunks`, the server checksums in :mod:`.server`.
"""

from __future__ import annotations

from ..config import check_reachable, parse_uri
from ..errors import ArrowMapperError, ConfigError, redact
from ..plan import Plan
from ..run.prepare import output_schema, stored_plan, table_ref, write_layout
from ..sources import open_source, source_endpoint
from ..targets import TableRef, check_job_id, open_target
from ..transform import TransformLike, normalize
from .chunks import check_chunk, merge_shared_locators
from .report import COUNTS, READER, SERVER, ChunkCheck, VerifyReport
from .server import no_server_checksums, server_checksums

__all__ = [
    "COUNTS",
    "READER",
    "SERVER",
    "ChunkCheck",
    "VerifyReport",
    "merge_shared_locators",
    "verify",
]


def verify(
    source: str,
    target: str,
    job_id: str,
    *,
    schema: str | None = None,
    transform: TransformLike = None,
    checksums: bool = True,
) -> VerifyReport:
    """Re-check a finished job, chunk by chunk: the rows in the source now, what the ledger says
    was read and written, and the rows the target holds for that chunk.

    With ``checksums`` (the default) each chunk is also read from the source again, transformed
    (pass the job's ``transform``) and cast like the job did, and its order-independent checksum
    is compared with the chunk's rows in the target and, for jobs run with ``verify=True``, with
    the checksum in the ledger. When source and target are both PostgreSQL and there is no
    transform, both servers also checksum the chunk's rows themselves (each row's text in the
    target's column types), which catches a value the reader changed. ``checksums=False``
    compares counts only. :attr:`VerifyReport.checks_done` names the checks that ran.
    """

    check_job_id(job_id)
    src, dst = source_endpoint(source), parse_uri(target, "target")
    check_reachable(src, "source")
    check_reachable(dst, "target")
    spec_t = normalize(transform)
    lookup = open_target(dst, table_ref(dst, schema, "_"))
    try:
        stored = stored_plan(lookup, job_id)
        if stored is None:
            where = f"schema {schema!r}" if schema else "the default schema"
            raise ConfigError(
                f"no job {job_id!r} in the ledger of {dst.redacted} ({where}); "
                "pass the schema the job loaded into"
            )
        table_name, plan_json = stored
        ledger = lookup.ledger(job_id)
        emptied = lookup.emptied_by(job_id)
    finally:
        lookup.close()
    tschema, _, tname = table_name.rpartition(".")
    tgt = open_target(dst, TableRef(tschema or None, tname, dst.dialect))
    try:
        exists = tgt.table_exists()
    except Exception:
        tgt.close()
        raise
    if not exists:
        tgt.close()
        raise ConfigError(
            f"job {job_id!r} loaded {table_name}, which no longer exists in {dst.redacted}: "
            "nothing to verify (a replace job that never swapped leaves no table; one that "
            "finished names its final table)"
        )
    if emptied is not None:  # its rows are gone: comparing would report every chunk empty
        try:
            return VerifyReport(job_id, table_name, (), tgt.row_count(), (), (), None, emptied)
        finally:
            tgt.close()
    done, skipped = [COUNTS], []
    try:
        target_rows = tgt.row_count()
        plan = Plan.from_json(plan_json)
        reader = open_source(src)
        # each chunk's rows are counted too: they must add up to the query's
        layout = reader.describe(plan.query)
        source_total = reader.count_rows(plan.query, None, layout)
        write = None
        if checksums:  # read and cast the source exactly as the job did
            try:
                out_schema, _, _ = output_schema(reader.probe(plan.query, layout), spec_t)
                write = write_layout(tgt, out_schema, (), layout.session)
                done.append(READER)
            except ArrowMapperError as exc:
                if exc.kind != "data":
                    raise
                # the source now holds a value the job would refuse (infinity, ...): the
                # reader cannot check, the servers still can
                skipped.append(f"reader checksums: {redact(str(exc))}")
        chunks, ledger = merge_shared_locators(plan.chunks, ledger)
        server: dict[int, tuple[str, str | None]] = {}
        if checksums:
            why_not = no_server_checksums(src, tgt, spec_t, layout)
            if why_not is None:
                try:
                    server = server_checksums(src, tgt, chunks, ledger, layout)
                    done.append(SERVER)
                except Exception as exc:  # e.g. a type with no cast between the two sides
                    tgt.rollback()
                    text = " ".join(redact(str(exc)).split())[:300]
                    skipped.append(f"server checksums: the servers could not compute them ({text})")
            else:
                skipped.append(f"server checksums: {why_not}")
        with reader:
            checks = [
                check_chunk(
                    reader,
                    tgt,
                    chunk,
                    ledger.get(chunk.chunk_id),
                    spec_t,
                    write,
                    layout if layout.columns else None,
                    server.get(chunk.chunk_id),
                )
                for chunk in chunks
            ]
    finally:
        tgt.close()
    return VerifyReport(
        job_id, table_name, tuple(checks), target_rows, tuple(done), tuple(skipped), source_total
    )
