"""The COPY fast path: PostgreSQL -> PostgreSQL with no transform and identical built-in column
types relays each chunk's binary COPY stream undecoded, inside the chunk's exactly-once
transaction (real servers, real worker processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import arrowmapper as am
from arrowmapper.api import prepare
from arrowmapper.checksum import CopyDigest
from tests.conftest import PG

RETRY = am.RetryConfig(max_retries=2, base_delay=0.05)

# every kind of value whose binary form must survive the relay byte for byte; infinity and
# 24:00, which Arrow cannot carry, lie past the preflight's 1000-row sample (that still reads
# through Arrow and would refuse them): the relay carries them
MANY_TYPES = """
CREATE TABLE src (
    id int4 PRIMARY KEY, i2 int2, i8 int8, n numeric(20,6), nu numeric, f8 float8, f4 float4,
    t text, vc varchar(12), b bytea, ts timestamp, tz timestamptz, d date, tm time,
    iv interval, u uuid, j jsonb, ai int4[], at text[], ok boolean
);
INSERT INTO src SELECT g, (g % 30000)::int2, g::int8 * 1000000007, g * 1.000001,
    CASE WHEN g % 5 = 0 THEN 'NaN'::numeric ELSE g / 7.0 END,
    CASE g % 4 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN 'Infinity' WHEN 2 THEN '-Infinity'
        ELSE g / 3.0 END,
    g / 9.0,
    CASE WHEN g % 6 = 0 THEN NULL ELSE 'ünïcödé ✓ ''quoted'' "dq" \\ ' || g END,
    left('ß' || g, 12), decode(md5(g::text), 'hex'),
    CASE WHEN g = 2500 THEN 'infinity'::timestamp ELSE '2026-01-01'::timestamp + g * interval '1 s' END,
    '2026-01-01 00:00+05'::timestamptz - g * interval '1 min',
    CASE WHEN g = 2600 THEN '-infinity'::date ELSE '2000-02-29'::date + g END,
    CASE WHEN g = 2700 THEN '24:00'::time ELSE '00:00'::time + g * interval '1 s' END,
    make_interval(months => g % 13, days => g % 40, secs => g / 1000.0),
    md5(g::text)::uuid, jsonb_build_object('g', g, 'a', jsonb_build_array(1, 'x', NULL)),
    ARRAY[g, NULL, -g], ARRAY['a', NULL, 'ü' || g], g % 3 = 0
FROM generate_series(1, 3000) g;
"""


def _many(pg: PG) -> str:
    pg.execute(MANY_TYPES)
    return pg.t("src")


def _types(pg: PG, table: str) -> list[tuple[str, str]]:
    return pg.query(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
        f"attrelid = '{pg.schema}.{table}'::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum"
    )


def _relay_sleeps(seconds: float) -> str:
    """A WHERE condition that sleeps per row only in the relay's source COPY (its connection
    is named arrowmapper; the preflight's sample and probes are not), keeping tests short."""
    return (
        "pg_sleep(CASE WHEN current_setting('application_name') = 'arrowmapper' "
        f"THEN {seconds} ELSE 0 END)::text = ''"
    )


def _job(pg: PG, src: str, **kw: Any) -> am.JobResult:
    options: dict[str, Any] = dict(
        schema=pg.schema, key="id", strategy="key", workers=1, chunk_size=700, retry=RETRY
    )
    options.update(kw)
    return am.map_query(pg.uri, src, pg.uri, options.pop("table", "dst"), **options)


def test_copy_path_moves_many_types_exactly_into_a_table_of_the_same_types(pg: PG) -> None:
    src = _many(pg)
    r = _job(pg, src, verify=True, workers=2)
    assert r.path == "copy", r.path_reason
    assert r.success and r.rows_written == r.rows_read == 3000
    assert _types(pg, "dst") == _types(pg, "src")  # the created table keeps the exact types
    assert pg.assert_same_rows(src, pg.t("dst")) == 3000
    # byte for byte, not just equal: the text of every value is the same
    text = "SELECT md5(string_agg(whole::text, ',' ORDER BY id)) FROM {} whole"
    assert pg.scalar(text.format(src)) == pg.scalar(text.format(pg.t("dst")))
    ledger = pg.query(
        "SELECT rows, rows_read, checksum FROM arrowmapper_ledger WHERE job_id = %s", (r.job_id,)
    )
    assert len(ledger) == r.chunks > 1 and sum(row[0] for row in ledger) == 3000
    assert all(row[0] == row[1] and row[2] is None for row in ledger)


