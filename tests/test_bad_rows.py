"""bad_rows: a CSV or JSON-lines row that does not parse fails its chunk (naming the file and
line), is skipped and counted (``"skip"``), or is also written with the reason to the chunk's
side file (``"file"``) -- exactly once per committed chunk, through a retry after a worker died
between the side file and the commit, and through a resume. Real PostgreSQL, real workers."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

import arrowmapper as am
from arrowmapper.cli import _parser
from arrowmapper.config import JobConfig
from arrowmapper.errors import ArrowMapperError, ConfigError, JobFailed
from arrowmapper.sources import ReadOptions, open_source, source_endpoint
from arrowmapper.sources.files.rejects import Rejected, SideFile
from tests.conftest import PG

GOOD = 2_000
#: (line in the file, the row's text, the reason written for it); line 1 is the header
BAD = [
    (502, "short,row", "expected 3 fields, got 2"),
    (1003, '1001,"too",1.5,long', "expected 3 fields, got 4"),
    (1504, 'abc,"not a number",2.5', "column 'id': 'abc' is not int64"),
]


def bad_csv(path: Path, first: int = 0) -> list[tuple[int, str, float]]:
    """``GOOD`` good rows (one of them spanning two lines), the ``BAD`` rows among them."""
    good = [(first + i, f"name {i}" if i != 7 else "two\nlines", i * 0.5) for i in range(GOOD)]
    lines = ["id,name,amount"] + [f'{i},"{n}",{a}' for i, n, a in good]
    # line numbers are physical: the row with a line break makes every later line one more
    for line, text, _ in BAD:
        lines.insert(line - 2, text)
    path.write_text("\n".join(lines) + "\n")
    return good


def side_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def loaded(pg: PG, table: str) -> list[tuple[Any, ...]]:
    return pg.query(f"SELECT id, name, amount FROM {pg.t(table)} ORDER BY id")


def test_csv_bad_rows_fail_skip_or_go_to_a_side_file(pg: PG, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    good = bad_csv(path)
    lines = path.read_text().split("\n")
    assert [lines[n - 1] for n, _, _ in BAD] == [t for _, t, _ in BAD]
    # 'abc' is in the sample, so inference would read id as text: columns= says it is int64
    src = am.files(str(path), columns={"id": "int64"}, rejects=str(tmp_path / "rejects"))
    kw: dict[str, Any] = dict(schema=pg.schema, retry=am.RetryConfig(max_retries=0))
    # (the preflight's sample reads the bad row: nothing is created)
    with pytest.raises(ArrowMapperError, match=r"t\.csv \(the whole file, line 502\)"):
        am.map_query(src, None, pg.uri, "failed", **kw)

    r = am.map_query(src, None, pg.uri, "skipped", **kw, bad_rows="skip", job_id="skip")
    assert r.success and r.rows_written == GOOD and r.rows_rejected == 3
    assert loaded(pg, "skipped") == good
    assert "3 bad rows rejected" in r.summary()
    assert json.loads(r.to_json())["rows_rejected"] == 3
    assert [c.rows_rejected for c in r.chunk_results] == [3]
    assert not (tmp_path / "rejects").exists()  # skip writes nothing

    r = am.map_query(src, None, pg.uri, "kept", **kw, bad_rows="file", job_id="keep")
    assert r.success and r.rows_rejected == 3 and loaded(pg, "kept") == good
    assert any("rejects" in n and "bad_rows=file" in n for n in r.notes)
    assert sorted(p.name for p in (tmp_path / "rejects" / "keep").iterdir()) == ["chunk-0.csv"]
    rows = side_rows(tmp_path / "rejects" / "keep" / "chunk-0.csv")
    assert [(r["file"], int(r["line"]), r["reason"], r["raw"]) for r in rows] == [
        (str(path), line, reason, text) for line, text, reason in BAD
    ]


def test_a_broken_json_line_is_rejected_by_line(pg: PG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.jsonl"
    lines = [json.dumps({"id": i, "name": f"n{i}"}) for i in range(1_000)]
    lines.insert(300, '{"id": 300.5, "name": "broken"')  # line 301
    lines.insert(600, '{"id": "six hundred", "name": "x"}')  # line 601
    lines.insert(900, "")  # an empty line is no row, and no bad one
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)  # rejects= unsaid: ./arrowmapper-rejects, made absolute
    monkeypatch.setenv("MAPPER_BAD_ROWS", "file")  # the environment's default for file jobs
    r = am.map_query(str(path), None, pg.uri, "dst", schema=pg.schema, job_id="json")
    assert r.success and r.rows_written == 1_000 and r.rows_rejected == 2
    assert pg.query(f"SELECT count(DISTINCT id), min(id), max(id) FROM {pg.t('dst')}") == [(1_000, 0, 999)]
    rows = side_rows(tmp_path / "arrowmapper-rejects" / "json" / "chunk-0.csv")
    assert [(int(r["line"]), r["reason"]) for r in rows] == [
        (301, "not valid JSON: Missing a comma or '}' after an object member."),
        (601, "field 'id' is a string, not a number"),
    ]
    assert rows[1]["raw"] == '{"id": "six hundred", "name": "x"}'


def test_a_retried_chunk_replaces_its_side_file(pg: PG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker of chunk 1 dies after its side file is in place and before its COMMIT: the
    retry reads the file again and replaces the side file, so its rows are there once."""
    for i in range(3):
        bad_csv(tmp_path / f"p{i}.csv", first=i * 10_000)
    monkeypatch.setenv("ARROWMAPPER_FAULT", "before_commit:1")
    monkeypatch.setenv("ARROWMAPPER_FAULT_MARKER", str(tmp_path / "fault"))
    src = am.files(str(tmp_path / "p*.csv"), columns={"id": "int64"}, rejects=str(tmp_path / "rej"))
    r = am.map_query(
        src, None, pg.uri, "dst", schema=pg.schema, job_id="retried", strategy="file", workers=2,
        bad_rows="file", retry=am.RetryConfig(max_retries=2, base_delay=0.05),
    )
    assert (tmp_path / "fault").read_text().startswith("before_commit:1:")
    assert r.success and r.rows_written == 3 * GOOD and r.rows_rejected == 9
    assert pg.scalar(f"SELECT count(DISTINCT id) FROM {pg.t('dst')}") == 3 * GOOD
    folder = tmp_path / "rej" / "retried"
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-0.csv", "chunk-1.csv", "chunk-2.csv"]
    for cid in range(3):
        rows = side_rows(folder / f"chunk-{cid}.csv")
        assert [(Path(r["file"]).name, int(r["line"])) for r in rows] == [
            (f"p{cid}.csv", line) for line, _, _ in BAD
        ]


