"""Verification: per-chunk count + order-independent checksum, inside the chunk's transaction
(``verify=True``) and after the fact (``am.verify``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest

import arrowmapper as am
from arrowmapper.checksum import Checksum
from tests.conftest import PG


def _source(pg: PG, rows: int = 30_000) -> str:
    pg.execute(
        f"CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s, g * 0.25 AS f, "
        f"DATE '2020-01-01' + g % 500 AS d FROM generate_series(1, {rows}) g"
    )
    return pg.t("src")


def test_checksum_is_order_and_batch_independent() -> None:
    t = pa.table({"a": list(range(100)), "b": [str(i) for i in range(100)]})
    whole, parts = Checksum(), Checksum()
    whole.add(t)
    for piece in (t.slice(70), t.slice(0, 30), t.slice(30, 40)):
        parts.add(piece)
    assert whole.digest == parts.digest
    changed = Checksum()
    changed.add(t.set_column(1, "b", pa.array([str(i) for i in range(99)] + ["x"])))
    assert changed.digest != whole.digest


def test_verified_job_records_checksums_and_verifies_after_the_fact(pg: PG) -> None:
    src = _source(pg)
    r = am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        workers=2,
        chunk_size=5_000,
        verify=True,
        job_id="v-ok",
        path="arrow",  # the Arrow path's checksums (a relayed chunk keeps none in the ledger)
    )
    assert r.verified and not r.verification_failures and "verified" in r.summary()
    assert all(c.checksum and c.checksum.startswith("h1:") for c in r.chunk_results)
    stored = pg.query("SELECT checksum, locator FROM arrowmapper_ledger WHERE job_id = 'v-ok'")
    assert all(s and loc.startswith("xid:") for s, loc in stored)

    report = am.verify(pg.uri, pg.uri, "v-ok", schema=pg.schema)
    assert report.ok, report.summary()
    assert all(c.source_checksum == c.target_checksum == c.ledger_checksum for c in report.checks)

    pg.execute("UPDATE dst SET s = 'changed' WHERE id = 12345")  # a later writer touches a row
    pg.execute("INSERT INTO src VALUES (7, 'late', 0, DATE '2020-01-01')")  # the source grew
    report = am.verify(pg.uri, pg.uri, "v-ok", schema=pg.schema)
    bad = {c.chunk_id: c.problems for c in report.checks if not c.ok}
    assert len(bad) == 2, report.summary()
    assert any("target holds 4999 rows" in " ".join(p) for p in bad.values())
    assert any("source now has 5001 rows" in " ".join(p) for p in bad.values())
    counts = am.verify(pg.uri, pg.uri, "v-ok", schema=pg.schema, checksums=False)
    assert len([c for c in counts.checks if not c.ok]) == 2


def test_a_mismatch_is_rolled_back_rerun_and_reported(pg: PG) -> None:
    """A trigger tampers with one row the first time only (sequences ignore rollbacks)."""
    src = _source(pg, 12_000)
    pg.execute("CREATE TABLE dst (id integer, s text, f numeric, d date)")
    pg.execute("CREATE SEQUENCE tamper_once")
    pg.execute(f"""
        CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.id = 6001 AND nextval('{pg.schema}.tamper_once') = 1 THEN
            NEW.s := 'tampered';
          END IF;
          RETURN NEW;
        END $$""")
    pg.execute("CREATE TRIGGER tamper BEFORE INSERT ON dst FOR EACH ROW EXECUTE FUNCTION tamper()")
    r = am.map_query(
        pg.uri,
        src,
        pg.uri,
        "dst",
        schema=pg.schema,
        key="id",
        strategy="key",
        workers=2,
        chunk_size=3_000,
        verify=True,
        retry=am.RetryConfig(max_retries=2, base_delay=0.05),
    )
    assert r.success and len(r.verification_failures) == 1
    assert "checksum" in r.verification_failures[0]
    assert pg.scalar("SELECT COUNT(*) FROM dst WHERE s = 'tampered'") == 0
    assert pg.assert_same_rows(src, pg.t("dst")) == 12_000


def test_sqlite_target_uses_rowid_ranges(pg: PG, tmp_path: Path) -> None:
    src = _source(pg, 9_000)
    out = tmp_path / "v.db"
    r = am.map_query(
        pg.uri,
        src,
        f"sqlite://{out}",
        "dst",
        key="id",
        strategy="quantile",
        workers=2,
        chunk_size=2_000,
        verify=True,
        job_id="v-lite",
    )
    assert r.success and not r.verification_failures
    report = am.verify(pg.uri, f"sqlite://{out}", "v-lite")
    assert report.ok and report.target_rows == 9_000, report.summary()
    con = sqlite3.connect(out)
    locators = [loc for (loc,) in con.execute("SELECT locator FROM arrowmapper_ledger")]
    assert all(loc.startswith("rowid:") for loc in locators)
    con.execute("DELETE FROM dst WHERE id = 4321")
    con.commit()
    assert not am.verify(pg.uri, f"sqlite://{out}", "v-lite").ok


def test_a_mismatch_that_repeats_is_not_retried_again(pg: PG) -> None:
    """Found by review: a mismatch that will never go away ran every retry."""
    src = _source(pg, 4_000)
    pg.execute("CREATE TABLE dst (id integer, s text, f numeric, d date)")
    pg.execute("""
        CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.id = 1234 THEN NEW.s := 'tampered'; END IF;
          RETURN NEW;
        END $$""")
    pg.execute("CREATE TRIGGER tamper BEFORE INSERT ON dst FOR EACH ROW EXECUTE FUNCTION tamper()")
    with pytest.raises(am.JobFailed) as failed:
        am.map_query(
            pg.uri,
            src,
            pg.uri,
            "dst",
            schema=pg.schema,
            strategy="none",
            workers=1,
            verify=True,
            retry=am.RetryConfig(max_retries=5, base_delay=0.01),
        )
    (bad,) = [c for c in failed.value.result.chunk_results if not c.success]
    assert bad.attempts == 2 and "checksum" in (bad.error or "")
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 0


@pytest.mark.parametrize("target", ["postgresql", "sqlite"])
def test_replace_jobs_verify_and_a_later_replace_is_named(
    pg: PG, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    """A finished replace job verifies against the final table (the staging table is gone);
    an older job whose rows a later replace or truncate removed is reported as superseded,
    naming that job -- not as chunks holding 0 rows -- with its own CLI exit code."""
    from arrowmapper.cli import EXIT_FAILED, EXIT_OK, EXIT_SUPERSEDED, main

    src = _source(pg, rows=40)
    uri = pg.uri if target == "postgresql" else f"sqlite:///{tmp_path / 'r.db'}"
    where = {"schema": pg.schema} if target == "postgresql" else {}
    run = dict(key="id", strategy="key", chunk_size=20, workers=1, **where)
    am.map_query(pg.uri, src, uri, "dst", mode="replace", job_id="rep-1", **run)
    first = am.verify(pg.uri, uri, "rep-1", **where)
    assert first.ok and first.state == "ok" and len(first.checks) == 3, first.summary()

    am.map_query(pg.uri, src, uri, "dst", mode="replace", job_id="rep-2", **run)
    second = am.verify(pg.uri, uri, "rep-2", **where)  # replaced an existing table
    assert second.ok, second.summary()
    old = am.verify(pg.uri, uri, "rep-1", **where)
    assert old.state == "superseded" and not old.ok and not old.checks
    assert "'rep-2' (mode=replace" in old.summary() and "0 rows" not in old.summary()

    am.map_query(pg.uri, src, uri, "dst", mode="truncate", job_id="tr-3", **run)
    assert "'tr-3' (mode=truncate" in str(am.verify(pg.uri, uri, "rep-2", **where).superseded)

    cli = ["verify", "--source", pg.uri, "--target", uri]
    cli += ["--schema", pg.schema] if where else []
    assert main([*cli, "--job-id", "tr-3"]) == EXIT_OK
    assert main([*cli, "--job-id", "rep-1"]) == EXIT_SUPERSEDED != EXIT_FAILED
    assert "not checked: job 'rep-2'" in capsys.readouterr().out
    assert main([*cli, "--job-id", "rep-1", "--json"]) == EXIT_SUPERSEDED
    out = capsys.readouterr().out
    assert '"state": "superseded"' in out and "rep-2" in out
    if where:  # a table dropped since: said plainly, not a crash
        pg.execute("DROP TABLE dst")
        with pytest.raises(am.ArrowMapperError, match=r"dst, which no longer exists"):
            am.verify(pg.uri, uri, "tr-3", **where)
