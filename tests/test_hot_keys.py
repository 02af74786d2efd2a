"""Hot keys (issue #17): one key value holding most of the rows is cut by a tiebreak (the
primary key, or ctid on a plain PostgreSQL table) so no chunk carries it alone; every row is
still copied exactly once, and a hot value nothing can cut is reported and read whole."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

import arrowmapper as am
from tests.conftest import PG, MariaDB

ROWS = 5000
CHUNK = 500


def _hot_table(pg: PG, name: str, primary_key: bool) -> None:
    """80% of the rows hold bucket = 1; the rest one bucket each (2..1001)."""
    pk = " PRIMARY KEY" if primary_key else ""
    pg.execute(
        f"CREATE TABLE {name} (id int{pk}, bucket int, note text);"
        f"INSERT INTO {name} SELECT i, CASE WHEN i % 5 <> 0 THEN 1 ELSE 1 + i / 5 END, "
        f"'n' || i FROM generate_series(1, {ROWS}) i"
    )
    pg.execute(f"ANALYZE {name}")  # its own transaction: the inserted rows count as analyzed


def _server_counts(pg: PG, plan: am.Plan) -> list[int]:
    return [int(pg.scalar(f"SELECT count(*) FROM ({c.sql}) AS c")) for c in plan.chunks]


def _check_balanced(pg: PG, plan: am.Plan) -> None:
    counts = _server_counts(pg, plan)
    assert sum(counts) == ROWS  # disjoint by construction; the sum checks the cover
    median = statistics.median(counts)
    assert max(counts) <= 1.5 * median, (counts, plan.describe())
    for c, n in zip(plan.chunks, counts, strict=True):
        est = c.estimated_rows or 0
        assert abs(est - n) <= 0.2 * max(n, 1) + 1, (c.predicate, est, n)


@pytest.mark.parametrize("strategy", ["quantile", "key"])
def test_hot_value_cut_by_primary_key_pg(pg: PG, strategy: str) -> None:
    """80% of the rows in bucket 1: the chunks stay within 1.5x of the median (counted on the
    server with each chunk's own SQL), estimates within 20%, plan says which value was hot and
    what cut it, and a real copy writes every row exactly once."""
    _hot_table(pg, "src", primary_key=True)
    plan = am.plan_query(pg.uri, pg.t("src"), strategy=strategy, key="bucket", chunk_size=CHUNK)
    assert any("hot key value 1 of 'bucket'" in n and "'id'" in n for n in plan.notes), plan.notes
    assert any('"bucket" = 1 AND "id" >=' in c.predicate for c in plan.chunks)
    assert "hot key value 1" in plan.describe()
    _check_balanced(pg, plan)
    r = am.map_query(
        pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, strategy=strategy, key="bucket",
        chunk_size=CHUNK, workers=2,
    )  # fmt: skip
    assert r.rows_written == ROWS
    pg.assert_same_rows("src", "dst")
    assert pg.scalar("SELECT count(DISTINCT id) FROM dst") == ROWS


def test_hot_value_cut_by_ctid_without_a_key_pg(pg: PG) -> None:
    """No primary key: a plain table's hot value is cut by heap block; NULL keys keep their
    own chunk."""
    _hot_table(pg, "src", primary_key=False)
    pg.execute("UPDATE src SET bucket = NULL WHERE id % 97 = 0")
    pg.execute("VACUUM ANALYZE src")
    plan = am.plan_query(pg.uri, pg.t("src"), strategy="quantile", key="bucket", chunk_size=CHUNK)
    assert any("heap block (ctid)" in n for n in plan.notes), plan.notes
    assert any(c.predicate == '"bucket" IS NULL' for c in plan.chunks)
    counts = _server_counts(pg, plan)
    assert sum(counts) == ROWS
    hot = [n for c, n in zip(plan.chunks, counts, strict=True) if '"bucket" = 1 AND' in c.predicate]
    assert len(hot) >= 6 and max(hot) <= 1.5 * statistics.median(counts)
    r = am.map_query(
        pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, strategy="quantile",
        key="bucket", chunk_size=CHUNK, workers=2,
    )  # fmt: skip
    assert r.rows_written == ROWS
    pg.assert_same_rows("src", "dst")


def test_hot_value_without_tiebreak_is_one_chunk_and_noted(pg: PG) -> None:
    """A query (no table, no row address): the hot value is reported and read whole."""
    _hot_table(pg, "src", primary_key=True)
    query = f"SELECT id, bucket FROM {pg.t('src')} WHERE id > 0"
    plan = am.plan_query(pg.uri, query, strategy="quantile", key="bucket", chunk_size=CHUNK)
    assert any("no tiebreak can cut it" in n for n in plan.notes), plan.notes
    counts = _server_counts(pg, plan)
    assert sum(counts) == ROWS and max(counts) >= 4000
    r = am.map_query(
        pg.uri, query, pg.uri, "dst", schema=pg.schema, strategy="quantile", key="bucket",
        chunk_size=CHUNK, workers=2,
    )  # fmt: skip
    assert r.rows_written == ROWS
    assert pg.scalar("SELECT count(DISTINCT id) FROM dst") == ROWS


def test_hot_value_cut_by_primary_key_mariadb(mariadb: MariaDB, pg: PG) -> None:
    """The same on MariaDB (NTILE quantiles): the primary key cuts the hot value."""
    mariadb.execute(
        "CREATE TABLE src (id INT PRIMARY KEY, bucket INT);"
        f"INSERT INTO src SELECT seq, IF(seq % 5 <> 0, 1, 1 + seq DIV 5) FROM seq_1_to_{ROWS}"
    )
    plan = am.plan_query(mariadb.uri, "src", strategy="quantile", key="bucket", chunk_size=CHUNK)
    assert any("hot key value 1" in n for n in plan.notes), plan.notes
    assert sum(1 for c in plan.chunks if "`bucket` = 1 AND" in c.predicate) >= 6
    r = am.map_query(
        mariadb.uri, "src", pg.uri, "dst", schema=pg.schema, strategy="quantile",
        key="bucket", chunk_size=CHUNK, workers=2,
    )  # fmt: skip
    assert r.rows_written == ROWS
    assert pg.query("SELECT count(*), count(DISTINCT id), sum(bucket) FROM dst") == [
        (ROWS, ROWS, int(pg.scalar(
            f"SELECT sum(CASE WHEN i % 5 <> 0 THEN 1 ELSE 1 + i / 5 END) "
            f"FROM generate_series(1, {ROWS}) i"
        )))
    ]


def test_large_table_planned_from_a_sample_covers_every_row(
    pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table the catalog calls large (the threshold lowered for the test) is planned from
    its estimate and a sample, not a full sort: the plan says so, its chunks still hold every
    row exactly once (counted on the server) and stay balanced, the hot value is still cut,
    and a copy writes every row once. Rows added after ANALYZE (statistics gone stale) are
    planned exactly again."""
    from arrowmapper.sources import probe

    monkeypatch.setattr(probe, "SAMPLE_FROM_ROWS", 1000)
    monkeypatch.setattr(probe, "SAMPLE_ROWS", 1500)
    _hot_table(pg, "src", primary_key=True)
    for key in ("id", "bucket"):
        plan = am.plan_query(pg.uri, pg.t("src"), strategy="quantile", key=key, chunk_size=CHUNK)
        assert any("sample of its rows" in n for n in plan.notes), plan.notes
        counts = _server_counts(pg, plan)
        assert sum(counts) == ROWS, (key, counts)
        assert max(counts) <= 2 * statistics.median(counts), (key, counts)
    assert any("hot key value 1" in n for n in plan.notes), plan.notes
    r = am.map_query(
        pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, strategy="quantile",
        key="bucket", chunk_size=CHUNK, workers=2,
    )  # fmt: skip
    assert r.rows_written == ROWS
    pg.assert_same_rows("src", "dst")
    pg.execute(f"INSERT INTO src SELECT i, 1, 'late' FROM generate_series({ROWS + 1}, {3 * ROWS}) i")
    plan = am.plan_query(pg.uri, pg.t("src"), strategy="quantile", key="id", chunk_size=CHUNK)
    assert not any("sample" in n for n in plan.notes), plan.notes
    assert sum(_server_counts(pg, plan)) == 3 * ROWS


def test_hot_value_on_sqlite_rowid_and_without_rowid(tmp_path: Path) -> None:
    """SQLite: a rowid table's hot value is cut by rowid; a WITHOUT ROWID table has no row
    address, so its hot value is noted and read whole. Either way every chunk's predicate
    runs and the chunks hold every row once."""
    import sqlite3

    for without in (False, True):
        path = tmp_path / f"hot_{without}.db"
        db = sqlite3.connect(path)
        tail = " WITHOUT ROWID" if without else ""
        db.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, bucket INT, v TEXT){tail}")
        rows = [(i, 1 if i % 5 else 1 + i // 5, str(i)) for i in range(1, ROWS + 1)]
        db.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
        db.commit()
        plan = am.plan_query(f"sqlite:///{path}", "t", strategy="quantile", key="bucket",
                             chunk_size=CHUNK)  # fmt: skip
        counts = [db.execute(f"SELECT count(*) FROM t WHERE {c.predicate}").fetchone()[0]
                  for c in plan.chunks]  # fmt: skip
        db.close()
        assert sum(counts) == ROWS, (without, counts)
        if without:
            assert any("cannot cut it" in n for n in plan.notes), plan.notes
            assert max(counts) >= 4000
        else:
            assert any("by rowid" in n for n in plan.notes), plan.notes
            assert max(counts) <= 1.5 * statistics.median(counts), counts


def test_cli_plan_shows_the_hot_value_and_its_cut(pg: PG) -> None:
    """``arrowmapper plan`` prints the note (which value, by which column) and the chunks
    cut by it; ``--json`` carries the notes too."""
    from tests.test_cli import run_cli

    _hot_table(pg, "src", primary_key=True)
    args = ["plan", "--source", pg.uri, "--query", pg.t("src"), "--strategy", "quantile"]
    args += ["--key", "bucket", "--chunk-size", str(CHUNK)]
    out = run_cli(*args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "note: hot key value 1 of 'bucket' holds 4000 rows" in out.stdout, out.stdout
    assert "by column 'id'" in out.stdout and '"bucket" = 1 AND "id" >=' in out.stdout
    out = run_cli(*args, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cut into 8 chunks by column 'id'" in out.stdout


def test_a_hot_chunk_splits_again_by_its_tiebreak(pg: PG) -> None:
    """A chunk of one hot value (one key value: a key split finds no boundary) is split
    again by its tiebreak column when a run needs it smaller: two halves, both holding rows,
    together exactly the chunk's rows."""
    from arrowmapper.api import open_source, source_endpoint

    _hot_table(pg, "src", primary_key=True)
    plan = am.plan_query(pg.uri, pg.t("src"), strategy="quantile", key="bucket", chunk_size=CHUNK)
    chunk = next(c for c in plan.chunks if '"bucket" = 1 AND "id" >=' in c.predicate)
    with open_source(source_endpoint(pg.uri)) as reader:
        halves = reader.split(plan, chunk, 1000)
    assert halves is not None
    whole = int(pg.scalar(f"SELECT count(*) FROM ({chunk.sql}) AS c"))
    parts = [int(pg.scalar(f"SELECT count(*) FROM ({h.sql}) AS c")) for h in halves]
    assert min(parts) > 0 and sum(parts) == whole, (parts, whole)
