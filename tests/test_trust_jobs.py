"""A job is what it was, and replace cannot lose the target (real PostgreSQL and SQLite).

Each test reproduces a way a table was lost or a resume silently loaded nothing: a staging
name cut by PostgreSQL to the target's own name, a refused rerun leaving an empty stage that a
resume then swapped in, resumes with another query or into a table dropped and created again,
two runs of one job id at once, and a REPEATABLE READ reader during the swap.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arrowmapper as am
from arrowmapper.api import stage_name
from tests.conftest import PG

ROOT = Path(__file__).resolve().parent.parent
ROWS = 4_000


def _source(pg: PG, rows: int = ROWS) -> str:
    pg.execute(
        f"CREATE TABLE src AS SELECT g AS id, 'v-' || g AS label FROM generate_series(1, {rows}) g"
    )
    return pg.t("src")


def _stages(pg: PG) -> list[str]:
    return [
        str(r[0])
        for r in pg.query(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = '{pg.schema}' AND relname LIKE '%%am_stage%%'"
        )
    ]


def _run(pg: PG, src: str, table: str, **kw: object) -> am.JobResult:
    args: dict[str, object] = {"schema": pg.schema, "key": "id", "chunk_size": 1000, "workers": 1}
    args.update(kw)
    return am.map_query(pg.uri, src, pg.uri, table, **args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- derived names


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.text(min_size=1, max_size=63).filter(lambda t: len(t.encode()) <= 63 and "\x00" not in t))
def test_stage_name_fits_and_never_equals_what_the_table_is_cut_to(table: str) -> None:
    stage = stage_name(table, "job-1")
    assert len(stage.encode()) <= 63
    assert stage != table and stage.encode()[:63] != table.encode()[:63]
    assert stage != stage_name(table, "job-2")  # two jobs never share a stage


def test_replace_into_a_multibyte_name_at_the_byte_limit(pg: PG) -> None:
    src = _source(pg)
    table = "é" * 31  # 62 bytes: the stage's name must be built by bytes too
    pg.execute(f'CREATE TABLE "{table}" (id int PRIMARY KEY, label text)')
    pg.execute(f"INSERT INTO \"{table}\" SELECT g, 'old' FROM generate_series(1, 10) g")
    r = _run(pg, src, table, mode="replace", job_id="mb-1")
    assert r.success
    assert pg.scalar(f'SELECT count(*) FROM "{table}"') == ROWS
    assert pg.scalar(f"SELECT count(*) FROM \"{table}\" WHERE label = 'old'") == 0
    assert _stages(pg) == []


def test_a_name_over_63_bytes_is_refused_before_anything_changes(pg: PG) -> None:
    src = _source(pg)
    cut = "é" * 31  # what PostgreSQL would cut 40 × 'é' (80 bytes) to
    pg.execute(f'CREATE TABLE "{cut}" (id int, label text)')
    pg.execute(f"INSERT INTO \"{cut}\" VALUES (1, 'keep')")
    with pytest.raises(am.ConfigError, match="bytes"):
        _run(pg, src, "é" * 40, mode="replace", job_id="mb-2")
    assert pg.query(f'SELECT id, label FROM "{cut}"') == [(1, "keep")]
    assert _stages(pg) == []


# --------------------------------------------------------------------------- replace reruns


def test_finished_replace_rerun_is_refused_and_leaves_nothing_then_resume_is_a_noop(
    pg: PG,
) -> None:
    src = _source(pg)
    first = _run(pg, src, "dst", mode="replace", job_id="rep-1")
    assert first.success and first.rows_written == ROWS
    with pytest.raises(am.ConfigError, match="already in the ledger .* finished"):
        _run(pg, src, "dst", mode="replace", job_id="rep-1")
    assert _stages(pg) == []
    assert pg.scalar("SELECT count(*) FROM dst") == ROWS
    # following the advice of old (resume=True) must not swap an empty stage in
    again = _run(pg, src, "dst", mode="replace", job_id="rep-1", resume=True)
    assert again.success and again.rows_written == 0
    assert any("already finished" in n for n in again.notes)
    assert pg.scalar("SELECT count(*) FROM dst") == ROWS
    pg.assert_same_rows(src, pg.t("dst"))
    assert _stages(pg) == []


def test_swap_refuses_a_stage_that_lacks_committed_rows(pg: PG) -> None:
    """The last guard: nothing empties the target but a complete stage."""
    from arrowmapper.config import parse_uri
    from arrowmapper.targets import TableRef, open_target

    src = _source(pg, 8000)
    pg.execute("CREATE TABLE dst (id int, label text)")
    pg.execute("INSERT INTO dst SELECT g, 'old' FROM generate_series(1, 7) g")
    with pytest.raises(am.JobFailed):
        _run(
            pg,
            src,
            "dst",
            mode="replace",
            job_id="rep-2",
            strategy="key",
            transform="tests.helpers:fail_on_id",
            retry=am.RetryConfig(max_retries=0),
        )
    (stage,) = _stages(pg)
    pg.execute(f'DELETE FROM "{stage}" WHERE id < 10')  # someone damages the stage
    tgt = open_target(parse_uri(pg.uri, "target"), TableRef(pg.schema, "dst", "postgresql"))
    try:
        with pytest.raises(am.TargetError, match="refusing to swap"):
            tgt.swap_in(TableRef(pg.schema, stage, "postgresql"), ["id", "label"], True, "rep-2")
    finally:
        tgt.close()
    assert pg.scalar("SELECT count(*) FROM dst WHERE label = 'old'") == 7


# --------------------------------------------------------------------------- job identity


def _failed_job(pg: PG, src: str, job_id: str, **kw: object) -> None:
    args: dict[str, object] = {"transform": "tests.helpers:fail_on_id", "strategy": "key", **kw}
    with pytest.raises(am.JobFailed):
        _run(pg, src, "dst", job_id=job_id, retry=am.RetryConfig(max_retries=0), **args)


def test_resume_with_another_query_is_refused_naming_it(pg: PG) -> None:
    src = _source(pg, 8000)
    _failed_job(pg, src, "id-1")
    before = pg.scalar("SELECT count(*) FROM dst")
    with pytest.raises(am.ConfigError, match="not the same job .*query: was"):
        _run(
            pg,
            f"SELECT * FROM {src} WHERE id > 100",
            "dst",
            job_id="id-1",
            resume=True,
            transform="tests.helpers:fail_on_id",
        )
    assert pg.scalar("SELECT count(*) FROM dst") == before


def test_resume_into_a_recreated_table_is_refused(pg: PG) -> None:
    src = _source(pg, 8000)
    _failed_job(pg, src, "id-2")
    pg.execute("DROP TABLE dst")
    pg.execute("CREATE TABLE dst (id int, label text)")
    with pytest.raises(am.ConfigError, match="dropped and created again"):
        _run(pg, src, "dst", job_id="id-2", resume=True, transform="tests.helpers:fail_on_id")
    assert pg.scalar("SELECT count(*) FROM dst") == 0


def test_resume_when_the_target_lost_committed_rows_is_refused(pg: PG) -> None:
    src = _source(pg, 8000)
    _failed_job(pg, src, "id-3")
    pg.execute("DELETE FROM dst WHERE id <= 1000")
    with pytest.raises(am.ConfigError, match="no longer holds rows .* chunk 0"):
        _run(pg, src, "dst", job_id="id-3", resume=True, transform="tests.helpers:fail_on_id")


def test_resume_after_a_fix_in_place_finishes_the_same_job(
    pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(pg, 8000)
    _failed_job(pg, src, "id-4", mode="replace", transform="tests.helpers:fail_on_id_until_fixed")
    monkeypatch.setenv("ARROWMAPPER_TEST_FIXED", "1")
    r = _run(
        pg,
        src,
        "dst",
        job_id="id-4",
        mode="replace",
        resume=True,
        transform="tests.helpers:fail_on_id_until_fixed",
    )
    assert r.success and len(r.skipped_chunks) > 0
    pg.assert_same_rows(src, pg.t("dst"))


def test_recurring_job_id_is_not_silent(pg: PG) -> None:
    """Night two of a fixed job_id with resume=True loads nothing, and says so."""
    src = _source(pg)
    _run(pg, src, "dst", job_id="nightly", resume=True)
    pg.execute("INSERT INTO src VALUES (99999, 'new')")
    night2 = _run(pg, src, "dst", job_id="nightly", resume=True)
    assert night2.rows_written == 0
    assert any("already finished" in n and "new job_id" in n for n in night2.notes)
    # what the docs now say: a job id per run
    night2 = _run(pg, src, "dst", job_id="nightly-2", mode="replace")
    assert pg.scalar("SELECT count(*) FROM dst") == ROWS + 1


def test_sqlite_resume_checks_the_rows_are_still_there(pg: PG, tmp_path: Path) -> None:
    src = _source(pg, 8000)
    target = f"sqlite://{tmp_path / 't.db'}"
    with pytest.raises(am.JobFailed):
        am.map_query(
            pg.uri,
            src,
            target,
            "dst",
            key="id",
            strategy="key",
            chunk_size=1000,
            workers=1,
            job_id="sq-1",
            transform="tests.helpers:fail_on_id",
            retry=am.RetryConfig(max_retries=0),
        )
    with sqlite3.connect(tmp_path / "t.db") as conn:
        conn.execute("DELETE FROM dst")
    with pytest.raises(am.ConfigError, match="no longer holds rows"):
        am.map_query(
            pg.uri,
            src,
            target,
            "dst",
            key="id",
            job_id="sq-1",
            resume=True,
            transform="tests.helpers:fail_on_id",
        )


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("mode", ["replace", "truncate"])
def test_one_job_id_run_twice_at_once(pg: PG, mode: str) -> None:
    src = _source(pg, 20_000)
    pg.execute("CREATE TABLE dst (id int, label text)")
    pg.execute("INSERT INTO dst SELECT g, 'old' FROM generate_series(1, 5) g")
    script = textwrap.dedent(f"""
        import sys, arrowmapper as am
        try:
            am.map_query({pg.uri!r}, {src!r}, {pg.uri!r}, "dst", schema={pg.schema!r},
                         key="id", chunk_size=2000, workers=1, mode={mode!r}, job_id="twice")
        except am.ConfigError as exc:
            print("REFUSED", exc)
            sys.exit(7)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 7], outs
    assert "IntegrityError" not in "".join(o[0] or "" for o in outs)
    pg.assert_same_rows(src, pg.t("dst"))
    assert _stages(pg) == []