def test_the_arrow_path_is_taken_when_asked_or_when_copy_cannot_be(pg: PG) -> None:
    pg.execute("CREATE TABLE src AS SELECT g AS id, g * 0.5 AS f FROM generate_series(1, 500) g")
    arrow = _job(pg, pg.t("src"), path="arrow")
    assert arrow.path == "arrow" and "asked" in arrow.path_reason
    pg.execute("CREATE TYPE mood AS ENUM ('ok', 'sad')")
    pg.execute("CREATE TABLE e AS SELECT g AS id, 'ok'::mood AS m FROM generate_series(1, 50) g")
    enum = _job(pg, pg.t("e"), table="dst3")
    assert enum.path == "arrow" and "'m' is of the user-defined type" in enum.path_reason
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 500
    assert pg.assert_same_rows(pg.t("e"), pg.t("dst3")) == 50


def test_path_copy_refuses_naming_the_columns_or_the_transform(pg: PG) -> None:
    pg.execute("CREATE TABLE src (id int PRIMARY KEY, n numeric(12,2), t text)")
    pg.execute("INSERT INTO src SELECT g, g, 'x' FROM generate_series(1, 100) g")
    pg.execute("CREATE TABLE dst (id int PRIMARY KEY, n numeric(14,2), t varchar(5))")
    args = (pg.uri, pg.t("src"), pg.uri)
    with pytest.raises(am.ConfigError) as refused:
        prepare(*args, "dst", schema=pg.schema, path="copy")
    text = str(refused.value)
    assert "'n' is numeric(12,2) in the source but numeric(14,2)" in text
    assert "'t' is text in the source but character varying(5)" in text
    with pytest.raises(
        am.ConfigError, match=r"has a transform \(import: tests.helpers:slow_identity"
    ):
        prepare(
            *args, "fresh", schema=pg.schema, path="copy", transform="tests.helpers:slow_identity"
        )
    # refused before any row moved: nothing written, nothing claimed, nothing created
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 0
    assert pg.scalar("SELECT COUNT(*) FROM arrowmapper_jobs") == 0
    assert pg.scalar("SELECT to_regclass(%s) IS NULL", (pg.t("fresh"),))
    # the same table with matching types goes through copy
    r = _job(pg, pg.t("src"), table="same", path="copy")
    assert r.path == "copy" and pg.assert_same_rows(pg.t("src"), pg.t("same")) == 100


