"""CSV values are never changed by inference: numbers a double or an integer type would change
(leading zeros, 17 significant digits, out of range) stay text in the sample and are refused
after it (arrowmapper.sources.files.csvtext); TSV files are read without quoting unless told;
files after the sampled ones take the sampled types. No database needed (SQLite targets)."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arrowmapper as am
from arrowmapper.config.files import QUOTE_AUTO, FileSpec
from arrowmapper.errors import ArrowMapperError, SourceError
from arrowmapper.sources import open_source, source_endpoint
from arrowmapper.sources.files.csvtext import Inexact, convert_column, problem
from arrowmapper.sources.files.schema import csv_convert


def _layout(src: str) -> Any:
    with open_source(source_endpoint(src)) as reader:
        return reader.describe("")


def _types(src: str) -> dict[str, str]:
    return {c.name: c.sql_type for c in _layout(src).columns}


@pytest.mark.parametrize(
    ("text", "typ", "inferred", "why"),
    [
        ("00501", pa.int64(), True, "leading zero"),
        ("-007", pa.int64(), True, "leading zero"),
        ("00501", pa.int64(), False, None),  # columns= said int64
        ("-0", pa.int64(), True, None),
        ("0.5", pa.float64(), True, None),
        ("00.5", pa.float64(), True, "leading zero"),
        ("1234567890123456.78", pa.float64(), True, "significant digits"),
        ("1234567890123456.78", pa.float64(), False, None),  # columns= said double
        ("0.30000000000000004", pa.float64(), True, None),  # a double's own shortest text
        ("0.1000000000000000055511151231257827", pa.float64(), True, "significant digits"),
        ("1e400", pa.float64(), True, "beyond the range"),
        ("1e400", pa.float64(), False, "beyond the range"),
        ("-1e400", pa.float64(), True, "beyond the range"),
        ("1e-400", pa.float64(), True, "too small"),
        ("inf", pa.float64(), True, None),
        ("-Infinity", pa.float64(), True, None),
        ("nan", pa.float64(), True, None),
        ("1e39", pa.float32(), False, "beyond the range"),
        ("1.5e3", pa.float64(), True, None),
    ],
)
def test_problem(text: str, typ: pa.DataType, inferred: bool, why: str | None) -> None:
    value = pa.array([text]).cast(typ)[0].as_py()
    got = problem(text, value, typ, inferred)
    assert (got is None) if why is None else (got is not None and why in got), got


def test_convert_column_names_the_first_value_and_row() -> None:
    col = pa.array(["1", None, " 2 ", "0", "0042", "7"])
    assert convert_column(pa.array(["1", None, " 2 "]), pa.int64(), True, "n").to_pylist() == [
        1,
        None,
        2,
    ]
    with pytest.raises(Inexact) as err:
        convert_column(col, pa.int64(), True, "n")
    assert (err.value.index, err.value.value) == (4, "0042")
    assert "columns={'n': 'string'}" in err.value.message()
    assert convert_column(col, pa.int64(), False, "n").to_pylist()[4] == 42
    with pytest.raises(Inexact) as err:
        convert_column(pa.array(["1", "2", "x", "4"]), pa.int64(), True, "n")
    assert (err.value.index, err.value.reason) == (2, "is not int64")


_NUMBERS = st.lists(
    st.sampled_from(["0", "1", "9", ".", "e", "-", "+", " ", "\t", "inf", "nan", "x", "5" * 9]),
    min_size=1,
    max_size=6,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_NUMBERS, quoted=st.booleans())
def test_converted_as_the_csv_reader_converts(text: str, quoted: bool) -> None:
    """Read as text and converted here, a value is what pyarrow's CSV converter makes of it
    (or refused by both), but where the type would change it (then refused here)."""
    spec = FileSpec(paths=("/x.csv",))
    field = f'"{text}"' if quoted else text
    data = f"c\n{field}\n".encode()
    for typ in (pa.int64(), pa.int32(), pa.float64(), pa.float32()):
        try:
            want = pcsv.read_csv(io.BytesIO(data), convert_options=csv_convert(spec, {"c": typ}))
            expected: Any = want.column(0)[0].as_py()
        except pa.ArrowInvalid:
            expected = pa.ArrowInvalid
        text_col = (
            pcsv.read_csv(io.BytesIO(data), convert_options=csv_convert(spec, {"c": pa.string()}))
            .column(0)
            .combine_chunks()
        )
        try:
            got: Any = convert_column(text_col, typ, False, "c")[0].as_py()
        except Inexact as exc:
            if "beyond the range" in exc.reason:
                continue
            got = pa.ArrowInvalid
        assert got == expected or (got != got and expected != expected), (typ, field)


def test_file_spec_quote_default_and_explicit() -> None:
    spec = FileSpec.parse("/data/a.tsv")
    assert spec.quote == QUOTE_AUTO and "quote" not in spec.uri
    assert spec.quote_for(tab=True) is None and spec.quote_for(tab=False) == '"'
    quoted = FileSpec.parse(am.files("/data/a.tsv", quote='"'))
    assert quoted.quote_for(tab=True) == '"' and FileSpec.parse(quoted.uri) == quoted
    off = FileSpec.parse("file:///data/a.csv?quote=none")
    assert off.quote_for(tab=False) is None


def test_tsv_is_read_without_quoting_and_a_quoted_one_is_refused(tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'out.db'}"
    (tmp_path / "a.tsv").write_text('id\tv\n1\t"quoted start\n2\t5\'10"\n')
    assert am.map_query(str(tmp_path / "a.tsv"), None, target, "a").rows_written == 2
    (tmp_path / "q.tsv").write_text('id\tv\n1\t"a b"\n2\t"c ""d"""\n')
    with pytest.raises(SourceError, match=r"looks quoted .*quote="):
        am.plan_query(str(tmp_path / "q.tsv"), None)
    r = am.map_query(am.files(str(tmp_path / "q.tsv"), quote='"'), None, target, "q")
    assert r.rows_written == 2
    am.map_query(am.files(str(tmp_path / "q.tsv"), quote=None), None, target, "q_text")
    con = sqlite3.connect(tmp_path / "out.db")
    assert con.execute("SELECT v FROM a ORDER BY id").fetchall() == [
        ('"quoted start',),
        ("5'10\"",),
    ]
    assert con.execute("SELECT v FROM q ORDER BY id").fetchall() == [("a b",), ('c "d"',)]
    assert con.execute("SELECT v FROM q_text ORDER BY id").fetchall() == [
        ('"a b"',),
        ('"c ""d"""',),
    ]


