"""JSON lines: a file's columns, inferred from its first :data:`~.schema.SAMPLE_BYTES`, and the
bytes and types its parts are read with.

Inference never changes a value silently, and the plan says what it did:

* a key whose numbers a double cannot hold exactly (an integer beyond int64, which pyarrow
  would read as a rounded double, or a decimal with more digits than a double keeps) is a
  decimal wide enough, or JSON text where no decimal is;
* timestamps are read as text and cast, so that no value is shifted: a key whose timestamps
  carry a zone offset (``Z``, ``+02:00``) is ``timestamp[us, tz=UTC]`` (the instant kept),
  one whose timestamps carry none is ``timestamp[us]`` (the wall clock kept), and a later value
  of the other kind is refused rather than converted; a key with both kinds is text;
* a key holding objects or arrays is JSON text -- each value's text exactly as the file has it
  (as is a key given ``columns={'k': 'json'}``); such a file is read a line at a time in Python,
  more slowly;
* a key that is null throughout the sample is typed from the rest of the file, read on until a
  value says (a key null everywhere is text);
* an empty key is refused, naming the file, like a CSV header's empty name.

``encoding=`` is applied by transcoding the bytes to UTF-8 as they are read. An empty file is a
file of no rows. A key first seen after the sample fails its chunk with the key, the line and
``columns=`` as the fix; a ``.json`` file holding one JSON array is refused with how to convert
it.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa

from ...config.files import FileSpec
from ...errors import SourceError
from .bad import _json_rows, _line_base, _lines, _pieces, json_sample_schema
from .discover import FileInfo
from .schema import SAMPLE_BYTES, encoding_hint, overrides

#: an ISO 8601 time of day that ends with a zone offset (``Z``, ``+02``, ``+0200``, ``+02:00``)
_ZONE = re.compile(
    r"[T ]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
)
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_EMPTY = ("Empty JSON file", "Empty JSON stream")


# --------------------------------------------------------------------------- bytes


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def transcoded(stream: Any, spec: FileSpec) -> Any:
    """``stream`` as UTF-8 (``spec.encoding`` transcoded as it is read); None stays None."""
    if stream is None or _is_utf8(spec.encoding):
        return stream
    return pa.transcoding_input_stream(stream, spec.encoding, "utf-8")


def _head(info: FileInfo, spec: FileSpec, limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of the file as UTF-8 text (decompressed, transcoded), cut
    after the last whole line; and whether the file goes on after them."""
    try:
        with pa.input_stream(info.path, compression=info.compression) as raw:
            f = transcoded(raw, spec)
            data = f.read(limit)
            more = bool(f.read(1))
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"cannot read {info.path} as jsonl: {exc}{encoding_hint(str(exc), spec)}",
            transient=False,
        ) from None
    if more:
        cut = data.rfind(b"\n")
        if cut > 0:
            data = data[: cut + 1]
    return bytes(data), more


# --------------------------------------------------------------------------- JSON text


def _members(line: str) -> list[tuple[str, int, int]]:
    """Each member of a line holding one JSON object: (its key, where its value starts, where
    it ends). ValueError when the line is not one JSON object."""
    i = _WS.match(line, 0).end()  # type: ignore[union-attr]
    if line[i : i + 1] != "{":
        raise ValueError("not an object")
    i = _WS.match(line, i + 1).end()  # type: ignore[union-attr]
    out: list[tuple[str, int, int]] = []
    if line[i : i + 1] == "}":
        return out
    while True:
        if line[i : i + 1] != '"':
            raise ValueError("a key is not a string")
        key, i = json.decoder.scanstring(line, i + 1)  # type: ignore[attr-defined]
        i = _WS.match(line, i).end()  # type: ignore[union-attr]
        if line[i : i + 1] != ":":
            raise ValueError("no ':' after a key")
        i = _WS.match(line, i + 1).end()  # type: ignore[union-attr]
        _, end = _DECODER.raw_decode(line, i)
        out.append((key, i, end))
        i = _WS.match(line, end).end()  # type: ignore[union-attr]
        if line[i : i + 1] == ",":
            i = _WS.match(line, i + 1).end()  # type: ignore[union-attr]
            continue
        if line[i : i + 1] == "}":
            return out
        raise ValueError("no ',' or '}' after a value")