def test_resume_with_bad_rows_after_a_bad_row_failed_the_job(pg: PG, tmp_path: Path) -> None:
    """bad_rows is not part of the job's identity: a job that failed on a bad row resumes with
    bad_rows='file'; only the chunk that failed is read again, and only it has a side file."""
    clean = [(i, f"n{i}", i * 0.5) for i in range(GOOD)]
    for i in (0, 2):
        rows = [(n + i * 10_000, s, a) for n, s, a in clean]
        (tmp_path / f"p{i}.csv").write_text(
            "id,name,amount\n" + "".join(f'{n},"{s}",{a}\n' for n, s, a in rows)
        )
    good = bad_csv(tmp_path / "p1.csv", first=10_000)
    src = am.files(str(tmp_path / "p*.csv"), columns={"id": "int64"}, rejects=str(tmp_path / "rej"))
    kw: dict[str, Any] = dict(schema=pg.schema, job_id="resumed", strategy="file", workers=2)
    with pytest.raises(JobFailed, match=r"p1\.csv .*line 502"):
        am.map_query(src, None, pg.uri, "dst", **kw, retry=am.RetryConfig(max_retries=0))
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 2 * GOOD
    r = am.map_query(src, None, pg.uri, "dst", **kw, resume=True, bad_rows="file")
    assert r.success and r.rows_written == GOOD and r.rows_rejected == 3
    assert sorted(r.skipped_chunks) == [0, 2]
    assert [p.name for p in (tmp_path / "rej" / "resumed").iterdir()] == ["chunk-1.csv"]
    assert len(side_rows(tmp_path / "rej" / "resumed" / "chunk-1.csv")) == 3
    assert pg.query(f"SELECT id, name, amount FROM {pg.t('dst')} WHERE id >= 10000 AND id < 20000 ORDER BY id") == good
    assert pg.scalar(f"SELECT count(*) FROM {pg.t('dst')}") == 3 * GOOD


def test_side_file_replaces_and_removes(tmp_path: Path) -> None:
    """A chunk with no bad row removes a side file an uncommitted attempt left; a half of a
    split chunk removes the file of the chunk it replaces; a read that does not finish leaves
    no file."""
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "chunk-4.csv").write_text("stale")
    SideFile(folder, 4).commit()
    assert not (folder / "chunk-4.csv").exists()
    (folder / "chunk-3.csv").write_text("the chunk that was split")
    half = SideFile(folder, 9, replaces=(3,))
    half.write(Rejected("/f.csv", 7, "why", "raw"))
    half.commit()
    half.discard()
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-9.csv"]
    broken = SideFile(folder, 10)
    broken.write(Rejected("/f.csv", None, "why", "a,b"))
    broken.discard()
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-9.csv"]