def test_files_after_the_sample_take_the_sampled_types(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / f"f{i:03d}.csv").write_text(
            f"id,amount,at\n{i},{i}.5,2026-01-0{1 + i % 9} 10:00:00\n"
        )
    (tmp_path / "f900.csv").write_text("id,amount,at,extra\n900,1.25,2026-02-01 00:00:00.5,x\n")
    layout = _layout(str(tmp_path / "*.csv"))
    assert {c.name: c.sql_type for c in layout.columns} == {
        "id": "int64",
        "amount": "double",
        "at": "timestamp[us]",
        "extra": "string",
    }
    assert any("were not sampled" in n for n in layout.notes), layout.notes
    target = f"sqlite:///{tmp_path / 'out.db'}"
    assert am.map_query(str(tmp_path / "*.csv"), None, target, "t").rows_written == 21
    # a value a later file holds that the sampled type would change is refused, naming it
    (tmp_path / "f901.csv").write_text("id,amount,at\n0901,1,2026-01-01 00:00:00\n")
    with pytest.raises(ArrowMapperError, match=r"f901\.csv .*line 2.*'0901' has a leading zero"):
        am.map_query(str(tmp_path / "*.csv"), None, target, "t2")


def test_sample_keeps_inexact_numbers_as_text_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(
        "id,price,f,tiny\n1,1234567890123456.78,1e400,1e-400\n2,0.5,1,0\n"
    )
    layout = _layout(str(tmp_path / "p.csv"))
    assert {c.name: c.sql_type for c in layout.columns} == {
        "id": "int64",
        "price": "string",
        "f": "string",
        "tiny": "string",
    }
    notes = " ".join(layout.notes)
    assert "decimal128(38, 2)" in notes and "'1e400' is beyond the range" in notes


def test_bad_rows_rejects_a_value_its_type_would_change(tmp_path: Path) -> None:
    path = tmp_path / "zips.csv"
    with open(path, "w") as f:
        f.write("id,zip\n")
        for i in range(100_000):
            f.write(f"{i},{10000 + i % 80000}\n")
        f.write("100000,00501\n100001,7\n")
    target = f"sqlite:///{tmp_path / 'out.db'}"
    src = am.files(str(path), bad_rows="file", rejects=str(tmp_path / "rej"))
    r = am.map_query(src, None, target, "z", strategy="file", job_id="z1")
    assert (r.rows_written, r.rows_rejected) == (100_001, 1)
    side = (tmp_path / "rej" / "z1" / "chunk-0.csv").read_text()
    assert "100002" in side and "'00501' has a leading zero" in side


def test_header_only_without_a_line_end(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,name\n1,x\n")
    (tmp_path / "b.csv").write_text("id,name")
    target = f"sqlite:///{tmp_path / 'out.db'}"
    assert am.map_query(str(tmp_path / "*.csv"), None, target, "t").rows_written == 1
    assert _types(str(tmp_path / "*.csv")) == {"id": "int64", "name": "string"}