@pytest.mark.fault
@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_a_worker_killed_in_the_commit_window_leaves_exact_rows(
    pg: PG, tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL just before or just after a relayed chunk's COMMIT: retried (or found in the
    ledger), never duplicated."""
    monkeypatch.setenv("ARROWMAPPER_FAULT", f"{point}:2")
    monkeypatch.setenv("ARROWMAPPER_FAULT_MARKER", str(tmp_path / "fault"))
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, 6000) g"
    )
    r = _job(pg, pg.t("src"), chunk_size=1000, job_id="kill-" + point)
    assert (tmp_path / "fault").read_text().startswith(f"{point}:2:")
    assert r.path == "copy" and r.success
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 6000
    assert pg.scalar("SELECT COUNT(*) FROM arrowmapper_ledger WHERE job_id = %s", (r.job_id,)) == (
        r.chunks
    )


def test_failed_chunk_then_resume_loads_only_what_is_missing(pg: PG) -> None:
    """A chunk that fails (a target trigger refuses one row) fails the job; the rows of the
    other chunks stay committed, and a resume after the fix loads only the missing chunk."""
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, 3000) g"
    )
    pg.execute("CREATE TABLE dst (id int, s text)")
    pg.execute(
        "CREATE FUNCTION no_777() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.id = 777 THEN RAISE EXCEPTION 'refused 777' USING ERRCODE = '23514'; END IF; "
        "RETURN NEW; END $$"
    )
    pg.execute("CREATE TRIGGER t BEFORE INSERT ON dst FOR EACH ROW EXECUTE FUNCTION no_777()")
    with pytest.raises(am.JobFailed) as failed:
        _job(pg, pg.t("src"), job_id="resume-copy", chunk_size=500)
    assert failed.value.result.path == "copy"
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 2500  # every chunk but the failed one
    pg.execute("DROP TRIGGER t ON dst")
    r = _job(pg, pg.t("src"), job_id="resume-copy", chunk_size=500, resume=True)
    assert r.success and r.rows_written == 500 and len(r.skipped_chunks) == r.chunks - 1
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 3000


def test_verify_catches_a_target_that_changes_what_was_relayed(pg: PG) -> None:
    """verify=True compares the tuples relayed with the chunk's rows COPYed back out of the
    target inside its transaction: a trigger that rewrites a value fails the chunk (and
    without verify the same job succeeds, so the check is what catches it)."""
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, 400) g"
    )
    pg.execute("CREATE TABLE dst (id int, s text)")
    pg.execute(
        "CREATE FUNCTION mangle() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.id = 7 THEN NEW.s := 'mangled'; END IF; RETURN NEW; END $$"
    )
    pg.execute("CREATE TRIGGER m BEFORE INSERT ON dst FOR EACH ROW EXECUTE FUNCTION mangle()")
    with pytest.raises(am.JobFailed) as failed:
        _job(pg, pg.t("src"), verify=True, retry=am.RetryConfig(max_retries=0), job_id="v1")
    assert any("copy checksum" in e for e in failed.value.result.attempt_errors)
    assert pg.scalar("SELECT COUNT(*) FROM dst WHERE id = 7") == 0  # rolled back
    plain = _job(pg, pg.t("src"), job_id="v2")
    assert plain.path == "copy" and plain.success


def test_progress_reports_rows_and_bytes(pg: PG) -> None:
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, 2000) g"
    )
    seen: list[am.ProgressSnapshot] = []
    r = _job(pg, pg.t("src"), chunk_size=500, progress=seen.append)
    assert r.path == "copy" and r.success
    last = seen[-1]
    assert last.rows_written == last.rows_read == 2000
    # every tuple is at least its 2-byte field count, two 4-byte lengths and the values
    assert last.bytes_read > 2000 * (2 + 4 + 4 + 4 + 32)
    # am.verify afterwards reads both sides again: the relayed rows check out (a relayed chunk
    # keeps no ledger checksum, so source and target checksums are what is compared)
    report = am.verify(pg.uri, pg.uri, r.job_id, schema=pg.schema)
    assert report.ok and len(report.checks) == r.chunks, report.summary()
    assert all(c.source_checksum == c.target_checksum is not None for c in report.checks)


@pytest.mark.fault
def test_snapshot_reads_on_the_copy_path_are_not_torn(pg: PG) -> None:
    """Every relayed chunk joins the job's exported snapshot: writes to the source while the
    job runs do not reach the copy."""
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, md5(g::text) AS s FROM generate_series(1, 8000) g"
    )
    pg.execute("CREATE TABLE expected AS SELECT * FROM src")
    done: list[bool] = []

    def write(snap: am.ProgressSnapshot) -> None:
        if not done and snap.completed_chunks > 0:
            pg.execute("UPDATE src SET s = 'changed' WHERE id % 2 = 0")
            pg.execute("DELETE FROM src WHERE id % 7 = 0")
            done.append(True)

    # each chunk sleeps on the server a little, so the writes land while chunks remain
    query = f"SELECT id, s FROM {pg.t('src')} WHERE id % 1000 <> 0 OR pg_sleep(0.2)::text = ''"
    r = _job(pg, query, workers=1, chunk_size=1000, snapshot=True, progress=write)
    assert done, "the source was never written during the job"
    assert r.path == "copy" and r.success
    assert pg.assert_same_rows(pg.t("expected"), pg.t("dst")) == 8000


def test_copy_digest_is_independent_of_row_order_and_blocks() -> None:
    head = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
    rows = [b"\x00\x01\x00\x00\x00\x01" + bytes([i]) for i in range(50)]
    rows.append(b"\x00\x01\xff\xff\xff\xff")  # one NULL field
    trailer = b"\xff\xff"
    one, two = CopyDigest(), CopyDigest()
    one.feed(head + b"".join(rows) + trailer)
    stream = head + b"".join(reversed(rows)) + trailer
    for i in range(0, len(stream), 3):
        two.feed(stream[i : i + 3])
    assert one.done and two.done and one.rows == two.rows == 51
    assert one.digest == two.digest
    three = CopyDigest()
    three.feed(head + b"".join(rows[:-2]) + b"\x00\x01\x00\x00\x00\x01\xfe" + rows[-1] + trailer)
    assert three.digest != one.digest


def test_plan_query_says_which_path_and_why(pg: PG) -> None:
    pg.execute("CREATE TABLE src (id int, n numeric(12,2), t text)")
    pg.execute("CREATE TABLE other (id int, n numeric(14,2), t text)")
    kw: dict[str, Any] = dict(target=pg.uri, schema=pg.schema)
    new = am.plan_query(pg.uri, pg.t("src"), table="fresh", **kw)  # created with src's types
    assert new.path == "copy" and "undecoded" in new.path_reason
    assert "path: copy" in new.describe()
    differs = am.plan_query(pg.uri, pg.t("src"), table="other", path="copy", **kw)
    assert differs.path == "arrow"
    assert "path='copy' would be refused: 'n' is numeric(12,2)" in differs.path_reason
    assert am.plan_query(pg.uri, pg.t("src"), table="src", path="arrow", **kw).path == "arrow"
    assert am.plan_query(pg.uri, pg.t("src")).path is None  # no target: no path
    assert "path" not in am.plan_query(pg.uri, pg.t("src")).to_json()  # stored plans unchanged


def test_a_source_error_mid_stream_fails_the_chunk_with_the_servers_message(pg: PG) -> None:
    """The source fails after rows have been relayed: the target's COPY is aborted with it and
    nothing of the chunk is committed; the error is the server's, classified (terminal)."""
    pg.execute("CREATE TABLE src AS SELECT g AS id FROM generate_series(1, 3000) g")
    query = f"SELECT id, 100 / (id - 2500) AS q FROM {pg.t('src')}"
    with pytest.raises(am.JobFailed) as failed:
        _job(pg, query, strategy="none", job_id="midstream")
    result = failed.value.result
    assert result.path == "copy"
    (bad,) = result.chunk_results
    assert "division by zero" in (bad.error or "") and bad.attempts == 1  # terminal: no retry
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 0