# --------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize("swap, seen", [("truncate", 0), ("delete", 7)])
def test_what_an_old_repeatable_read_snapshot_sees_after_the_swap(
    pg: PG, swap: str, seen: int
) -> None:
    import psycopg

    src = _source(pg)
    pg.execute("CREATE TABLE dst (id int, label text)")
    pg.execute("INSERT INTO dst SELECT g, 'old' FROM generate_series(1, 7) g")
    pg.execute("CREATE TABLE other (x int)")
    with psycopg.connect(pg.uri) as reader:
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute(f"SELECT count(*) FROM {pg.t('other')}")  # the snapshot is taken here
        _run(pg, src, "dst", mode="replace", job_id=f"snap-{swap}", swap=swap)
        row = reader.execute(f"SELECT count(*) FROM {pg.t('dst')}").fetchone()
        assert row is not None and row[0] == seen
        reader.rollback()
    assert pg.scalar("SELECT count(*) FROM dst") == ROWS


@pytest.mark.parametrize("existed", [True, False])
def test_verify_after_a_replace_checks_the_swapped_table(pg: PG, existed: bool) -> None:
    src = _source(pg)
    if existed:
        pg.execute("CREATE TABLE dst (id int, label text)")
        pg.execute("INSERT INTO dst SELECT g, 'old' FROM generate_series(1, 7) g")
    _run(pg, src, "dst", mode="replace", job_id="rv-1")
    report = am.verify(pg.uri, pg.uri, "rv-1", schema=pg.schema)
    assert report.ok, report.summary()
    assert report.table == f"{pg.schema}.dst" and report.target_rows == ROWS
    pg.execute("UPDATE dst SET label = 'changed' WHERE id = 1234")
    report = am.verify(pg.uri, pg.uri, "rv-1", schema=pg.schema)
    assert not report.ok


