"""Reading a CSV or JSON-lines part with ``bad_rows`` set: a row that does not parse is skipped
and handed to a :class:`~.rejects.Rejects` with the reason, instead of failing the chunk.

**CSV.** A row with the wrong number of fields is skipped by pyarrow's parser itself
(``ParseOptions.invalid_row_handler``, which gives its text and its record number). A value
that does not convert to its column's type would fail pyarrow's whole block, so the part is
parsed with every column as bytes, and each typed column is converted afterwards by pyarrow's
own CSV converter with the job's options (a column's non-null values, quoted, as a one-column
CSV): the values are exactly what a plain read gives. A part is read plainly (pyarrow converts)
until a block fails to convert; only from that block on is it read as bytes. When a column does not convert, halving
finds the values that do not; their rows are rejected (``column 'id': 'abc' is not int64``)
and the rest converted. The line a rejected row starts on, and its raw text, are looked up only
when the rows are kept (``bad_rows="file"``), in one more pass over the part that follows
records as pyarrow does (quote parity, empty lines skipped).

**JSON lines.** Blocks of whole lines are parsed at once; a block that fails is halved until
the lines that fail alone are found (not JSON, not an object, a value of the wrong type, a field
no file has), and the others are read.

Limits: an undecodable byte in a file with ``encoding=`` other than UTF-8, an unterminated
quote, or a line longer than the block size still fail the chunk (the file cannot be cut into
rows). Line numbers count ``\\n``; in a file whose encoding is not ASCII-compatible (UTF-16)
they are left empty and ``raw`` is rebuilt from the values.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import mmap
import re
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ...config.files import FileSpec
from .csvtext import Inexact, checked_columns, exact_batch, first_problem, read_types
from .discover import FileInfo
from .rejects import Rejected, Rejects
from .schema import csv_convert, csv_delimiter, csv_options, csv_quote, overrides

#: bytes of JSON lines parsed at once
JSON_PIECE = 1 << 22
#: bytes read at a time when following lines
_READ = 1 << 20


def tolerant_batches(
    part: dict[str, Any],
    info: FileInfo,
    spec: FileSpec,
    schema: pa.Schema,
    rejects: Rejects,
    open_stream: Callable[[], Any],
) -> Iterator[pa.RecordBatch]:
    """The part's good rows (in the file's columns, typed as ``schema`` says); its bad rows
    go to ``rejects``. ``open_stream``: the part's bytes, from the start, each call (None: a
    byte range of blank lines, no rows)."""
    first = open_stream()
    if first is None:
        return
    opened = [first]

    def stream() -> Any:  # the one opened above first, then anew
        return opened.pop() if opened else open_stream()

    if info.format == "csv":
        yield from _csv(part, info, spec, schema, rejects, stream)
    else:
        from .jsonl import transcoded

        yield from _jsonl(part, info, schema, rejects, lambda: transcoded(stream(), spec))


# --------------------------------------------------------------------------- CSV


def _csv(
    part: dict[str, Any],
    info: FileInfo,
    spec: FileSpec,
    schema: pa.Schema,
    rejects: Rejects,
    open_stream: Callable[[], Any],
) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pcsv

    invalid: list[tuple[int | None, str, str]] = []  # record number, reason, text

    def invalid_row(row: Any) -> str:
        invalid.append(
            (
                row.number,
                f"expected {row.expected_columns} fields, got {row.actual_columns}",
                row.text,
            )
        )
        return "skip"

    def reader(column_types: dict[str, pa.DataType]) -> Any:
        invalid.clear()  # a second pass sees them all again
        read, parse = csv_options(info, spec)
        parse.invalid_row_handler = invalid_row
        return pcsv.open_csv(
            open_stream(),
            read_options=read,
            parse_options=parse,
            convert_options=csv_convert(spec, column_types),
        )

    types = {f.name: f.type for f in schema}
    checked = checked_columns(types, overrides(spec))  # numbers checked exactly (.csvtext)
    bad: list[tuple[int, str, list[Any]]] = []  # index among the parsed rows, reason, values
    done = 0
    try:  # pyarrow converts, at full speed, until a value does not convert
        for batch in reader(read_types(types, checked)):
            batch = exact_batch(batch, types, checked)
            done += batch.num_rows
            yield batch
    except pa.ArrowInvalid:  # ... which fails its whole block: read again from there, as bytes
        seen = 0
        for batch in reader(dict.fromkeys(types, pa.binary())):
            if seen + batch.num_rows <= done:  # converted and sent by the first pass
                seen += batch.num_rows
                continue
            if seen < done:
                batch = batch.slice(done - seen)
                seen = done
            good, wrong = _convert(batch, types, spec, checked)
            for i, reason in wrong:
                bad.append((seen + i, reason, list(batch.slice(i, 1).to_pylist()[0].values())))
            seen += batch.num_rows
            if good.num_rows:
                yield good
    if not invalid and not bad:
        return
    if not rejects.keeps:
        rejects.skip(len(invalid) + len(bad))
        return
    # the record number of each rejected row: pyarrow numbers records from 1, the header
    # included, empty lines not; a parsed row's number counts the invalid rows before it
    first = 2 if spec.header else 1
    numbers = sorted(n for n, _, _ in invalid if n is not None)
    rows: list[tuple[int | None, str, str]] = list(invalid)
    delimiter = csv_delimiter(info, spec)
    for k, reason, values in bad:
        rows.append((_record(first + k, numbers), reason, _unparse(values, delimiter)))
    rows.sort(key=lambda r: (r[0] is None, r[0] or 0))
    found: dict[int, tuple[int, str]] = {}
    wanted = {n for n, _, _ in rows if n is not None}
    if wanted and _ascii_compatible(spec.encoding):
        found = _records(open_stream(), wanted, csv_quote(info, spec), spec.escape, spec.encoding)
    base = _line_base(part, info) if found else 0
    for n, reason, text in rows:
        at = found.get(n) if n is not None else None
        line, raw = (base + at[0], at[1]) if at else (None, text)
        rejects.add(Rejected(info.path, line, reason, raw))


def _record(number: int, invalid: list[int]) -> int:
    """The record number of the parsed row that would be ``number`` with no invalid row,
    given the (sorted) record numbers of the invalid rows."""
    for n in invalid:
        if n > number:
            break
        number += 1
    return number


def _convert(
    batch: pa.RecordBatch,
    types: dict[str, pa.DataType],
    spec: FileSpec,
    checked: dict[str, bool] | None = None,
) -> tuple[pa.RecordBatch, list[tuple[int, str]]]:
    """``batch`` (every column bytes) with each column converted to its type; the rows with
    a value that does not convert (or, in a ``checked`` column, that its type would change:
    :mod:`.csvtext`) left out, and returned as (row, reason)."""
    checked = checked or {}
    wrong: dict[int, list[str]] = {}
    for name in batch.schema.names:
        typ = types.get(name, pa.binary())
        column = batch.column(name)
        inferred = checked.get(name)
        try:
            _to_type(column, typ, spec, inferred)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            for i in _failing(column, typ, spec, inferred):
                value = column[i].as_py()
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                what = "is not valid UTF-8 text" if _is_text(typ) else f"is not {typ}"
                if inferred is not None:
                    try:
                        _to_type(column.slice(i, 1), typ, spec, inferred)
                    except Inexact as exc:
                        what = exc.reason
                    except (pa.ArrowInvalid, pa.ArrowTypeError):
                        pass
                wrong.setdefault(i, []).append(f"column {name!r}: {text!r} {what}")
    if wrong:
        keep = pa.array([i not in wrong for i in range(batch.num_rows)], pa.bool_())
        batch = batch.filter(keep)
    arrays = [
        _to_type(batch.column(n), types.get(n, pa.binary()), spec, checked.get(n))
        for n in batch.schema.names
    ]
    good = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
    return good, [(i, "; ".join(reasons)) for i, reasons in sorted(wrong.items())]


def _is_text(typ: pa.DataType) -> bool:
    return bool(pa.types.is_string(typ) or pa.types.is_large_string(typ))


def _to_type(
    column: pa.Array, typ: pa.DataType, spec: FileSpec, inferred: bool | None = None
) -> pa.Array:
    """A bytes column as ``typ``, converted as pyarrow's CSV reader converts it (ArrowInvalid
    when a value does not convert); ``inferred`` not None: a number column checked as
    :mod:`.csvtext` checks it (:class:`~.csvtext.Inexact` for a value its type would change;
    ``inferred``: its type was inferred, not given)."""
    if pa.types.is_binary(typ):
        return column
    if _is_text(typ):
        return column.cast(typ)  # checks the bytes are UTF-8, as the CSV reader does
    import pyarrow.csv as pcsv

    values = column.drop_null() if column.null_count else column
    if len(values) == 0:
        return pa.nulls(len(column), typ)
    # each value quoted, one a line: the CSV converter parses exactly what it parses in the
    # file (a quoted value is never a NULL text, and non-null values are what reach here)
    quoted = pc.binary_join_element_wise(
        b'"', pc.replace_substring(values, b'"', b'""'), b'"\n', b""
    )
    joined = pc.binary_join(
        pa.ListArray.from_arrays(pa.array([0, len(quoted)], pa.int32()), quoted), b""
    )
    converted = pcsv.read_csv(
        pa.BufferReader(joined[0].as_buffer()),
        read_options=pcsv.ReadOptions(column_names=["c"], use_threads=False, block_size=1 << 24),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=csv_convert(spec, {"c": typ}),
    ).column(0)
    out = converted.combine_chunks() if converted.num_chunks != 1 else converted.chunk(0)
    if len(out) != len(values):  # pragma: no cover - one value a line, always
        raise pa.ArrowInvalid("a value did not convert as one row")
    if inferred is not None:
        text = pc.ascii_trim(values.cast(pa.string()), " \t")
        found = first_problem(text, out, typ, inferred)
        if found is not None:
            raise Inexact("", found[0], text[found[0]].as_py(), found[1], typ)
    if column.null_count:
        valid = column.is_valid()
        at = pc.subtract(pc.cumulative_sum(pc.cast(valid, pa.int64())), 1)
        out = out.take(pc.if_else(valid, at, pa.scalar(None, pa.int64())))
    return out


def _failing(
    column: pa.Array, typ: pa.DataType, spec: FileSpec, inferred: bool | None = None
) -> list[int]:
    """The rows of ``column`` whose value does not convert to ``typ``.

    Halving with the CSV converter costs a parse per step (about half a millisecond), so the
    values are first checked with Arrow's cast, which parses numbers, decimals, dates and
    timestamps with the same parsers (booleans against the true and false texts), at a
    fraction of that; a few such candidates are each confirmed by the CSV converter. The rows
    left must then convert with the CSV converter, which has the last word: what the cast let
    through and the converter refuses is found by halving with the converter itself."""
    quick = _quick_failing(column, typ, spec)
    if quick is None:
        return _halving(column, lambda part: _to_type(part, typ, spec, inferred))
    if len(quick) <= CONFIRM:
        quick = [i for i in quick if _fails(column.slice(i, 1), typ, spec, inferred)]
    if not quick:
        kept = column
        where = None
    else:
        mask = [True] * len(column)
        for i in quick:
            mask[i] = False
        keep = pa.array(mask, pa.bool_())
        kept = column.filter(keep)
        where = pc.indices_nonzero(keep).to_pylist()
    if not _fails(kept, typ, spec, inferred):
        return quick
    more = _halving(kept, lambda part: _to_type(part, typ, spec, inferred))
    return sorted(quick + [where[i] if where is not None else i for i in more])


#: candidates from the quick check confirmed one by one with the CSV converter (above this
#: many in one column of one block, the cast's verdict stands)
CONFIRM = 64


def _fails(
    column: pa.Array, typ: pa.DataType, spec: FileSpec, inferred: bool | None = None
) -> bool:
    try:
        _to_type(column, typ, spec, inferred)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return True
    return False


def _quick_failing(column: pa.Array, typ: pa.DataType, spec: FileSpec) -> list[int] | None:
    """The rows whose value Arrow's cast (booleans: the true and false texts) refuses, blanks
    around it trimmed; None for a type the cast does not parse as the CSV reader does."""
    try:
        text = pc.utf8_trim_whitespace(column.cast(pa.string()))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # not UTF-8: the converter decides
    if pa.types.is_boolean(typ):
        options = csv_convert(spec, None)
        words = pa.array([*options.true_values, *options.false_values], pa.string())
        ok = pc.fill_null(pc.or_(pc.is_null(text), pc.is_in(text, value_set=words)), True)
        refused: list[int] = pc.indices_nonzero(pc.invert(ok)).to_pylist()
        return refused
    parsed = (
        pa.types.is_integer(typ)
        or pa.types.is_floating(typ)
        or pa.types.is_decimal(typ)
        or pa.types.is_date32(typ)
        or pa.types.is_timestamp(typ)
    )
    if not parsed:
        return None
    return _halving(text, lambda part: part.cast(typ))


def _halving(column: pa.Array, convert: Callable[[pa.Array], Any]) -> list[int]:
    """The rows of ``column`` that ``convert`` refuses (ArrowInvalid), found by halving the
    parts it refuses."""
    out: list[int] = []
    todo = [(0, len(column))]
    while todo:
        start, end = todo.pop()
        try:
            convert(column.slice(start, end - start))
            continue
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
        if end - start == 1:
            out.append(start)
            continue
        mid = (start + end) // 2
        todo += [(mid, end), (start, mid)]
    return sorted(out)


def _unparse(values: Any, delimiter: str) -> str:
    """A parsed row written back as CSV (when its text cannot be looked up)."""
    out = io.StringIO()
    texts = [
        None if v is None else v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        for v in values
    ]
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(
        ["" if t is None else t for t in texts]
    )
    return out.getvalue()


def _ascii_compatible(encoding: str) -> bool:
    """Whether ``\\n``, quotes and delimiters are the same bytes in ``encoding`` as in ASCII
    (UTF-8, Latin-1, cp1252, ...; not UTF-16)."""
    try:
        probe = '\n\r",;\t\\'
        return probe.encode(encoding) == probe.encode("ascii") and not codecs.lookup(
            encoding
        ).name.startswith(("utf-16", "utf-32"))
    except (LookupError, UnicodeError):
        return False


def _lines(stream: Any) -> Iterator[bytes]:
    """The lines of ``stream`` (a pyarrow input stream), without their ``\\n``."""
    rest = b""
    with stream:
        while True:
            block = stream.read(_READ)
            if not block:
                break
            lines = (rest + bytes(block)).split(b"\n")
            rest = lines.pop()
            yield from lines
    if rest:
        yield rest


def _records(
    stream: Any, wanted: set[int], quote: str | None, escape: str | None, encoding: str
) -> dict[int, tuple[int, str]]:
    """Record number -> (the line it starts on, counted in ``stream``; its text) for each
    record number in ``wanted``. Records are followed as pyarrow splits them: a line end
    inside quotes (an odd number of quote characters so far, escaped ones not counted) is
    part of the record; an empty line outside quotes is no record."""
    q = quote.encode() if quote else None
    escaped = re.compile(re.escape(escape.encode()) + b".", re.S) if escape else None
    found: dict[int, tuple[int, str]] = {}
    record = line_no = start = 0
    in_quotes = False
    current: list[bytes] | None = None
    for line in _lines(stream):
        line_no += 1
        body = line[:-1] if line.endswith(b"\r") else line
        if not in_quotes:
            if not body:
                continue
            record += 1
            current, start = ([body], line_no) if record in wanted else (None, 0)
        elif current is not None:
            current.append(body)
        if q is not None:
            quotes = (escaped.sub(b"", body) if escaped else body).count(q)
            in_quotes ^= bool(quotes % 2)
        if not in_quotes and current is not None:
            found[record] = (start, b"\n".join(current).decode(encoding, "replace"))
            current = None
            if len(found) == len(wanted):
                break
    return found


def _line_base(part: dict[str, Any], info: FileInfo) -> int:
    """What turns a line counted in the part's bytes into the file's line: a byte range's
    lines before it, less the header's (which is read in front of it)."""
    if part.get("range") is None:
        return 0
    start = part["range"][0]
    header_lines = 0
    with open(info.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        before = sum(m[i : min(i + _READ, start)].count(b"\n") for i in range(0, start, _READ))
        if part.get("header"):
            header_lines = m[: part["header"]].count(b"\n")
    return before - header_lines


# --------------------------------------------------------------------------- JSON lines


def _jsonl(
    part: dict[str, Any],
    info: FileInfo,
    schema: pa.Schema,
    rejects: Rejects,
    open_stream: Callable[[], Any],
) -> Iterator[pa.RecordBatch]:
    from .jsonl import as_text, json_keys, read_schema

    hive = {k for k, _ in info.hive}
    want = pa.schema([f for f in schema if f.name not in hive])
    explicit = read_schema(want)  # JSON text and timestamps as strings, cast after
    as_json = json_keys(want)
    base: int | None = None
    for first, lines in _pieces(open_stream()):
        parsed = as_text(lines, as_json) if as_json else lines
        tables, bad = _json_rows(parsed, explicit, want=want)
        for table in tables:
            yield from table.to_batches()
        if not bad:
            continue
        if not rejects.keeps:
            rejects.skip(len(bad))
            continue
        if base is None:
            base = _line_base(part, info)
        for i, reason in bad:
            raw = lines[i].rstrip(b"\r").decode("utf-8", "replace")
            rejects.add(Rejected(info.path, base + first + i, reason, raw))


def _pieces(stream: Any) -> Iterator[tuple[int, list[bytes]]]:
    """Whole lines, about :data:`JSON_PIECE` bytes at a time: (the first one's line number,
    the lines)."""
    piece: list[bytes] = []
    size = 0
    first = 1
    for line in _lines(stream):
        piece.append(line)
        size += len(line) + 1
        if size >= JSON_PIECE:
            yield first, piece
            first += len(piece)
            piece, size = [], 0
    if piece:
        yield first, piece


_ROW = re.compile(r"\s*in row \d+\s*$")
_CHANGED = re.compile(r"Column\((/[^)]*)?\) changed from (\w+) to (\w+)")


def _json_reason(message: str) -> str:
    """pyarrow's message for a line, in the side file's words."""
    said = _ROW.sub("", message)
    changed = _CHANGED.search(said)
    if changed:
        path, was, now = changed.groups()
        if not path:
            return f"the line is {_a(now)}, not an object"
        return f"field {path.lstrip('/').replace('/', '.')!r} is {_a(now)}, not {_a(was)}"
    if said.startswith("JSON parse error: unexpected field"):
        return "a field that is not one of the columns"
    if said.startswith("JSON parse error: "):
        return "not valid JSON: " + said.removeprefix("JSON parse error: ")
    return said


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _json_rows(
    lines: list[bytes],
    schema: pa.Schema | None,
    infer: bool = False,
    want: pa.Schema | None = None,
) -> tuple[list[pa.Table], list[tuple[int, str]]]:
    """The lines that parse, as tables in order, and (index, reason) of those that do not
    (found by halving the lines that fail together). ``infer``: a field ``schema`` lacks is
    inferred (else it is an error). ``want``: the types the columns are cast to after (a
    value that does not cast fails its line)."""
    tables: list[pa.Table] = []
    bad: list[tuple[int, str]] = []
    todo = [(0, len(lines))]
    while todo:
        start, end = todo.pop()
        text = b"\n".join(lines[start:end])
        if not text.strip():
            continue
        try:
            table = _read_json(text, schema, infer)
            if want is not None:
                from .jsonl import cast_read

                table = cast_read(table, want)
            tables.append(table)
            continue
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            if end - start == 1:
                bad.append((start, _json_reason(str(exc))))
                continue
        mid = (start + end) // 2
        todo += [(mid, end), (start, mid)]
    return tables, bad


def _read_json(text: bytes, schema: pa.Schema | None, infer: bool = False) -> pa.Table:
    import pyarrow.json as pjson

    from .jsonl import check_utf8
    from .read import JSON_BLOCK

    table = pjson.read_json(
        pa.BufferReader(text),
        read_options=pjson.ReadOptions(block_size=JSON_BLOCK, use_threads=False),
        parse_options=pjson.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="infer" if infer else "error"
        ),
    )
    check_utf8(table)
    return table


