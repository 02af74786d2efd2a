"""JSON lines beyond the hostile review's cases: what inference does with values a plain
pyarrow read would change (nested values, numbers a double rounds, timestamps of two kinds),
encodings across byte ranges, and how the files of a glob agree."""

from __future__ import annotations

import csv
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

import arrowmapper as am
from arrowmapper.errors import ArrowMapperError
from tests.conftest import PG


def _sqlite(tmp_path: Path) -> tuple[str, Path]:
    db = tmp_path / "out.db"
    return f"sqlite:///{db}", db


def test_nested_values_load_as_json_text_by_default(pg: PG, tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    lines = ['{"id": 1, "o": {"a": 1, "b": [1, 2.50]}, "t": [1, "x"]}',
             '{"id": 2, "o": [3], "t": null}']  # o: an object, then an array
    path.write_text("\n".join(lines) + "\n")
    r = am.map_query(str(path), None, pg.uri, "dst", schema=pg.schema)
    assert r.rows_written == 2
    assert any("'o'" in n and "JSON text" in n for n in r.notes), r.notes
    assert pg.query(f"SELECT id, o::text, t::text FROM {pg.t('dst')} ORDER BY id") == [
        (1, '{"a": 1, "b": [1, 2.50]}', '[1, "x"]'),  # the text as the file writes it
        (2, "[3]", None),
    ]
    types = dict(pg.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'dst'", (pg.schema,)
    ))
    assert types == {"id": "bigint", "o": "json", "t": "json"}


def test_numbers_a_double_rounds_are_decimals(pg: PG, tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": 1, "p": 1234567890123456.78, "f": 1.5}\n'
                    '{"id": 2, "p": 0.5, "f": 1e300}\n')
    r = am.map_query(str(path), None, pg.uri, "dst", schema=pg.schema)
    assert any("'p'" in n and "decimal128(38, 2)" in n for n in r.notes), r.notes
    assert pg.query(f"SELECT p, f FROM {pg.t('dst')} ORDER BY id") == [
        (Decimal("1234567890123456.78"), 1.5),
        (Decimal("0.50"), 1e300),  # a double holds 1e300: it stays one
    ]


def test_a_double_and_a_decimal_in_two_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"id": 1, "v": 1.5}\n')
    (tmp_path / "b.jsonl").write_text('{"id": 2, "v": 9223372036854775813}\n')
    with pytest.raises(ArrowMapperError, match=r"'v' is double .* decimal128\(38, 0\)"):
        am.plan_query(str(tmp_path), None)


def test_timestamps_of_the_other_kind_are_refused_or_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": 1, "ts": "2026-01-01T00:00:00+02:00"}\n'
                    '{"id": 2, "ts": "2026-01-01T00:00:00"}\n')
    target, db = _sqlite(tmp_path)
    # both kinds in the sample: text, as the file writes it
    r = am.map_query(str(path), None, target, "both")
    assert any("'ts'" in n and "read as text" in n for n in r.notes), r.notes
    con = sqlite3.connect(db)
    assert con.execute("SELECT ts FROM both ORDER BY id").fetchall() == [
        ("2026-01-01T00:00:00+02:00",), ("2026-01-01T00:00:00",)
    ]
    # told tz-aware: the naive one is refused (never assumed UTC) ...
    src = am.files(str(path), columns={"ts": "timestamp[us, tz=UTC]"})
    with pytest.raises(ArrowMapperError, match="expected a zone offset"):
        am.map_query(src, None, target, "told")
    # ... or, with bad_rows, rejected with the reason
    src = am.files(str(path), columns={"ts": "timestamp[us, tz=UTC]"}, bad_rows="file",
                   rejects=str(tmp_path / "rej"))
    r = am.map_query(src, None, target, "rejected", job_id="ts")
    assert (r.rows_written, r.rows_rejected) == (1, 1)
    with open(tmp_path / "rej" / "ts" / "chunk-0.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["line"], r["raw"]) for r in rows] == [("2", '{"id": 2, "ts": "2026-01-01T00:00:00"}')]
    assert "'ts'" in rows[0]["reason"] and "zone offset" in rows[0]["reason"]


@pytest.mark.parametrize("bad_rows", [None, "skip"])
def test_latin1_in_byte_ranges_and_utf16_whole(tmp_path: Path, bad_rows: str | None) -> None:
    target, db = _sqlite(tmp_path)
    rows = "".join(json.dumps({"id": i, "n": "café"}, ensure_ascii=False) + "\n" for i in range(20_000))
    (tmp_path / "l1.jsonl").write_bytes(rows.encode("latin-1"))
    (tmp_path / "u16.jsonl").write_bytes(rows.encode("utf-16"))
    for name, encoding in (("l1", "latin1"), ("u16", "utf-16")):
        src = am.files(str(tmp_path / f"{name}.jsonl"), encoding=encoding, bad_rows=bad_rows)
        plan = am.plan_query(src, None, chunk_size=2_000)
        assert ("byte ranges" in plan.reason) == (name == "l1"), plan.reason
        r = am.map_query(src, None, target, name, chunk_size=2_000, workers=2)
        assert r.rows_written == 20_000
        got = sqlite3.connect(db).execute(f"SELECT count(DISTINCT id), min(n), max(n) FROM {name}")
        assert got.fetchall() == [(20_000, "café", "café")]


def test_text_that_is_not_utf8_is_refused_with_the_encoding_hint(tmp_path: Path) -> None:
    path = tmp_path / "l1.jsonl"
    path.write_bytes('{"id": 1, "n": "café"}\n'.encode("latin-1"))
    target, _ = _sqlite(tmp_path)
    with pytest.raises(ArrowMapperError, match=r"'n'.*invalid UTF8.*encoding="):
        am.map_query(str(path), None, target, "t")


def test_a_key_null_in_one_file_is_typed_by_another(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"id": 1, "v": null, "w": null}\n')
    (tmp_path / "b.jsonl").write_text('{"id": 2, "v": 7, "w": null}\n')
    target, db = _sqlite(tmp_path)
    am.map_query(str(tmp_path), None, target, "t")
    con = sqlite3.connect(db)
    assert con.execute("SELECT id, v, w FROM t ORDER BY id").fetchall() == [(1, None, None), (2, 7, None)]
    assert dict((r[1], r[2]) for r in con.execute("PRAGMA table_info(t)")) == {
        "id": "INTEGER", "v": "INTEGER", "w": "TEXT"
    }


def test_a_late_key_loads_with_columns(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with open(path, "w") as f:
        for i in range(30_000):
            f.write(json.dumps({"id": i, "pad": "x" * 30}) + "\n")
        f.write(json.dumps({"id": 30_000, "pad": "", "late": {"k": 1}}) + "\n")
    target, db = _sqlite(tmp_path)
    r = am.map_query(am.files(str(path), columns={"late": "json"}), None, target, "t")
    assert r.rows_written == 30_001
    con = sqlite3.connect(db)
    assert [r[1] for r in con.execute("PRAGMA table_info(t)")] == ["id", "pad", "late"]
    assert con.execute("SELECT late FROM t WHERE id = 30000").fetchall() == [('{"k": 1}',)]


def test_only_empty_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "b.jsonl").write_text("\n")
    with pytest.raises(ArrowMapperError, match="no columns"):
        am.plan_query(str(tmp_path), None)