# --------------------------------------------------------------------------- found by review


@pytest.mark.parametrize("mode", ["truncate", "replace"])
@pytest.mark.parametrize(
    "query",
    [
        "SELECT id, label, 1 AS extra FROM {src}",  # a column the target lacks
        "SELECT label AS id, id AS label FROM {src}",  # text into an int column
    ],
)
def test_a_refused_truncate_or_replace_empties_nothing(pg: PG, mode: str, query: str) -> None:
    src = _source(pg, 1000)
    pg.execute("CREATE TABLE dst (id int, label text)")
    pg.execute("INSERT INTO dst SELECT g, 'precious' FROM generate_series(1, 100) g")
    with pytest.raises(am.ArrowMapperError):
        _run(pg, query.format(src=src), "dst", mode=mode, job_id="refused")
    assert pg.scalar("SELECT count(*) FROM dst WHERE label = 'precious'") == 100
    assert _stages(pg) == []


@pytest.mark.parametrize("mode", ["truncate", "replace"])
@pytest.mark.parametrize("action", ["CASCADE", "SET NULL", "NO ACTION"])
def test_emptying_a_referenced_table_is_refused_before_loading(
    pg: PG, mode: str, action: str
) -> None:
    src = _source(pg, 2000)
    pg.execute("CREATE TABLE parent (id int PRIMARY KEY, label text)")
    pg.execute("INSERT INTO parent SELECT g, 'old' FROM generate_series(1, 100) g")
    pg.execute(
        f"CREATE TABLE child (cid serial PRIMARY KEY, pid int REFERENCES parent ON DELETE {action})"
    )
    pg.execute("INSERT INTO child (pid) SELECT g FROM generate_series(1, 50) g")
    with pytest.raises(am.ConfigError, match="referenced by foreign key"):
        _run(pg, src, "parent", mode=mode, job_id="fk")
    assert pg.scalar("SELECT count(*) FROM child WHERE pid IS NOT NULL") == 50
    assert pg.scalar("SELECT count(*) FROM parent WHERE label = 'old'") == 100
    assert _stages(pg) == []
    # with no referencing rows left, a plain constraint does not stand in the way
    if action == "NO ACTION":
        pg.execute("DELETE FROM child")
        assert _run(pg, src, "parent", mode=mode, job_id="fk-2").success
        pg.assert_same_rows(src, pg.t("parent"))


