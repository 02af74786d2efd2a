"""arrowmapper.sources.filesplit: CSV/TSV and JSON-lines files split into byte ranges of whole
records; parsing header + each range and concatenating gives the whole file's rows."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowmapper.sources.filesplit import Split, read_range, split_csv, split_lines

BOM = b"\xef\xbb\xbf"
PARSE = pcsv.ParseOptions(newlines_in_values=True)


# -- helpers ----------------------------------------------------------------------------------


def _write(tmp_path: Path, data: bytes, name: str = "f.csv") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _read_csv(data: bytes, *, header: bool, delimiter: str, encoding: str) -> pa.Table:
    """pyarrow's parse of ``data`` with every column a string (names from a first parse).

    pyarrow refuses a block that is one record with no line end ("cannot infer number of
    columns"): a line end is added, as a reader does for a last range."""
    if not data.endswith(b"\n"):
        data += b"\n"
    read = pcsv.ReadOptions(autogenerate_column_names=not header, encoding=encoding)
    parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    names = pcsv.read_csv(io.BytesIO(data), read_options=read, parse_options=parse).column_names
    convert = pcsv.ConvertOptions(column_types={n: pa.string() for n in names})
    return pcsv.read_csv(
        io.BytesIO(data), read_options=read, parse_options=parse, convert_options=convert
    )


def _check_invariants(split: Split, data: bytes, quote: bytes | None = b'"') -> None:
    """Ranges in order, contiguous, non-empty, from the header's end to EOF; every inner
    boundary just after a \\n at which the quotes balance."""
    pos = len(split.header)
    assert data[:pos] == split.header or split.header == b""
    for start, end in split.ranges:
        assert start == pos and end > start
        pos = end
    if split.ranges:
        assert pos == len(data)
    for _, end in split.ranges[:-1]:
        assert data[end - 1 : end] == b"\n"
        if quote is not None:
            assert data[:end].count(quote) % 2 == 0
    assert split.safe == (len(split.ranges) > 1)


def _split_rows(path: str, split: Split, **read: Any) -> list[dict[str, Any]]:
    """The rows of header + each range, concatenated (a range of empty lines only: no rows)."""
    rows: list[dict[str, Any]] = []
    for start, end in split.ranges:
        chunk = read_range(path, start, end)
        if not read["header"] and not chunk.lstrip(BOM).strip(b"\r\n"):
            continue  # pyarrow refuses a headerless block of empty lines; it holds no rows
        rows += _read_csv(split.header + chunk, **read).to_pylist()
    return rows


# -- property tests ---------------------------------------------------------------------------

PIECES = ["a", "Z", "0", " ", ",", "\t", ";", '"', '""', "\n", "\r\n", "\r", "é", "€", "😀", "ß"]
texts = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    delimiter = draw(st.sampled_from([",", "\t", ";"]))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    encoding = draw(st.sampled_from(["utf8", "latin-1"]))
    header = draw(st.booleans())
    ncols = draw(st.integers(1, 4))
    nrows = draw(st.integers(0 if header else 1, 12))

    def field(value: str) -> str:
        special = any(c in value for c in (delimiter, '"', "\n", "\r"))
        if special or draw(st.booleans()) or (ncols == 1 and value == "" and not header):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = []
    if header:
        lines.append(delimiter.join(field(f"c{i}" + draw(texts)) for i in range(ncols)))
    for _ in range(nrows):
        lines.append(delimiter.join(field(draw(texts)) for _ in range(ncols)))
    text = eol.join(lines) + (eol if draw(st.booleans()) else "")
    data = text.encode(encoding, errors="replace")
    if encoding == "utf8" and draw(st.booleans()):
        data = BOM + data
    return data, {"header": header, "delimiter": delimiter, "encoding": encoding}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=csv_files(), data=st.data())