def as_text(lines: list[bytes], keys: frozenset[str]) -> list[bytes]:
    """``lines`` with the value of each of ``keys`` (an object, an array, a number, ...) made a
    JSON string of its text exactly as the line has it, so that it is read as text; a null
    stays null. A line that is not one JSON object is left as it is (the reader says what is
    wrong with it)."""
    out = []
    for line in lines:
        try:
            text = line.decode("utf-8")
            members = _members(text)
        except (UnicodeDecodeError, ValueError):
            out.append(line)
            continue
        pieces: list[str] = []
        last = 0
        for key, start, end in members:
            if key in keys and text[start] != "n":  # a null stays null
                pieces += [text[last:start], json.dumps(text[start:end], ensure_ascii=False)]
                last = end
        if not pieces:
            out.append(line)
            continue
        pieces.append(text[last:])
        out.append("".join(pieces).encode("utf-8"))
    return out


def json_keys(schema: pa.Schema) -> frozenset[str]:
    """The columns read as JSON text."""
    return frozenset(f.name for f in schema if isinstance(f.type, pa.JsonType))


def read_schema(schema: pa.Schema) -> pa.Schema:
    """The types pyarrow's JSON reader is given for ``schema``: JSON text and timestamps as
    strings (the JSON reader reads no JSON type, and converts a timestamp's zone offset into
    a column without one, or assumes UTC for one without an offset); they are cast after."""
    fields = []
    for f in schema:
        typ = f.type
        if isinstance(typ, pa.JsonType) or pa.types.is_timestamp(typ):
            typ = pa.string()
        fields.append(pa.field(f.name, typ))
    return pa.schema(fields)