def test_merge_resume_refuses_a_target_that_lost_chunks(pg: PG) -> None:
    src = _source(pg, 8000)
    pg.execute("CREATE TABLE dst (id int PRIMARY KEY, label text)")
    _failed_job(pg, src, "mg-1", mode="merge")
    pg.execute("DELETE FROM dst WHERE id <= 3000")
    with pytest.raises(am.ConfigError, match="no longer holds rows"):
        _run(
            pg,
            src,
            "dst",
            job_id="mg-1",
            mode="merge",
            resume=True,
            transform="tests.helpers:fail_on_id",
        )


def test_resume_when_the_target_was_dropped_creates_nothing(pg: PG) -> None:
    src = _source(pg, 8000)
    _failed_job(pg, src, "gone-1")
    pg.execute("DROP TABLE dst")
    with pytest.raises(am.ConfigError, match="no longer exists"):
        _run(pg, src, "dst", job_id="gone-1", resume=True, transform="tests.helpers:fail_on_id")
    assert pg.scalar(f"SELECT to_regclass('{pg.schema}.dst') IS NULL")


@pytest.mark.parametrize("mode", ["replace", "append", "create"])
def test_sqlite_names_are_compared_as_sqlite_compares_them(
    pg: PG, tmp_path: Path, mode: str
) -> None:
    src = _source(pg, 3000)
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE dst (id INTEGER, label TEXT)")
        conn.execute("INSERT INTO dst VALUES (1, 'old')")
    target = f"sqlite://{db}"
    if mode == "create":
        with pytest.raises(am.TargetError, match="already exists"):
            am.map_query(pg.uri, src, target, "DST", mode=mode, job_id="sq-case")
        return
    r = am.map_query(pg.uri, src, target, "DST", mode=mode, key="id", job_id="sq-case")
    assert r.success
    with sqlite3.connect(db) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        n = conn.execute("SELECT count(*) FROM dst").fetchone()[0]
    assert not [t for t in tables if "__am_" in t]
    assert n == (3000 if mode == "replace" else 3001)


# --------------------------------------------------------------------------- found by the last review


@pytest.mark.parametrize("collation", ['"en-x-icu"', '"C"'])
def test_quantile_boundaries_keep_the_servers_order(pg: PG, collation: str) -> None:
    """Python's sort is not the server's: boundaries re-sorted in Python made overlapping
    chunks (16,000 rows from 10,000, verify agreeing)."""
    pg.execute(f"CREATE TABLE src (k text COLLATE {collation} PRIMARY KEY, v int)")
    pg.execute(
        "INSERT INTO src SELECT CASE WHEN g % 2 = 0 THEN upper(chr(97 + g % 26)) "
        "ELSE chr(97 + g % 26) END || '_' || lpad(g::text, 5, '0'), g "
        "FROM generate_series(1, 10000) g"
    )
    r = _run(pg, pg.t("src"), "dst", key="k", strategy="quantile", job_id="coll", workers=2)
    assert r.success
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 10_000
    assert am.verify(pg.uri, pg.uri, "coll", schema=pg.schema).ok


