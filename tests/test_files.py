"""File sources: every format and compression, globs and Hive folders, uploads, the chunking
strategies, the query over the files, schema union and refusals, resume after a changed file,
into a real PostgreSQL and a real SQLite file with real worker processes."""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import io
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import arrowmapper as am
from arrowmapper.errors import ArrowMapperError, ConfigError, JobFailed
from tests.conftest import PG

N = 3_000
TEXTS = ['plain', 'with "quotes"', "comma, inside", "line\nbreak", "ünïcødé ✓", "", "NA", "tab\there"]


def rows(n: int = N, start: int = 0) -> list[dict[str, Any]]:
    """Hostile rows: quotes, delimiters, newlines, multibyte text, empty strings that are not
    NULL, 'NA' that is not NULL, NULLs, negative and large numbers, timestamps."""
    out = []
    for i in range(start, start + n):
        out.append(
            {
                "id": i,
                "name": None if i % 17 == 0 else TEXTS[i % len(TEXTS)] + f" {i}" * (i % 3 == 0),
                "amount": None if i % 23 == 0 else (i - n / 2) * 1.25,
                "big": 9_007_199_254_740_993 + i,
                "ok": i % 2 == 0,
                "at": dt.datetime(2026, 1, 1) + dt.timedelta(seconds=i * 37),
            }
        )
    return out


def table(n: int = N, start: int = 0) -> pa.Table:
    return pa.Table.from_pylist(
        rows(n, start),
        schema=pa.schema(
            [
                ("id", pa.int64()),
                ("name", pa.string()),
                ("amount", pa.float64()),
                ("big", pa.int64()),
                ("ok", pa.bool_()),
                ("at", pa.timestamp("us")),
            ]
        ),
    )