def json_sample_schema(sample: bytes, explicit: pa.Schema | None) -> pa.Schema:
    """The columns of a JSON-lines sample some of whose lines do not parse (``bad_rows``):
    inferred from the lines that do. Where lines disagree on a field's type and neither type
    holds the other, the type most of them have wins (the others' rows are rejected when
    read)."""
    tables, _ = _json_rows(sample.split(b"\n"), explicit, infer=True)
    votes: dict[str, dict[pa.DataType, int]] = {}
    for table in tables:
        for f in table.schema:
            if not pa.types.is_null(f.type):
                count = votes.setdefault(f.name, {})
                count[f.type] = count.get(f.type, 0) + table.num_rows
            else:
                votes.setdefault(f.name, {})
    fields = []
    for name, count in votes.items():
        typ: pa.DataType = pa.null()
        for candidate, _ in sorted(count.items(), key=lambda kv: -kv[1]):
            if pa.types.is_null(typ):
                typ = candidate
                continue
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError):  # else: fewer
                typ = (
                    pa.unify_schemas(  # lines have it, and theirs are rejected
                        [pa.schema([("x", typ)]), pa.schema([("x", candidate)])],
                        promote_options="permissive",
                    )
                    .field("x")
                    .type
                )
        fields.append(pa.field(name, typ))
    return pa.schema(fields)