def test_verify_sees_chunks_that_do_not_add_up(pg: PG) -> None:
    src = _source(pg)
    _run(pg, src, "dst", strategy="key", job_id="sum-1")
    pg.execute(
        "UPDATE arrowmapper_jobs SET plan = replace(plan, '\\\"id\\\" >= 1001', "
        "'\\\"id\\\" >= 901') WHERE job_id = 'sum-1'"
    )  # chunk 1 now overlaps chunk 0
    report = am.verify(pg.uri, pg.uri, "sum-1", schema=pg.schema)
    assert not report.ok and "overlap" in report.summary()


def test_sqlite_nocase_keys_and_backslash_keys(pg: PG, tmp_path: Path) -> None:
    """SQLite NOCASE collation (quantiles come in the server's order), and key values with
    backslashes and quotes rendered as boundaries."""
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE src (k TEXT COLLATE NOCASE PRIMARY KEY, v INT)")
        conn.executemany(
            "INSERT INTO src VALUES (?, ?)",
            [
                ((chr(97 + i % 26) if i % 2 else chr(65 + i % 26)) + f"\\'{i:05d}", i)
                for i in range(10_000)
            ],
        )
    r = am.map_query(
        f"sqlite://{path}", "src", pg.uri, "dst", schema=pg.schema, key="k", chunk_size=1000
    )
    assert r.success
    assert pg.scalar("SELECT count(DISTINCT k) FROM dst") == 10_000
    assert pg.scalar("SELECT count(*) FROM dst") == 10_000


def test_key_strategy_on_a_timestamp_without_zone(pg: PG) -> None:
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, TIMESTAMP '2024-01-01' + g * interval '1 minute' "
        "AS ts FROM generate_series(1, 6000) g"
    )
    r = _run(pg, pg.t("src"), "dst", key="ts", strategy="key")
    assert r.success and r.chunks > 2
    pg.assert_same_rows(pg.t("src"), pg.t("dst"))


@pytest.fixture
def scs_off(pg: PG) -> Any:
    """A login role whose sessions read backslashes in plain literals as escapes."""
    from tests.conftest import with_userinfo

    role = "am_scs_" + secrets.token_hex(3)
    pg.execute(f"CREATE ROLE {role} LOGIN SUPERUSER")
    pg.execute(f"ALTER ROLE {role} SET standard_conforming_strings = off")
    pg.execute(f"ALTER ROLE {role} SET escape_string_warning = off")
    try:
        yield with_userinfo(pg.uri, role, "")
    finally:
        pg.execute(f"DROP OWNED BY {role}")
        pg.execute(f"DROP ROLE {role}")


def test_literals_mean_the_same_with_standard_strings_off(pg: PG, scs_off: str) -> None:
    """Found by review: the boundary 'a\\z02000' read as 'az02000' (14,001 rows from 10,000),
    and a key value could end the literal early and put row text into the SQL."""
    pg.execute('CREATE TABLE src (k text COLLATE "C" PRIMARY KEY, v int)')
    pg.execute(
        "INSERT INTO src SELECT 'a\\z' || lpad(g::text, 5, '0'), g FROM generate_series(1, 5000) g"
    )
    pg.execute(
        "INSERT INTO src SELECT 'a' || chr(98 + g % 20) || lpad(g::text, 5, '0'), g "
        "FROM generate_series(5001, 10000) g"
    )
    pg.execute("INSERT INTO src VALUES ('\\', 0), ($$|| '''' OR TRUE --$$, -1)")
    r = am.map_query(
        scs_off,
        pg.t("src"),
        scs_off,
        "dst",
        schema=pg.schema,
        key="k",
        strategy="quantile",
        chunk_size=2000,
        workers=2,
        job_id="scs\\'x".replace("\\'", "-"),
    )
    assert r.success
    assert pg.assert_same_rows(pg.t("src"), pg.t("dst")) == 10_002