def _csv_field(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace('"', '""') + '"'
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    return repr(v) if isinstance(v, float) else str(v)


def csv_text(data: list[dict[str, Any]], sep: str = ",", header: bool = True) -> str:
    """CSV as COPY writes it: NULL is an unquoted empty field, every string quoted."""
    lines = [sep.join(data[0])] if header else []
    lines += [sep.join(_csv_field(v) for v in r.values()) for r in data]
    return "\n".join(lines) + "\n"


def jsonl_text(data: list[dict[str, Any]]) -> str:
    return "".join(
        json.dumps({k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items()})
        + "\n"
        for r in data
    )


def write(path: Path, fmt: str, data: pa.Table, compression: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(data, path, row_group_size=500)
        return path
    if fmt == "arrow":
        with ipc.new_file(path, data.schema) as w:
            w.write_table(data, max_chunksize=700)
        return path
    if fmt == "arrows":  # the IPC stream format
        with ipc.new_stream(path, data.schema) as w:
            w.write_table(data)
        return path
    text = {"csv": csv_text, "tsv": lambda d: csv_text(d, "\t"), "jsonl": jsonl_text}[fmt](
        data.to_pylist()
    )
    raw = text.encode()
    if compression == "gzip":
        raw = gzip.compress(raw)
    elif compression == "bz2":
        raw = bz2.compress(raw)
    elif compression == "zstd":
        with pa.CompressedOutputStream(str(path), "zstd") as z:
            z.write(raw)
        return path
    path.write_bytes(raw)
    return path


def pg_rows(pg: PG, name: str, columns: str = "id, name, amount, big, ok, at") -> list[tuple[Any, ...]]:
    return pg.query(f"SELECT {columns} FROM {pg.t(name)} ORDER BY id")


def expected(data: pa.Table) -> list[tuple[Any, ...]]:
    return [
        (r["id"], r["name"], r["amount"], r["big"], r["ok"], r["at"])
        for r in data.to_pylist()
    ]


FORMATS = [
    ("parquet", "data.parquet", None),
    ("arrow", "data.arrow", None),
    ("arrows", "data.arrows.arrow", None),
    ("csv", "data.csv", None),
    ("tsv", "data.tsv", None),
    ("jsonl", "data.jsonl", None),
    ("csv", "data.csv.gz", "gzip"),
    ("csv", "data.csv.zst", "zstd"),
    ("csv", "data.csv.bz2", "bz2"),
    ("jsonl", "data.ndjson.gz", "gzip"),
]


@pytest.mark.parametrize(("fmt", "name", "compression"), FORMATS, ids=[f[1] for f in FORMATS])
def test_every_format_and_compression_loads_exactly(
    pg: PG, tmp_path: Path, fmt: str, name: str, compression: str | None
) -> None:
    data = table()
    path = write(tmp_path / name, fmt, data, compression)
    # this TSV quotes its strings as CSV does (csv_text with tabs): a TSV file is read
    # without quoting unless quote= says it is quoted (and one that looks quoted is refused)
    src = am.files(str(path), quote='"') if fmt == "tsv" else str(path)
    r = am.map_query(src, None, pg.uri, "dst", schema=pg.schema, workers=2, chunk_size=1_000)
    assert r.success and r.rows_written == N
    got = pg_rows(pg, "dst")
    assert got == expected(data)
    types = dict(pg.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'dst'", (pg.schema,)
    ))
    # a 17-digit integer stays bigint (not a double), a string 'NA' stays text
    assert types["big"] == "bigint" and types["name"] == "text"


def test_csv_keeps_leading_zeros_and_na_and_says_so(pg: PG, tmp_path: Path) -> None:
    path = tmp_path / "zips.csv"
    path.write_text('id,zip,code,note\n1,02134,0,NA\n2,10001,7,\n3,00501,12,"NA"\n')
    plan_notes: list[str] = []
    r = am.map_query(str(path), None, pg.uri, "dst", schema=pg.schema)
    plan_notes.extend(r.notes)
    assert pg.query(f"SELECT id, zip, code, note FROM {pg.t('dst')} ORDER BY id") == [
        (1, "02134", 0, "NA"),
        (2, "10001", 7, None),
        (3, "00501", 12, "NA"),
    ]
    assert any("leading zero" in n and "zip" in n for n in plan_notes)


def test_glob_hive_partitions_and_hidden_files(pg: PG, tmp_path: Path) -> None:
    root = tmp_path / "lake"
    write(root / "day=2026-11-30" / "region=eu" / "part-0.parquet", "parquet", table(1_000))
    write(root / "day=2026-11-30" / "region=us" / "part-0.parquet", "parquet", table(800, 1_000))
    write(root / "day=2026-12-01" / "region=eu" / "part-0.parquet", "parquet", table(600, 1_800))
    (root / "day=2026-12-01" / "_SUCCESS").write_text("")
    (root / ".part-0.parquet.crc").write_text("junk")
    r = am.map_query(
        str(root / "day=*" / "**" / "*.parquet"), None, pg.uri, "dst", schema=pg.schema, workers=2
    )
    assert r.rows_written == 2_400
    assert pg.query(
        f"SELECT day, region, count(*) FROM {pg.t('dst')} GROUP BY 1, 2 ORDER BY 1, 2"
    ) == [
        (dt.date(2026, 11, 30), "eu", 1_000),
        (dt.date(2026, 11, 30), "us", 800),
        (dt.date(2026, 12, 1), "eu", 600),
    ]
    # a folder is every file under it, partitions included
    plan = am.plan_query(str(root), None)
    assert sum(c.estimated_rows or 0 for c in plan.chunks) == 2_400
    assert "region=us" in "\n".join(c.predicate for c in plan.chunks) or len(plan.chunks) == 1


def test_uploads_bytes_file_objects_and_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARROWMAPPER_SPOOL", str(tmp_path / "spool"))
    data = table(1_200)
    target = f"sqlite:///{tmp_path / 'out.db'}"
    csv_bytes = csv_text(data.to_pylist()).encode()
    r1 = am.map_query(csv_bytes, None, target, "from_bytes", workers=2, chunk_size=500)
    buf = io.BytesIO()
    pq.write_table(data, buf, row_group_size=300)
    buf.seek(0)
    r2 = am.map_query(buf, None, target, "from_fileobj", workers=2, chunk_size=500)
    r3 = am.map_query(gzip.compress(jsonl_text(data.to_pylist()).encode()), None, target, "from_gz")
    assert (r1.rows_written, r2.rows_written, r3.rows_written) == (1_200, 1_200, 1_200)
    con = sqlite3.connect(tmp_path / "out.db")
    for name in ("from_bytes", "from_fileobj", "from_gz"):
        got = con.execute(f"SELECT id, name, amount, big FROM {name} ORDER BY id").fetchall()
        assert got == [(r["id"], r["name"], r["amount"], r["big"]) for r in data.to_pylist()], name
    # the same bytes are the same spooled file (a resumed job finds it); text mode is refused
    assert len(list((tmp_path / "spool").iterdir())) == 3
    am.map_query(csv_bytes, None, target, "again")
    assert len(list((tmp_path / "spool").iterdir())) == 3
    with pytest.raises(ConfigError, match="binary mode"):
        am.map_query(io.StringIO("a,b\n1,2\n"), None, target, "text_mode")


def test_strategies_rowgroup_file_none_and_refusals(tmp_path: Path, pg: PG) -> None:
    for i in range(3):
        write(tmp_path / f"f{i}.parquet", "parquet", table(1_500, i * 1_500))  # 3 row groups each
    pattern = str(tmp_path / "*.parquet")
    by_rg = am.plan_query(pattern, None, chunk_size=500)
    assert len(by_rg.chunks) == 9 and "row groups" in by_rg.reason
    grouped = am.plan_query(pattern, None, chunk_size=3_000)  # row groups of several files
    assert len(grouped.chunks) == 2
    assert "f0.parquet" in grouped.chunks[0].predicate and "f1.parquet" in grouped.chunks[0].predicate
    assert len(am.plan_query(pattern, None, strategy="file").chunks) == 3
    assert len(am.plan_query(pattern, None, strategy="none").chunks) == 1
    with pytest.raises(ConfigError, match="database sources"):
        am.plan_query(pattern, None, strategy="key")
    with pytest.raises(ConfigError, match="key="):
        am.plan_query(pattern, None, key="id")
    with pytest.raises(ArrowMapperError, match="cuts files"):
        am.plan_query(pg.uri, "SELECT 1 AS x", strategy="rowgroup")
    r = am.map_query(pattern, None, pg.uri, "dst", schema=pg.schema, chunk_size=500, workers=2)
    assert r.chunks == 9 and r.rows_written == 4_500
    assert pg.scalar(f"SELECT count(DISTINCT id) FROM {pg.t('dst')}") == 4_500


def test_query_filters_and_projects_and_whole_queries_run_once(pg: PG, tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", "parquet", table())
    r = am.map_query(
        str(path),
        "SELECT id, upper(name) AS name FROM self WHERE ok AND id < 1000",
        pg.uri,
        "dst",
        schema=pg.schema,
        chunk_size=500,
        workers=2,
    )
    assert r.rows_written == 500
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')} WHERE id % 2 = 1") == 0
    plan = am.plan_query(str(path), "SELECT ok, count(*) AS n FROM self GROUP BY ok", chunk_size=500)
    assert len(plan.chunks) == 1 and "needs every row at once" in plan.reason
    r = am.map_query(
        str(path), "SELECT ok, count(*) AS n FROM self GROUP BY ok", pg.uri, "agg", schema=pg.schema
    )
    assert sorted(pg.query(f"SELECT ok, n FROM {pg.t('agg')}")) == [(False, N // 2), (True, N // 2)]
    with pytest.raises(ConfigError, match="self"):
        am.map_query(str(path), "SELECT nope FROM self", pg.uri, "bad", schema=pg.schema)
    assert pg.scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = 'bad'",
        (pg.schema,),
    ) == 0


def test_schema_union_by_name_overrides_and_conflicts(pg: PG, tmp_path: Path) -> None:
    a = pa.table({"id": pa.array([1, 2], pa.int32()), "x": ["a", "b"]})
    b = pa.table({"id": pa.array([3], pa.int64()), "y": [1.5]})  # wider id, other column
    pq.write_table(a, tmp_path / "a.parquet")
    pq.write_table(b, tmp_path / "b.parquet")
    r = am.map_query(str(tmp_path / "*.parquet"), None, pg.uri, "dst", schema=pg.schema)
    assert r.rows_written == 3
    assert pg.query(f"SELECT id, x, y FROM {pg.t('dst')} ORDER BY id") == [
        (1, "a", None), (2, "b", None), (3, None, 1.5)
    ]
    c = pa.table({"id": ["three"], "x": ["c"]})
    pq.write_table(c, tmp_path / "c.parquet")
    with pytest.raises(ConfigError, match=r"'id' is int64 in .*a\.parquet.* but string in .*c\.parquet"):
        am.plan_query(str(tmp_path / "*.parquet"), None)
    # columns= reads a CSV column as the type given (here a decimal, exactly)
    (tmp_path / "m.csv").write_text("id,price\n1,0.10\n2,12345678901234.99\n")
    src = am.files(str(tmp_path / "m.csv"), columns={"price": "decimal128(18, 2)"})
    am.map_query(src, None, pg.uri, "money", schema=pg.schema)
    assert pg.query(f"SELECT price FROM {pg.t('money')} ORDER BY id") == [
        (Decimal("0.10"),), (Decimal("12345678901234.99"),)
    ]


def test_type_preflight_against_existing_table_refuses_before_writing(pg: PG, tmp_path: Path) -> None:
    pg.execute(f"CREATE TABLE {pg.t('dst')} (id integer, name text)")
    (tmp_path / "t.csv").write_text("id,name\nabc,x\n")
    with pytest.raises(ArrowMapperError, match="id"):
        am.map_query(str(tmp_path / "t.csv"), None, pg.uri, "dst", schema=pg.schema)
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 0


def test_bad_csv_row_names_the_file_others_commit_resume_after_fix(pg: PG, tmp_path: Path) -> None:
    for i in range(3):
        write(tmp_path / f"p{i}.csv", "csv", table(1_000, i * 1_000))
    bad = tmp_path / "p1.csv"
    lines = bad.read_text().split("\n")
    lines[500] = "this,row,has,too,few"
    bad.write_text("\n".join(lines))
    src = str(tmp_path / "p*.csv")
    kw: dict[str, Any] = dict(schema=pg.schema, job_id="bad-csv", strategy="file", workers=2)
    with pytest.raises(JobFailed, match="p1.csv") as failed:
        am.map_query(src, None, pg.uri, "dst", **kw, retry=am.RetryConfig(max_retries=1, base_delay=0.01))
    assert failed.value.result.rows_written == 2_000  # the other files committed
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 2_000
    write(bad, "csv", table(1_000, 1_000))  # fixed: a new version of the file
    r = am.map_query(src, None, pg.uri, "dst", **kw, resume=True)
    assert r.success and any("p1.csv" in n and "cut again" in n for n in r.notes)
    assert pg_rows(pg, "dst") == expected(
        pa.concat_tables([table(1_000, 0), table(1_000, 1_000), table(1_000, 2_000)])
    )


def test_resume_refuses_a_file_that_changed_after_its_rows_committed(pg: PG, tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", "parquet", table(6_000))
    src = str(tmp_path / "*.parquet")
    kw: dict[str, Any] = dict(
        schema=pg.schema, job_id="changed", chunk_size=1_000, workers=2,
        transform="tests.helpers:fail_on_id",
    )
    # the first run loads every row group but the one holding id 5777 (the transform fails)
    with pytest.raises(JobFailed):
        am.map_query(src, None, pg.uri, "dst", **kw, retry=am.RetryConfig(max_retries=0))
    assert 0 < pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") < 6_000
    # ... then the file changes: its committed row groups hold the old rows
    write(path, "parquet", table(6_010))
    with pytest.raises(ArrowMapperError, match=r"d\.parquet changed"):
        am.map_query(src, None, pg.uri, "dst", **kw, resume=True)
    write(tmp_path / "other.parquet", "parquet", table(10))
    path.unlink()
    with pytest.raises(ArrowMapperError, match=r"d\.parquet is gone"):
        am.map_query(src, None, pg.uri, "dst", **kw, resume=True)


def test_verify_a_file_job_and_a_file_that_changed_since(pg: PG, tmp_path: Path) -> None:
    write(tmp_path / "a.parquet", "parquet", table(2_000))
    write(tmp_path / "b.csv", "csv", table(1_000, 2_000))
    src = [str(tmp_path / "a.parquet"), str(tmp_path / "b.csv")]
    am.map_query(src, None, pg.uri, "dst", schema=pg.schema, job_id="v1", chunk_size=700)
    report = am.verify(src, pg.uri, "v1", schema=pg.schema)
    assert report.ok, report.summary() if hasattr(report, "summary") else report
    assert report.source_total == 3_000
    write(tmp_path / "b.csv", "csv", table(999, 2_000))  # a row less, a new version
    report = am.verify(src, pg.uri, "v1", schema=pg.schema)
    assert not report.ok
    assert any("b.csv changed" in p for c in report.checks for p in c.problems)


def test_incremental_runs_load_only_new_files(pg: PG, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    write(drop / "2026-11-29.parquet", "parquet", table(1_000))
    write(drop / "2026-11-30.csv", "csv", table(500, 1_000))
    kw: dict[str, Any] = dict(schema=pg.schema, incremental=True, workers=2)
    r1 = am.map_query(str(drop), None, pg.uri, "dst", **kw, job_id="night-1")
    assert r1.rows_written == 1_500
    r2 = am.map_query(str(drop), None, pg.uri, "dst", **kw, job_id="night-2")  # nothing new
    assert r2.success and r2.rows_written == 0
    write(drop / "2026-12-01.parquet", "parquet", table(700, 1_500))
    r3 = am.map_query(str(drop), None, pg.uri, "dst", **kw, job_id="night-3")
    assert r3.rows_written == 700
    loaded = pa.concat_tables([table(1_000), table(500, 1_000), table(700, 1_500)])
    assert pg_rows(pg, "dst") == expected(loaded)
    # a file loaded before that changed would be loaded twice: refused, naming it
    write(drop / "2026-11-30.csv", "csv", table(501, 1_000))
    with pytest.raises(ConfigError, match=r"2026-11-30\.csv was loaded .* by job 'night-1'"):
        am.map_query(str(drop), None, pg.uri, "dst", **kw, job_id="night-4")
    with pytest.raises(ConfigError, match="files"):
        am.map_query(pg.uri, pg.t("dst"), pg.uri, "dst2", **kw)
    with pytest.raises(ConfigError, match="append"):
        am.map_query(str(drop), None, pg.uri, "dst", **{**kw, "mode": "replace"})


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_byte_ranges_split_at_records_with_quoted_newlines(pg: PG, tmp_path: Path, fmt: str) -> None:
    data = table(6_000)
    path = write(tmp_path / f"big.{fmt}", fmt, data)
    plan = am.plan_query(str(path), None, chunk_size=800)
    assert len(plan.chunks) >= 4 and "byte ranges" in plan.reason, plan.reason
    assert "bytes " in plan.chunks[1].predicate
    r = am.map_query(str(path), None, pg.uri, "dst", schema=pg.schema, chunk_size=800, workers=2)
    assert r.chunks == len(plan.chunks) and r.rows_written == 6_000
    assert pg_rows(pg, "dst") == expected(data)
    # compressed: whole files, and the plan says why
    gz = write(tmp_path / f"big.{fmt}.gz", fmt, data, "gzip")
    assert "compressed, whole" in am.plan_query(str(gz), None, chunk_size=800).reason


def test_csv_options_in_the_uri_and_unsafe_splits_fall_back(pg: PG, tmp_path: Path) -> None:
    path = tmp_path / "odd.dat"
    lines = ["id;label;price"] + [
        f"{i};{'n/a' if i % 10 == 0 else 'caf' + chr(233) + f' {i}'};{i}.5" for i in range(20_000)
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    src = am.files(str(path), format="csv", delimiter=";", null=["n/a"], encoding="latin1", escape="\\")
    assert src.startswith("file://") and "delimiter=%3B" in src
    plan = am.plan_query(src, None, chunk_size=2_000)
    assert len(plan.chunks) == 1 and "escape" in plan.reason  # backslash escapes: no safe split
    r = am.map_query(src, None, pg.uri, "dst", schema=pg.schema)
    assert r.rows_written == 20_000
    assert pg.query(f"SELECT label FROM {pg.t('dst')} WHERE id IN (1, 10) ORDER BY id") == [
        ("café 1",), (None,)
    ]
    with pytest.raises(ConfigError, match="unknown file source option 'delimter'"):
        am.plan_query(f"file://{path}?delimter=%3B", None)
    with pytest.raises(ConfigError, match="cannot tell the format"):
        am.plan_query(str(path), None)
    (tmp_path / "latin.csv").write_bytes("id,label\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ArrowMapperError, match="encoding="):
        am.plan_query(str(tmp_path / "latin.csv"), None)
    with pytest.raises(ConfigError, match="no files match"):
        am.plan_query(str(tmp_path / "nothing-*.csv"), None)


def test_compat_layer_takes_a_file_source_like_a_query(pg: PG, tmp_path: Path) -> None:
    from arrowmapper.compat import ParallelProcessor, execute_query_parallel

    write(tmp_path / "a.parquet", "parquet", table(1_500))
    write(tmp_path / "b.parquet", "parquet", table(500, 1_500))
    glob = str(tmp_path / "*.parquet")
    res = execute_query_parallel(glob, None, pg.uri, pg.schema, "dst", max_workers=2, chunk_size=500)
    assert res.success and res.total_rows == 2_000
    proc = ParallelProcessor(max_workers=2)
    res = proc.process_mapper_job(
        [tmp_path / "a.parquet"], "SELECT id FROM self WHERE id < 10", pg.uri, pg.schema, "few"
    )
    assert res.success and pg.scalar(f"SELECT count(*) FROM {pg.t('few')}") == 10
    # below min_rows_for_parallel: one chunk in this process, still exact
    res = execute_query_parallel(
        glob, None, pg.uri, pg.schema, "small", params={"min_rows_for_parallel": 1_000_000}
    )
    assert res.success and pg.scalar(f"SELECT count(DISTINCT id) FROM {pg.t('small')}") == 2_000


def test_merge_from_files_upserts_and_refuses_duplicate_keys(pg: PG, tmp_path: Path) -> None:
    pg.execute(f"CREATE TABLE {pg.t('dst')} (id bigint PRIMARY KEY, name text)")
    pg.execute(f"INSERT INTO {pg.t('dst')} VALUES (1, 'old'), (99, 'kept')")
    (tmp_path / "a.csv").write_text('id,name\n1,"new"\n2,"two"\n')
    r = am.map_query(str(tmp_path / "a.csv"), None, pg.uri, "dst", schema=pg.schema, mode="merge")
    assert r.success
    assert pg.query(f"SELECT id, name FROM {pg.t('dst')} ORDER BY id") == [
        (1, "new"), (2, "two"), (99, "kept")
    ]
    (tmp_path / "b.csv").write_text('id,name\n2,"again"\n')
    with pytest.raises(ConfigError, match="mode='merge'"):
        am.map_query(str(tmp_path / "*.csv"), None, pg.uri, "dst", schema=pg.schema, mode="merge")


def test_csv_byte_ranges_and_partitions_into_sqlite(tmp_path: Path) -> None:
    data = table(4_000)
    write(tmp_path / "in" / "kind=a" / "big.csv", "csv", data)
    (tmp_path / "in" / "kind=b").mkdir()
    (tmp_path / "in" / "kind=b" / "array.json").write_text('[{"id": 1}]')
    target = f"sqlite:///{tmp_path / 'out.db'}"
    with pytest.raises(ArrowMapperError, match="JSON array"):
        am.map_query(str(tmp_path / "in"), None, target, "t")
    (tmp_path / "in" / "kind=b" / "array.json").unlink()
    r = am.map_query(str(tmp_path / "in"), None, target, "t", chunk_size=500, workers=2)
    assert r.chunks > 2 and r.rows_written == 4_000
    con = sqlite3.connect(tmp_path / "out.db")
    got = con.execute("SELECT id, name, amount, big, kind FROM t ORDER BY id").fetchall()
    assert got == [(r["id"], r["name"], r["amount"], r["big"], "a") for r in data.to_pylist()]


def test_a_resume_with_other_parsing_options_is_another_job(pg: PG, tmp_path: Path) -> None:
    """The fingerprint of a file source holds every path and option: a resume that would
    parse the files differently (another delimiter, NULL marker, type, extra file) is refused."""
    (tmp_path / "a.csv").write_text('id,name\n1,"x"\n2,"NA"\n')
    (tmp_path / "b.csv").write_text('id,name\n3,"y"\n')
    first = str(tmp_path / "a.csv")
    am.map_query(first, None, pg.uri, "dst", schema=pg.schema, job_id="opts")
    for other in (
        am.files(first, null=["", "NA"]),
        am.files(first, columns={"id": "string"}),
        [first, str(tmp_path / "b.csv")],
    ):
        with pytest.raises(ConfigError, match="not the same job"):
            am.map_query(other, None, pg.uri, "dst", schema=pg.schema, job_id="opts", resume=True)
    again = am.map_query(
        am.files(first, bad_rows="skip"), None, pg.uri, "dst", schema=pg.schema, job_id="opts",
        resume=True,
    )
    assert again.rows_written == 0