@pytest.mark.fault
def test_a_slow_relayed_chunk_that_streams_is_not_a_stall(pg: PG) -> None:
    """A relayed chunk counts its rows only when its COPY ends; the stall watchdog also
    watches the bytes streaming, so a slow chunk that makes progress is left alone."""
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, repeat('x', 9000) AS s FROM generate_series(1, 8) g"
    )
    query = f"SELECT id, s FROM {pg.t('src')} WHERE {_relay_sleeps(0.4)}"
    r = _job(pg, query, strategy="none", stall_timeout=1.5, job_id="slow")
    assert r.path == "copy" and r.success and r.rows_written == 8
    assert max(c.attempts for c in r.chunk_results) == 1


@pytest.mark.fault
def test_a_terminated_target_copy_is_retried_and_the_rows_stay_exact(pg: PG) -> None:
    """pg_terminate_backend on the target's COPY ... FROM STDIN while a chunk streams: the
    connection loss is transient, the chunk is retried on a new connection, nothing doubles."""
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, repeat('x', 9000) AS s FROM generate_series(1, 12) g"
    )
    query = f"SELECT id, s FROM {pg.t('src')} WHERE {_relay_sleeps(0.15)}"
    terminated: list[Any] = []

    def terminate(snap: am.ProgressSnapshot) -> None:
        if not terminated and snap.bytes_read > 0:
            rows = pg.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name "
                "= 'arrowmapper' AND query ILIKE 'COPY %% FROM STDIN%%' AND pid <> pg_backend_pid()"
            )
            if any(ok for (ok,) in rows):
                terminated.append(rows)

    # stall_timeout keeps the one small chunk on a worker: in this process the progress
    # callback (which terminates the COPY) runs only between chunks
    r = _job(pg, query, strategy="none", job_id="term", progress=terminate, stall_timeout=60)
    assert terminated, "no target COPY was found to terminate"
    assert r.path == "copy" and r.success and r.chunk_results[0].attempts == 2
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 12