def test_an_offset_job_does_not_resume_over_a_changed_source(pg: PG) -> None:
    """Found by review: 500 rows deleted before a resume shifted every later OFFSET page."""
    src = _source(pg, 8000)
    _failed_job(pg, src, "off-1", strategy="offset")
    pg.execute("DELETE FROM src WHERE id <= 500")
    with pytest.raises(am.ConfigError, match="OFFSET pages"):
        _run(pg, src, "dst", job_id="off-1", resume=True, transform="tests.helpers:fail_on_id")


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT)",
        "CREATE TABLE t (id INTEGER NOT NULL PRIMARY KEY, label TEXT) WITHOUT ROWID",
    ],
)
def test_sqlite_targets_whose_rows_a_rowid_range_cannot_find(
    pg: PG, tmp_path: Path, ddl: str
) -> None:
    """Found by review: into `id INTEGER PRIMARY KEY` (the rowid itself) a chunk's rowid-range
    locator pointed at other chunks' rows (verify=True failed every chunk, am.verify reported
    false mismatches); a WITHOUT ROWID table could not be written at all."""
    src = _source(pg)
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as conn:
        conn.execute(ddl)
    target = f"sqlite://{path}"
    with pytest.raises(am.ConfigError, match="verify=True cannot check"):
        am.map_query(pg.uri, src, target, "t", key="id", workers=2, chunk_size=1000, verify=True)
    r = am.map_query(pg.uri, src, target, "t", key="id", workers=2, chunk_size=1000, job_id="ipk")
    assert r.success
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM t").fetchone() == (ROWS, ROWS)
    assert am.verify(pg.uri, target, "ipk").ok


def test_a_failed_swap_does_not_mark_the_job_finished(pg: PG) -> None:
    """A read inside the swap's transaction once ended it early, committing the job as
    finished before anything was swapped: a resume would then have done nothing."""
    src = _source(pg)
    pg.execute("UPDATE src SET label = 'bad' WHERE id = 7")
    pg.execute("CREATE TABLE dst (id int, label text CHECK (label <> 'bad'))")
    pg.execute("INSERT INTO dst VALUES (1, 'old')")
    with pytest.raises(am.TargetError, match="could not swap"):
        _run(pg, src, "dst", mode="replace", job_id="swap-fail")
    assert pg.query("SELECT id, label FROM dst") == [(1, "old")]
    assert pg.scalar("SELECT finished_at FROM arrowmapper_jobs WHERE job_id = 'swap-fail'") is None
    pg.execute("ALTER TABLE dst DROP CONSTRAINT dst_label_check")
    r = _run(pg, src, "dst", mode="replace", job_id="swap-fail", resume=True)
    assert r.success and len(r.skipped_chunks) == r.chunks
    pg.assert_same_rows(src, pg.t("dst"))


@pytest.mark.parametrize("mode", ["append", "truncate", "replace"])
def test_a_required_target_column_the_query_lacks_is_refused_up_front(pg: PG, mode: str) -> None:
    """Found by review: a NOT NULL column without a default that the query does not return
    failed at COPY time, chunk after chunk (identity, generated and defaulted columns are
    fine)."""
    src = _source(pg)
    pg.execute(
        "CREATE TABLE dst (id int, label text, must text NOT NULL, d int NOT NULL DEFAULT 0, "
        "n int GENERATED ALWAYS AS (id * 2) STORED, i int GENERATED BY DEFAULT AS IDENTITY)"
    )
    pg.execute("INSERT INTO dst (id, label, must) VALUES (1, 'old', 'x')")
    with pytest.raises(am.ConfigError, match="requires a value for 'must'"):
        _run(pg, src, "dst", mode=mode, job_id=f"req-{mode}")
    assert pg.query("SELECT id, label FROM dst") == [(1, "old")]
    assert _stages(pg) == []
    pg.execute("ALTER TABLE dst ALTER COLUMN must SET DEFAULT 'filled'")
    r = _run(pg, src, "dst", mode="append", job_id=f"req2-{mode}")
    assert r.success and pg.scalar("SELECT count(*) FROM dst WHERE must = 'filled'") == ROWS


def test_a_required_sqlite_column_the_query_lacks_is_refused(pg: PG, tmp_path: Path) -> None:
    src = _source(pg)
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE dst (id INTEGER PRIMARY KEY, label TEXT, must TEXT NOT NULL)")
    with pytest.raises(am.ConfigError, match="requires a value for 'must'"):
        am.map_query(pg.uri, src, f"sqlite://{path}", "dst", key="id", workers=1)