def test_csv_ranges_parse_to_the_whole_file(
    tmp_path: Path, case: tuple[bytes, dict[str, Any]], data: st.DataObject
) -> None:
    raw, read = case
    path = _write(tmp_path, raw)
    part_bytes = data.draw(st.integers(1, max(1, len(raw) // 2)), label="part_bytes")
    split = split_csv(path, part_bytes, header=read["header"], encoding=read["encoding"])
    _check_invariants(split, raw)
    if read["header"]:
        assert split.header and raw.startswith(split.header)
    whole = _read_csv(raw, **read).to_pylist()
    assert _split_rows(path, split, **read) == whole


@st.composite
def csv_files_with_literal_quotes(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """CSV whose fields mix RFC 4180 quoting with quotes pyarrow reads as literal characters:
    inside an unquoted field (``12" pipe``, ``a""b``) and after a closing quote (``"ab"c"d``:
    pyarrow reads ``abc"d``)."""
    delimiter = draw(st.sampled_from([",", "\t", ";"]))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    header = draw(st.booleans())
    ncols = draw(st.integers(1, 3))
    plain = st.sampled_from(["a", "Z", " ", "é", "1"])
    tail = st.lists(st.sampled_from(["a", '"', '""', " "]), max_size=4).map("".join)

    def field() -> str:
        kind = draw(st.integers(0, 3))
        if kind == 0:  # quoted: any text, quotes doubled
            return '"' + draw(texts).replace('"', '""') + '"'
        if kind == 1:  # unquoted, literal quotes after its first character
            return draw(plain) + draw(tail)
        if kind == 2:  # quoted, then unquoted characters (quotes among them literal)
            return '"' + draw(texts).replace('"', '""') + '"' + draw(plain) + draw(tail)
        return "".join(draw(st.lists(plain, min_size=1 if ncols == 1 else 0, max_size=3)))

    lines = []
    if header:
        lines.append(delimiter.join(f"c{i}" + draw(st.sampled_from(["", '"', 'x"y'])) for i in range(ncols)))
    for _ in range(draw(st.integers(1, 15))):
        lines.append(delimiter.join(field() for _ in range(ncols)))
    text = eol.join(lines) + (eol if draw(st.booleans()) else "")
    data = text.encode("utf8")
    if draw(st.booleans()):
        data = BOM + data
    return data, {"header": header, "delimiter": delimiter, "encoding": "utf8"}


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=csv_files_with_literal_quotes(), data=st.data())
def test_csv_ranges_with_literal_quotes_parse_to_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: tuple[bytes, dict[str, Any]],
    data: st.DataObject
) -> None:
    from arrowmapper.sources import filesplit

    raw, read = case
    path = _write(tmp_path, raw)
    # small slices: literal quotes at and across the scan's slice boundaries
    monkeypatch.setattr(filesplit, "_SCAN", data.draw(st.sampled_from([1, 2, 3, 7, 1 << 22])))
    if data.draw(st.booleans(), label="without numpy"):
        monkeypatch.setattr(filesplit, "_quote_ranks", filesplit._quote_ranks_arrow)
    part_bytes = data.draw(st.integers(1, max(1, len(raw) // 2)), label="part_bytes")
    split = split_csv(
        path, part_bytes, header=read["header"], encoding="utf8", delimiter=read["delimiter"]
    )
    pos = len(split.header)
    for start, end in split.ranges:
        assert start == pos and end > start
        pos = end
    whole = _read_csv(raw, **read).to_pylist()
    assert _split_rows(path, split, **read) == whole


def test_literal_quote_inside_an_unquoted_field(tmp_path: Path) -> None:
    lines = [f'{i},"multi\nline {i}"' if i % 3 else f'{i},12" pipe' for i in range(300)]
    raw = ("id,d\n" + "\n".join(lines) + "\n").encode()
    path = _write(tmp_path, raw)
    counted = split_csv(path, 200)  # without the delimiter: every quote counts
    split = split_csv(path, 200, delimiter=",")
    assert split.safe and "100 quotes inside unquoted fields" in split.reason
    read = {"header": True, "delimiter": ",", "encoding": "utf8"}
    whole = _read_csv(raw, **read).to_pylist()
    assert len(whole) == 300 and _split_rows(path, split, **read) == whole
    # what the check is for: counting every quote cuts inside quoted fields
    with contextlib.suppress(pa.ArrowInvalid):
        assert _split_rows(path, counted, **read) != whole
    odd = split_csv(path, 200, delimiter="§")
    assert odd.ranges == ((0, len(raw)),) and "delimiter" in odd.reason


@st.composite
def json_files(draw: st.DrawFn) -> bytes:
    values = st.one_of(st.none(), texts, st.text(max_size=8))
    records = draw(st.lists(st.fixed_dictionaries({"s": values, "n": values}), min_size=1))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for rec in records:
        lines.append(json.dumps(rec, ensure_ascii=draw(st.booleans())))
        if draw(st.integers(0, 5)) == 0:
            lines.append("")  # a blank line
    end = eol if draw(st.booleans()) else ""
    return (eol.join(lines) + end).encode("utf8", errors="surrogatepass")


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=json_files(), data=st.data())
def test_json_lines_ranges_parse_to_the_whole_file(
    tmp_path: Path, raw: bytes, data: st.DataObject
) -> None:
    path = _write(tmp_path, raw, "f.jsonl")
    part_bytes = data.draw(st.integers(1, max(1, len(raw) // 2)), label="part_bytes")
    split = split_lines(path, part_bytes)
    _check_invariants(split, raw, quote=None)
    assert split.header == b""
    schema = pa.schema([("s", pa.string()), ("n", pa.string())])
    opts = pjson.ParseOptions(explicit_schema=schema)
    whole = pjson.read_json(io.BytesIO(raw), parse_options=opts).to_pylist()
    rows: list[dict[str, Any]] = []
    for start, end in split.ranges:
        rows += pjson.read_json(
            io.BytesIO(read_range(path, start, end)), parse_options=opts
        ).to_pylist()
    assert rows == whole


# -- splitting --------------------------------------------------------------------------------


def test_splits_at_record_boundaries_not_at_quoted_newlines(tmp_path: Path) -> None:
    rows = [f'{i},"line one\nline two, ""quoted""\r\n",x\r\n' for i in range(200)]
    raw = ("id,note,z\r\n" + "".join(rows)).encode()
    path = _write(tmp_path, raw)
    split = split_csv(path, 100)
    assert split.header == b"id,note,z\r\n"
    assert split.safe and len(split.ranges) > 10
    assert "ranges of about 100 bytes" in split.reason
    _check_invariants(split, raw)
    for start, end in split.ranges:
        assert raw[start:end].startswith(tuple(f"{i},".encode() for i in range(200)))
        assert raw[start:end].endswith(b",x\r\n")
    read = {"header": True, "delimiter": ",", "encoding": "utf8"}
    assert _split_rows(path, split, **read) == _read_csv(raw, **read).to_pylist()


def test_range_ends_at_first_boundary_at_or_after_part_bytes(tmp_path: Path) -> None:
    raw = b"h\n" + b"abcd\n" * 10  # records of 5 bytes after a 2-byte header
    path = _write(tmp_path, raw)
    assert split_csv(path, 5).ranges == tuple((2 + 5 * i, 7 + 5 * i) for i in range(10))
    assert split_csv(path, 6).ranges == tuple((2 + 10 * i, 12 + 10 * i) for i in range(5))
    assert split_csv(path, 1).ranges == split_csv(path, 5).ranges
    assert split_csv(path, 24).ranges == ((2, 27), (27, 52))


def test_header_with_quoted_newline(tmp_path: Path) -> None:
    raw = b'"a\nb",c\n' + b"1,2\n" * 20
    split = split_csv(_write(tmp_path, raw), 8)
    assert split.header == b'"a\nb",c\n'
    _check_invariants(split, raw)
    assert len(split.ranges) == 10


def test_no_trailing_newline(tmp_path: Path) -> None:
    raw = b"a,b\n" + b"1,2\n" * 9 + b'3,"4'  # the last record is cut: it ends at EOF
    raw += b'"'
    path = _write(tmp_path, raw)
    split = split_csv(path, 8)
    _check_invariants(split, raw)
    assert split.ranges[-1][1] == len(raw)
    assert read_range(path, *split.ranges[-1]).endswith(b'3,"4"')
    read = {"header": True, "delimiter": ",", "encoding": "utf8"}
    assert _split_rows(path, split, **read)[-1] == {"a": "3", "b": "4"}


def test_tsv(tmp_path: Path) -> None:
    raw = b"a\tb\n" + b'1\t"x\ty\nz"\n' * 30
    path = _write(tmp_path, raw, "f.tsv")
    split = split_csv(path, 20)
    assert split.safe
    _check_invariants(split, raw)
    read = {"header": True, "delimiter": "\t", "encoding": "utf8"}
    rows = _split_rows(path, split, **read)
    assert rows == [{"a": "1", "b": "x\ty\nz"}] * 30


def test_bom_belongs_to_the_header(tmp_path: Path) -> None:
    raw = BOM + b"name,v\n" + "é,€\n".encode() * 20
    path = _write(tmp_path, raw)
    split = split_csv(path, 10)
    assert split.header == BOM + b"name,v\n"
    read = {"header": True, "delimiter": ",", "encoding": "utf8"}
    for start, end in split.ranges:
        table = _read_csv(split.header + read_range(path, start, end), **read)
        assert table.column_names == ["name", "v"]  # pyarrow skips the BOM
    assert _split_rows(path, split, **read) == [{"name": "é", "v": "€"}] * 20


def test_no_header(tmp_path: Path) -> None:
    raw = b'1,"a\nb"\n' * 20
    split = split_csv(_write(tmp_path, raw), 8, header=False)
    assert split.header == b"" and split.ranges[0][0] == 0
    _check_invariants(split, raw)
    assert len(split.ranges) == 20


def test_no_quoting_splits_at_every_newline(tmp_path: Path) -> None:
    raw = b"a\n" + b'"x\ny"\n' * 10
    split = split_csv(_write(tmp_path, raw), 1, quote=None)
    assert len(split.ranges) == 20  # a quoted newline is a boundary too: quote=None
    assert "no quoting" in split.reason
    _check_invariants(split, raw, quote=None)


def test_other_quote_character(tmp_path: Path) -> None:
    raw = b"a,b\n" + b"1,'x\ny'\n" * 10
    split = split_csv(_write(tmp_path, raw), 1, quote="'")
    assert len(split.ranges) == 10
    _check_invariants(split, raw, quote=b"'")


# -- what is not split, and why ---------------------------------------------------------------


def test_small_file_is_one_range(tmp_path: Path) -> None:
    raw = b"a,b\n" + b"1,2\n" * 10
    assert len(split_csv(_write(tmp_path, raw), 20).ranges) == 2  # 40 bytes: not < 2 * 20
    split = split_csv(_write(tmp_path, raw), 21)
    assert split.ranges == ((4, len(raw)),)
    assert not split.safe
    assert split.reason.startswith("one range:") and "fewer than 2 * part_bytes" in split.reason


def test_no_boundary_after_part_bytes_is_one_range(tmp_path: Path) -> None:
    raw = b'a\n"' + b"x\n" * 50 + b'"\n'  # one record, all of it quoted newlines
    split = split_csv(_write(tmp_path, raw), 10)
    assert split.ranges == ((2, len(raw)),)
    assert split.reason.startswith("one range: no boundary")


def test_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path, b"")
    for split in (split_csv(path, 10), split_csv(path, 10, header=False), split_lines(path, 10)):
        assert split == Split(b"", (), "no ranges: the file is empty")
        assert not split.safe


@pytest.mark.parametrize("raw", [b"a,b\n", b"a,b\r\n", b"a,b", b'"a\nb",c\n', b'"a\rb",c'])
def test_header_only(tmp_path: Path, raw: bytes) -> None:
    split = split_csv(_write(tmp_path, raw), 1)
    assert split.header == raw and split.ranges == ()
    assert split.reason.startswith("no ranges:") and "only the header" in split.reason


def test_one_record_without_line_end_and_no_header(tmp_path: Path) -> None:
    split = split_csv(_write(tmp_path, b"1,2"), 1, header=False)
    assert split.ranges == ((0, 3),)


def test_escape_character_falls_back(tmp_path: Path) -> None:
    raw = b"a,b\n" + b'1,"x\\"\ny"\n' * 20
    split = split_csv(_write(tmp_path, raw), 8, escape="\\")
    assert split == Split(b"", ((0, len(raw)),), split.reason)
    assert split.reason.startswith("one range: the escape character '\\\\'")
    assert not split.safe


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "cp500", "iso2022_jp"])
def test_encoding_that_is_not_ascii_compatible_falls_back(tmp_path: Path, encoding: str) -> None:
    raw = ("a,b\n" + "1,日\n" * 20).encode(encoding, errors="replace")
    split = split_csv(_write(tmp_path, raw), 8, encoding=encoding)
    assert split.header == b"" and split.ranges == ((0, len(raw)),)
    assert "not ASCII-compatible" in split.reason


@pytest.mark.parametrize("encoding", ["utf8", "utf-8-sig", "latin-1", "cp1252", "shift_jis"])
def test_ascii_compatible_encodings_split(tmp_path: Path, encoding: str) -> None:
    text = "a,b\n" + '1,"ソ\nx"\n' * 20 if encoding in ("utf8", "utf-8-sig", "shift_jis") else ""
    text = text or "a,b\n" + '1,"é\nx"\n' * 20
    raw = text.encode(encoding)
    path = _write(tmp_path, raw)
    split = split_csv(path, 8, encoding=encoding)
    assert split.safe
    _check_invariants(split, raw)
    read = {"header": True, "delimiter": ",", "encoding": encoding}
    assert _split_rows(path, split, **read) == _read_csv(raw, **read).to_pylist()


def test_carriage_return_line_ends_fall_back(tmp_path: Path) -> None:
    raw = b"a,b\r" + b"1,2\r" * 20
    split = split_csv(_write(tmp_path, raw), 4)
    assert split == Split(b"", ((0, len(raw)),), split.reason)
    assert "\\r line ends" in split.reason and "no \\n" in split.reason


def test_header_ending_in_bare_carriage_return_falls_back(tmp_path: Path) -> None:
    raw = b"a,b\r1,2\r" * 10 + b"3,4\n" * 10  # mostly \r line ends, then a \n
    split = split_csv(_write(tmp_path, raw), 4)
    assert split.header == b"" and split.ranges == ((0, len(raw)),)
    assert "bare \\r" in split.reason


def test_unbalanced_quote_in_the_data(tmp_path: Path) -> None:
    good = b"1,2\n" * 10
    raw = b"a,b\n" + good + b'3,"open\n' + b"5,6\n" * 10
    split = split_csv(_write(tmp_path, raw), 8)
    _check_invariants(split, raw)  # no boundary where the quotes do not balance
    assert split.ranges[-1] == (4 + len(good), len(raw))
    assert len(split.ranges) == 6
    assert "do not balance" in split.reason and "unclosed quote" in split.reason


def test_unbalanced_quote_in_the_header(tmp_path: Path) -> None:
    raw = b'a,"b\n' + b"1,2\n" * 10
    split = split_csv(_write(tmp_path, raw), 4)
    assert split.header == raw and split.ranges == ()
    assert "never closes its quotes" in split.reason


def test_bad_arguments(tmp_path: Path) -> None:
    path = _write(tmp_path, b"a\n1\n")
    for bad in (0, -1):
        with pytest.raises(ValueError, match="part_bytes"):
            split_csv(path, bad)
        with pytest.raises(ValueError, match="part_bytes"):
            split_lines(path, bad)
    for quote in ("", "ab", "\n", "«"):
        with pytest.raises(ValueError, match="quote"):
            split_csv(path, 1, quote=quote)
    with pytest.raises(ValueError, match="unknown encoding"):
        split_csv(path, 1, encoding="no-such-codec")
    with pytest.raises(FileNotFoundError):
        split_csv(str(tmp_path / "missing.csv"), 1)


# -- JSON lines and read_range ----------------------------------------------------------------


def test_split_lines(tmp_path: Path) -> None:
    raw = b"".join(json.dumps({"i": i, "s": "a\nb"}).encode() + b"\n" for i in range(50))
    path = _write(tmp_path, raw, "f.jsonl")
    split = split_lines(path, 60)
    assert split.safe and split.header == b""
    _check_invariants(split, raw, quote=None)
    assert "line ends" in split.reason
    rows = []
    for start, end in split.ranges:
        rows += pjson.read_json(io.BytesIO(read_range(path, start, end))).to_pylist()
    assert rows == [{"i": i, "s": "a\nb"} for i in range(50)]


def test_split_lines_small_and_without_newline(tmp_path: Path) -> None:
    path = _write(tmp_path, b'{"a": 1}\n{"a": 2}', "f.jsonl")
    split = split_lines(path, 8)
    assert split.ranges == ((0, 9), (9, 17))
    small = split_lines(path, 9)
    assert small.ranges == ((0, 17),) and "fewer than 2 * part_bytes" in small.reason
    one = split_lines(_write(tmp_path, b'{"a": 1}' * 4, "g.jsonl"), 1)
    assert one.ranges == ((0, 32),) and one.reason.startswith("one range: no boundary")


def test_read_range(tmp_path: Path) -> None:
    path = _write(tmp_path, b"0123456789")
    assert read_range(path, 2, 5) == b"234"
    assert read_range(path, 4, 4) == b""
    with pytest.raises(ValueError):
        read_range(path, 5, 4)
    with pytest.raises(ValueError):
        read_range(path, -1, 4)
    with pytest.raises(EOFError, match="changed since it was split"):
        read_range(path, 8, 12)