def test_a_read_outside_a_job_writes_no_side_file(tmp_path: Path) -> None:
    """verify and the preflight read chunks too (no job id): they count, and write nothing."""
    path = tmp_path / "t.csv"
    bad_csv(path)
    src = am.files(str(path), columns={"id": "int64"}, bad_rows="file", rejects=str(tmp_path / "rej"))
    with open_source(source_endpoint(src)) as source:
        layout = source.describe("")
        chunk = source.plan("", "auto", None, 50_000, 1).chunks[0]
        rows = sum(b.num_rows for b in source.read_chunk(chunk, layout))
        assert (rows, source.rejected(chunk.chunk_id)) == (GOOD, 3)
        assert source.probe("", layout).sample(5_000).num_rows == GOOD
        assert not (tmp_path / "rej").exists()
        rows = sum(b.num_rows for b in source.read_chunk(chunk, layout, ReadOptions(job_id="j")))
        assert [p.name for p in (tmp_path / "rej" / "j").iterdir()] == ["chunk-0.csv"]


def test_bad_rows_is_an_option_of_file_sources(tmp_path: Path) -> None:
    path = str(tmp_path / "t.csv")
    c = JobConfig.build({"source": path, "bad_rows": "skip"}, env={})
    assert c.source == f"file://{path}?bad_rows=skip"
    # over the URI's own; the job file's key and MAPPER_BAD_ROWS say the same
    c = JobConfig.build({"source": am.files(path, bad_rows="skip")}, {"bad_rows": "file"}, env={})
    assert "bad_rows=file" in c.source and c.sources["bad_rows"] == "params"
    c = JobConfig.build({"source": path}, env={"MAPPER_BAD_ROWS": "skip"})
    assert c.bad_rows == "skip" and c.source.endswith("?bad_rows=skip")
    with pytest.raises(ConfigError, match="bad_rows must be one of skip, file"):
        JobConfig.build({"source": path, "bad_rows": "ignore"}, env={})
    db = "postgresql://u@localhost/db"
    with pytest.raises(ConfigError, match="the source is a database"):
        JobConfig.build({"source": db, "bad_rows": "skip"}, env={})
    # the environment's default for file jobs does not break a database job
    c = JobConfig.build({"source": db}, env={"MAPPER_BAD_ROWS": "file"})
    assert c.bad_rows is None and c.source == db
    args = _parser().parse_args(["run", "--source", path, "--bad-rows", "file"])
    assert args.bad_rows == "file"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_lines_are_the_file_s_in_every_byte_range(tmp_path: Path, fmt: str) -> None:
    """A large file is read in byte ranges (the CSV header in front of each): a rejected row's
    line is still its line in the file, past rows that span two lines."""
    if fmt == "csv":
        records = ["id,name"] + [
            f'{i},"name {i}' + ('\nsecond line"' if i % 1000 == 3 else '"') for i in range(10_000)
        ]
        broken = "abc,oops"
    else:
        records = [json.dumps({"id": i, "name": f"name {i}"}) for i in range(10_000)]
        broken = '{"id": "abc"}'
    lines = "\n".join(records).split("\n")
    wanted = []
    for line in (3_000, 7_000, 9_500):
        while lines[line - 1].endswith('line"') or lines[line].endswith('line"'):
            line += 1  # a whole record of one line
        lines[line - 1] = broken
        wanted.append(line)
    path = tmp_path / f"big.{fmt}"
    path.write_text("\n".join(lines))  # no line end after the last record
    columns = {"id": "int64"} if fmt == "csv" else {}
    src = am.files(str(path), bad_rows="file", rejects=str(tmp_path / "rej"), columns=columns)
    with open_source(source_endpoint(src)) as source:
        layout = source.describe("")
        plan = source.plan("", "auto", None, 1_000, 1)
        assert "byte ranges" in plan.reason and len(plan.chunks) >= 3
        rows = rejected = 0
        for chunk in plan.chunks:
            rows += sum(b.num_rows for b in source.read_chunk(chunk, layout, ReadOptions(job_id="j")))
            rejected += source.rejected(chunk.chunk_id)
    assert (rows, rejected) == (10_000 - 3, 3)
    found = [r for f in sorted((tmp_path / "rej" / "j").iterdir()) for r in side_rows(f)]
    assert sorted((int(r["line"]), r["raw"]) for r in found) == [(n, broken) for n in wanted]