def cast_read(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` (read with :func:`read_schema`) with its columns cast to ``schema``'s types:
    ArrowInvalid naming the field when a value does not fit (a timestamp of the other kind)."""
    names = table.column_names
    for f in schema:
        if f.name not in names:
            continue
        i = names.index(f.name)
        column = table.column(i)
        if column.type == f.type:
            continue
        try:
            column = column.cast(f.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise pa.ArrowInvalid(f"field {f.name!r}: {exc}") from None
        table = table.set_column(i, f.name, column)
    return table


def check_utf8(table: pa.Table | pa.RecordBatch) -> None:
    """ArrowInvalid naming the key when a text value is not UTF-8 (pyarrow's JSON reader
    passes such bytes through: a file in another encoding read without ``encoding=``)."""
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_primitive(column.type):
            continue
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            raise pa.ArrowInvalid(f"key {name!r} holds text that is invalid UTF8") from None


# --------------------------------------------------------------------------- inference


def _is_nested(typ: pa.DataType) -> bool:
    return bool(
        pa.types.is_struct(typ)
        or pa.types.is_list(typ)
        or pa.types.is_large_list(typ)
        or pa.types.is_map(typ)
    )


#: a number of 16 or more digits (a double holds every one of 15 or fewer significant digits)
_LONG = re.compile(rb"[0-9.]{16,}")


def _values(lines: list[bytes], types: dict[str, pa.DataType]) -> dict[str, list[Any]]:
    """The non-null values the lines give the keys of ``types`` that :func:`_refined` looks
    at: a timestamp key's texts (read by pyarrow); a floating key's numbers with 16 or more
    digits, as Python parses them (integers exact, other numbers as Decimal)."""
    out: dict[str, list[Any]] = {n: [] for n in types}
    stamps = {n for n, t in types.items() if pa.types.is_timestamp(t)}
    texts = _texts(lines, stamps) if stamps else {}
    out.update(texts)
    python = {n for n in types if n not in texts}
    every_line = bool(python & stamps)  # pyarrow could not read them: every line in Python
    if not python:
        return out
    for line in lines:
        if not (every_line or _LONG.search(line)) or not line.strip():
            continue
        try:
            row = json.loads(line, parse_float=Decimal)
        except ValueError:
            continue
        if not isinstance(row, dict):
            continue
        for name in python:
            value = row.get(name)
            if value is not None:
                out[name].append(value)
    return out


def _texts(lines: list[bytes], names: set[str]) -> dict[str, list[Any]]:
    """The non-null values of ``names`` read as text by pyarrow; {} when the lines do not read
    (a line that is not JSON, with ``bad_rows``)."""
    import pyarrow.json as pjson

    from .read import JSON_BLOCK

    try:
        table = pjson.read_json(
            pa.BufferReader(b"\n".join(lines)),
            read_options=pjson.ReadOptions(block_size=JSON_BLOCK, use_threads=False),
            parse_options=pjson.ParseOptions(
                explicit_schema=pa.schema([(n, pa.string()) for n in sorted(names)]),
                unexpected_field_behavior="ignore",
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return {}
    return {n: table.column(n).drop_null().to_pylist() for n in names}


def _exact_in_double(value: int | Decimal) -> bool:
    try:
        if isinstance(value, int):
            return int(float(value)) == value
        return Decimal(repr(float(value))) == value
    except (OverflowError, ValueError):
        return False


def _decimal_for(values: list[int | Decimal]) -> pa.DataType | None:
    """decimal128(38, s) holding every value exactly, or None where none does."""
    scale = whole = 0
    for v in values:
        t = Decimal(v).as_tuple()
        if not isinstance(t.exponent, int):
            return None  # NaN, Infinity
        scale = max(scale, -t.exponent)
        whole = max(whole, len(t.digits) + t.exponent)
    if whole + scale > 38:
        return None
    return pa.decimal128(38, scale)


def _json_note(info: FileInfo, name: str, where: str = "") -> str:
    return (
        f"{info.name}: key {name!r} holds JSON objects or arrays{where}: loaded as JSON text, "
        f"each value as the file writes it (columns={{{name!r}: 'json'}}); the file is read a "
        "line at a time, more slowly"
    )


def _refined(
    name: str, typ: pa.DataType, values: list[Any], notes: list[str], info: FileInfo, where: str
) -> pa.DataType:
    """The type pyarrow inferred for a key, made one that keeps every value of the sample."""
    if _is_nested(typ):
        notes.append(_json_note(info, name, where))
        return pa.json_()
    if pa.types.is_floating(typ):
        numbers = [v for v in values if isinstance(v, int | Decimal) and not isinstance(v, bool)]
        inexact = [v for v in numbers if not _exact_in_double(v)]
        if not inexact:
            return typ
        exact = _decimal_for(numbers)
        if exact is not None:
            notes.append(
                f"{info.name}: key {name!r} is read as {exact}: it holds numbers a double "
                f"would round{where} (such as {inexact[0]})"
            )
            return exact
        notes.append(
            f"{info.name}: key {name!r} is read as JSON text: it holds numbers neither a "
            f"double nor a decimal holds exactly{where} (such as {inexact[0]}); pass columns= "
            "to choose its type"
        )
        return pa.json_()
    if pa.types.is_timestamp(typ):
        texts = [v for v in values if isinstance(v, str)]
        zoned = sum(1 for v in texts if _ZONE.search(v.strip()))
        if zoned and zoned < len(texts):
            notes.append(
                f"{info.name}: key {name!r} is read as text: it holds timestamps with a zone "
                f"offset and timestamps without one{where}; pass columns= with timestamp[us] or "
                "timestamp[us, tz=UTC] to read them as one (a value of the other kind is then "
                "refused)"
            )
            return pa.string()
        if zoned:
            notes.append(
                f"{info.name}: key {name!r} holds timestamps with a zone offset: read as "
                "timestamp[us, tz=UTC] (the instant kept; a value without an offset is refused)"
            )
            return pa.timestamp("us", tz="UTC")
        return pa.timestamp("us")
    return typ


def _check_keys(names: list[str], info: FileInfo) -> None:
    if "" in names:
        raise SourceError(
            f'{info.path}: a line has an empty key (""): a column needs a name -- rename the '
            "key in the file",
            transient=False,
            kind="config",
        )


def jsonl_schema(info: FileInfo, spec: FileSpec, notes: list[str]) -> pa.Schema:
    """One JSON-lines file's columns, from its first :data:`SAMPLE_BYTES` (see the module)."""
    import pyarrow.json as pjson

    from .read import JSON_BLOCK

    data, more = _head(info, spec, SAMPLE_BYTES)
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        raise SourceError(
            f"{info.path} holds a JSON array; arrowmapper reads JSON lines (one object per "
            "line): convert it (jq -c '.[]' file.json > file.jsonl)",
            transient=False,
            kind="config",
        )
    if not data.strip() and not more:
        return pa.schema([])  # an empty file: no columns, no rows
    forced = overrides(spec)
    given = pa.schema(list(forced.items()))
    as_json = json_keys(given)
    mixed: list[str] = []  # keys holding objects and arrays (or other values) alike: JSON text
    inferred = pa.schema([])
    while True:
        lines = data.split(b"\n")
        if as_json:
            lines = as_text(lines, as_json)
        explicit = read_schema(given) if len(given) else None
        try:
            sample = pjson.read_json(
                pa.BufferReader(b"\n".join(lines)),
                read_options=pjson.ReadOptions(block_size=JSON_BLOCK, use_threads=False),
                parse_options=pjson.ParseOptions(
                    explicit_schema=explicit,
                    unexpected_field_behavior="infer",
                    newlines_in_values=False,
                ),
            )
            check_utf8(sample)
            inferred = sample.schema
            break
        except pa.ArrowInvalid as exc:
            key = _nested_conflict(str(exc))
            if key is not None and key not in as_json and key not in forced:
                as_json |= {key}
                given = given.append(pa.field(key, pa.json_()))
                mixed.append(key)
                continue
            if spec.bad_rows is None:
                raise
            inferred = json_sample_schema(b"\n".join(lines), explicit)  # the lines that parse
            if not len(inferred):
                raise SourceError(
                    f"{info.path}: no line of its first {len(data):,} bytes is a JSON object; is "
                    "it JSON lines?",
                    transient=False,
                ) from None
            break
    for key in mixed:
        notes.append(_json_note(info, key))
        forced[key] = pa.json_()
    _check_keys(inferred.names, info)
    inferred = _in_file_order(inferred, lines, set(given.names))
    look = {f.name: f.type for f in inferred if f.name not in forced and _looked_at(f.type)}
    values = _values(lines, look) if look else {}
    types: dict[str, pa.DataType] = {}
    for f in inferred:
        if f.name in forced:
            types[f.name] = forced[f.name]
        else:
            types[f.name] = _refined(f.name, f.type, values.get(f.name, []), notes, info, "")
    nulls = [n for n, t in types.items() if pa.types.is_null(t)]
    if nulls and more:
        types.update(_read_on(info, spec, len(data), nulls, as_json, explicit, notes))
    # a key null throughout the file stays null here: the other files type it, or it is text
    return pa.schema([pa.field(n, t) for n, t in types.items()])


_CHANGED = re.compile(r"Column\(/([^/)]*)(/[^)]*)?\) changed from (\w+) to (\w+)")


def _nested_conflict(message: str) -> str | None:
    """The top-level key of pyarrow's "Column(/o) changed from object to array" or
    "Column(/o/[]) changed from number to string": a key whose objects or arrays have more
    than one shape (its values are then loaded as JSON text); None for any other error."""
    m = _CHANGED.search(message)
    if m is None or not m.group(1):
        return None
    if m.group(2) or {"object", "array"} & {m.group(3), m.group(4)}:
        return m.group(1)
    return None


def _in_file_order(inferred: pa.Schema, lines: list[bytes], given: set[str]) -> pa.Schema:
    """``inferred`` with the columns in the order the file first has them (pyarrow puts the
    ones it was given first); a given column no line has, last."""
    if not given:
        return inferred
    order: dict[str, None] = {}
    want = set(inferred.names)
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            order.update((k, None) for k in row if k in want)
            if given <= order.keys():
                break
    names = [*order, *(n for n in inferred.names if n not in order)]
    if names == inferred.names:
        return inferred
    return pa.schema([inferred.field(n) for n in names])


def _looked_at(typ: pa.DataType) -> bool:
    return bool(pa.types.is_floating(typ) or pa.types.is_timestamp(typ))


def _read_on(
    info: FileInfo,
    spec: FileSpec,
    start: int,
    nulls: list[str],
    as_json: frozenset[str],
    explicit: pa.Schema | None,
    notes: list[str],
) -> dict[str, pa.DataType]:
    """The types of the keys ``nulls`` (null throughout the sample), from the file after the
    sample, read on until each has a value."""
    found: dict[str, pa.DataType] = {}
    wanted = set(nulls)
    done = start
    with pa.input_stream(info.path, compression=info.compression) as raw:
        stream = transcoded(raw, spec)
        stream.read(start)
        for _, lines in _pieces(stream):
            done += sum(len(line) + 1 for line in lines)
            if as_json:
                lines = as_text(lines, as_json)
            tables, _ = _json_rows(lines, explicit, infer=True)
            seen: dict[str, pa.DataType] = {}
            for table in tables:
                for f in table.schema:
                    if f.name in wanted and not pa.types.is_null(f.type):
                        seen[f.name] = _wider(seen.get(f.name), f.type)
            if not seen:
                continue
            values = _values(lines, {n: t for n, t in seen.items() if _looked_at(t)})
            where = f" (null in the first {start:,} bytes, typed from the file up to byte {done:,})"
            for name, typ in seen.items():
                found[name] = _refined(name, typ, values.get(name, []), notes, info, where)
                if found[name] == typ:
                    notes.append(f"{info.name}: key {name!r} is {typ}{where}")
            wanted -= set(seen)
            if not wanted:
                break
    return found


def _wider(have: pa.DataType | None, typ: pa.DataType) -> pa.DataType:
    if have is None or have == typ:
        return typ
    try:
        return (
            pa.unify_schemas(
                [pa.schema([("x", have)]), pa.schema([("x", typ)])], promote_options="permissive"
            )
            .field("x")
            .type
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return have  # the rows of the other type fail when read, naming the key


# --------------------------------------------------------------------------- reading


def read_jsonl(
    part: dict[str, Any],
    info: FileInfo,
    spec: FileSpec,
    schema: pa.Schema,
    stream: Any,
    open_stream: Callable[[], Any],
) -> Iterator[pa.RecordBatch]:
    """A JSON-lines part's rows (``stream``: its bytes; ``open_stream``: them again, to find
    the line of a key no column has), in the file's columns typed as ``schema`` says (JSON
    text and timestamps as strings, cast by the caller)."""
    import pyarrow.json as pjson

    from .read import JSON_BLOCK

    hive = {k for k, _ in info.hive}
    explicit = read_schema(pa.schema([f for f in schema if f.name not in hive]))
    as_json = json_keys(schema)
    stream = transcoded(stream, spec)
    try:
        if as_json:
            for _, lines in _pieces(stream):
                text = b"\n".join(as_text(lines, as_json))
                if text.strip():
                    table = _read(text, explicit)
                    check_utf8(table)
                    yield from table.to_batches()
            return
        try:
            reader = pjson.open_json(
                stream,
                read_options=pjson.ReadOptions(block_size=JSON_BLOCK, use_threads=False),
                parse_options=pjson.ParseOptions(
                    explicit_schema=explicit, unexpected_field_behavior="error"
                ),
            )
        except pa.ArrowInvalid as exc:
            if str(exc) in _EMPTY:
                return  # an empty file: no rows
            raise
        for batch in reader:
            check_utf8(batch)
            yield batch
    except pa.ArrowInvalid as exc:
        if "unexpected field" not in str(exc):
            raise
        raise _unexpected(part, info, spec, explicit, open_stream) from None


def _read(text: bytes, explicit: pa.Schema) -> pa.Table:
    import pyarrow.json as pjson

    from .read import JSON_BLOCK

    return pjson.read_json(
        pa.BufferReader(text),
        read_options=pjson.ReadOptions(block_size=JSON_BLOCK, use_threads=False),
        parse_options=pjson.ParseOptions(
            explicit_schema=explicit, unexpected_field_behavior="error"
        ),
    )


def _unexpected(
    part: dict[str, Any],
    info: FileInfo,
    spec: FileSpec,
    explicit: pa.Schema,
    open_stream: Callable[[], Any],
) -> SourceError:
    """The error for a key that is none of the columns: which key, on which line, and
    ``columns=`` as the fix."""
    from .read import where

    names = set(explicit.names)
    key = line = None
    stream = transcoded(open_stream(), spec)
    if stream is not None:
        for n, text in enumerate(_lines(stream), 1):
            try:
                row = json.loads(text)
            except ValueError:
                continue
            extra = [k for k in row if k not in names] if isinstance(row, dict) else []
            if extra:
                key, line = extra[0], n
                break
    at = f", line {_line_base(part, info) + line}" if line is not None else ""
    what = f"key {key!r}" if key is not None else "a key"
    fix = f"{{{key!r}: 'string'}}" if key is not None else "{'<key>': 'string'}"
    return SourceError(
        f"cannot read {info.path} ({where(part)}{at}) as jsonl: {what} is none of the columns, "
        f"which come from the first {SAMPLE_BYTES >> 20} MiB of each file (no file has it "
        f"there); pass columns={fix} (or int64, double, json, ...) to read it",
        transient=False,
    )
