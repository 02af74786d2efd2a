"""The columns of a file source: each file's schema (Parquet and Arrow from their metadata; CSV
and JSON lines inferred from a sample, carefully), united by name across the files, explicit
``columns=`` types over all of it, and the Hive partition columns after.

Inference never changes a value silently: a CSV column whose sample holds a number with a
leading zero (``007``, a ZIP code) or an integer too long for a double stays text, and the
plan says so; a type the files disagree on is refused with both files named, unless one type
holds the other (int32 and int64, float and double, timestamp units, string sizes).
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from ...config.files import FileSpec
from ...errors import ConfigError, SourceError
from .discover import FileInfo

#: bytes of each CSV/JSON-lines file read to infer its columns' types
SAMPLE_BYTES = 1 << 20
#: files sampled for types; the others contribute their header's names
SAMPLED_FILES = 16

_LEADING_ZERO = re.compile(r"^[+-]?0[0-9]")
_LONG_INT = re.compile(r"^[+-]?[0-9]{16,}$")


def parse_type(text: str, column: str) -> pa.DataType:
    """An Arrow type from its name (``int64``, ``decimal128(12, 2)``, ``timestamp[us, tz=UTC]``)."""
    t = text.strip()
    simple = {
        "string": pa.string(),
        "str": pa.string(),
        "text": pa.string(),
        "utf8": pa.string(),
        "large_string": pa.large_string(),
        "bool": pa.bool_(),
        "boolean": pa.bool_(),
        "float": pa.float32(),
        "double": pa.float64(),
        "float64": pa.float64(),
        "float32": pa.float32(),
        "date": pa.date32(),
        "date32": pa.date32(),
        "date32[day]": pa.date32(),
        "binary": pa.binary(),
        "json": pa.json_(),
        "uuid": pa.uuid(),
    }
    if t.lower() in simple:
        return simple[t.lower()]
    ints = {f"{u}int{n}": getattr(pa, f"{u}int{n}")() for u in ("", "u") for n in (8, 16, 32, 64)}
    if t.lower() in ints:
        return ints[t.lower()]
    m = re.fullmatch(r"decimal(?:128)?\(\s*(\d+)\s*,\s*(\d+)\s*\)", t, re.I)
    if m:
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    m = re.fullmatch(r"timestamp\[(s|ms|us|ns)(?:,\s*tz=([^\]]+))?\]", t, re.I)
    if m:
        return pa.timestamp(m.group(1), tz=m.group(2))
    m = re.fullmatch(r"time64\[(us|ns)\]|time32\[(s|ms)\]", t, re.I)
    if m:
        unit = m.group(1) or m.group(2)
        return pa.time64(unit) if m.group(1) else pa.time32(unit)
    raise ConfigError(
        f"column {column!r}: unknown type {text!r}; use an Arrow type name such as int64, "
        "double, string, bool, date32, decimal128(12, 2), timestamp[us] or timestamp[us, tz=UTC]"
    )


def overrides(spec: FileSpec) -> dict[str, pa.DataType]:
    """The ``columns=`` types of ``spec``, parsed."""
    return {name: parse_type(t, name) for name, t in spec.columns}


def csv_options(info: FileInfo, spec: FileSpec) -> tuple[Any, Any]:
    """pyarrow's ReadOptions and ParseOptions for one CSV file."""
    import pyarrow.csv as pcsv

    delimiter = spec.delimiter or ("\t" if info.tab else ",")
    read = pcsv.ReadOptions(
        encoding=spec.encoding,
        autogenerate_column_names=not spec.header,
        block_size=1 << 22,
        use_threads=False,
    )
    parse = pcsv.ParseOptions(
        delimiter=delimiter,
        quote_char=spec.quote if spec.quote is not None else False,
        escape_char=spec.escape if spec.escape is not None else False,
        newlines_in_values=spec.quote is not None,
    )
    return read, parse


def csv_convert(spec: FileSpec, types: dict[str, pa.DataType] | None) -> Any:
    """pyarrow's ConvertOptions: only the ``null`` texts are NULL (an unquoted empty field by
    default, as COPY reads CSV: a quoted ``""`` is an empty string), ``types`` fixed."""
    import pyarrow.csv as pcsv

    return pcsv.ConvertOptions(
        column_types=types or {},
        null_values=list(spec.null),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["true", "True", "TRUE", "t"],
        false_values=["false", "False", "FALSE", "f"],
    )


def _head(info: FileInfo, limit: int) -> bytes:
    """The first ``limit`` bytes of the file (decompressed), cut after the last whole line."""
    with pa.input_stream(info.path, compression=info.compression) as f:
        data = f.read(limit)
        more = bool(f.read(1))
    if more:
        cut = data.rfind(b"\n")
        if cut > 0:
            data = data[: cut + 1]
    return bytes(data)


def _careful(sample: pa.Table, text: pa.Table, notes: list[str], info: FileInfo) -> pa.Schema:
    """The inferred schema, with numbers that would lose their text kept as strings."""
    fields = []
    for f in sample.schema:
        typ = f.type
        if (pa.types.is_integer(typ) or pa.types.is_floating(typ)) and f.name in text.column_names:
            values = [v for v in text.column(f.name).to_pylist() if v is not None]
            if any(_LEADING_ZERO.match(v) and not v.lstrip("+-").startswith("0.") for v in values):
                notes.append(
                    f"{info.name}: column {f.name!r} is read as text: it holds numbers with a "
                    "leading zero (pass columns= to read it as a number)"
                )
                typ = pa.string()
            elif pa.types.is_floating(typ) and any(_LONG_INT.match(v) for v in values):
                notes.append(
                    f"{info.name}: column {f.name!r} is read as text: it holds integers too "
                    "long for int64 or a double (pass columns= with a decimal type)"
                )
                typ = pa.string()
        if pa.types.is_null(typ):
            typ = pa.string()  # every sampled value was empty: text until a file says more
        fields.append(pa.field(f.name, typ))
    return pa.schema(fields)


def _check_names(names: list[str], info: FileInfo) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name == "":
            raise SourceError(
                f"{info.path}: column {i + 1} of the header has no name; name it, or read the "
                "file with header=false",
                transient=False,
                kind="config",
            )
        if name in seen:
            raise SourceError(
                f"{info.path}: the header names column {name!r} twice; a table cannot hold "
                "both -- rename one",
                transient=False,
                kind="config",
            )
        seen.add(name)


def file_schema(info: FileInfo, spec: FileSpec, sample: bool, notes: list[str]) -> pa.Schema:
    """One file's columns as it stores them (without partition columns); text formats
    inferred from their first :data:`SAMPLE_BYTES` (``sample``) or their header alone."""
    try:
        if info.format in ("parquet", "arrow"):
            return _stored_schema(info)
        if info.format == "csv":
            return _csv_schema(info, spec, sample, notes)
        return _jsonl_schema(info, spec, notes)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(
            f"cannot read {info.path} as {info.format}: {exc}{encoding_hint(str(exc), spec)}",
            transient=False,
        ) from None


def encoding_hint(message: str, spec: FileSpec) -> str:
    """What to do about text that is not in the encoding the source was told (or "")."""
    if "invalid UTF8" in message or "codec can't decode" in message:
        return (
            f"; the file is not {spec.encoding} text: pass its encoding "
            "(encoding=latin1, cp1252, ...; file:///...?encoding=latin1)"
        )
    return ""


def _csv_schema(info: FileInfo, spec: FileSpec, sample: bool, notes: list[str]) -> pa.Schema:
    import pyarrow.csv as pcsv

    data = _head(info, SAMPLE_BYTES if sample else 1 << 16)
    read, parse = csv_options(info, spec)
    parse.invalid_row_handler = lambda row: "skip"  # the chunk that reads it says where it is
    forced = overrides(spec)
    if not sample:
        lines = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=read,
            parse_options=parse,
            convert_options=csv_convert(spec, None),
        )
        _check_names(lines.column_names, info)
        return pa.schema([pa.field(n, forced.get(n, pa.string())) for n in lines.column_names])
    as_text = pcsv.read_csv(  # types inferred
        pa.BufferReader(data),
        read_options=read,
        parse_options=parse,
        convert_options=csv_convert(spec, None),
    )
    _check_names(as_text.column_names, info)
    text_types = {n: pa.string() for n in as_text.column_names}
    strings = pcsv.read_csv(
        pa.BufferReader(data),
        read_options=read,
        parse_options=parse,
        convert_options=csv_convert(spec, text_types),
    )
    schema = _careful(as_text, strings, notes, info)
    return pa.schema([pa.field(f.name, forced.get(f.name, f.type)) for f in schema])


def _jsonl_schema(info: FileInfo, spec: FileSpec, notes: list[str]) -> pa.Schema:
    from .jsonl import jsonl_schema

    return jsonl_schema(info, spec, notes)


def _stored_schema(info: FileInfo) -> pa.Schema:
    """A Parquet or Arrow file's schema from its metadata; two columns of one name are
    refused (a table cannot hold both, and one would be lost)."""
    if info.format == "parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(info.path)
    else:
        from .read import open_ipc

        with open_ipc(info.path) as reader:
            schema = reader.schema
    _check_names(schema.names, info)
    return schema


def _widened(t: pa.DataType) -> pa.DataType:
    """A type the targets hold exactly instead of one they have no column type for: half
    floats as floats (every float16 value is a float32 value)."""
    return pa.float32() if pa.types.is_float16(t) else t


def unite(files: list[FileInfo], schemas: list[pa.Schema], spec: FileSpec) -> pa.Schema:
    """One schema for every file: columns by name in order of first appearance; a type the
    files disagree on widened where one holds the other, refused otherwise (naming a file of
    each type); ``columns=`` wins; the Hive partition columns last."""
    forced = overrides(spec)
    types: dict[str, pa.DataType] = {}
    first: dict[str, str] = {}
    for info, schema in zip(files, schemas, strict=True):
        for f in schema:
            if f.name in forced:
                types.setdefault(f.name, forced[f.name])
                continue
            have = types.get(f.name)
            if have is None:
                types[f.name] = _widened(f.type)
                first[f.name] = info.path
                continue
            if have == _widened(f.type):
                continue
            if _lossy(have, f.type):
                raise ConfigError(
                    f"column {f.name!r} is {have} in {first[f.name]} but {f.type} in "
                    f"{info.path}; a double does not hold every decimal. Pass "
                    f"columns={{{f.name!r}: '<type>'}} to read it as one type"
                )
            try:
                merged = pa.unify_schemas(
                    [pa.schema([("x", have)]), pa.schema([("x", f.type)])],
                    promote_options="permissive",
                ).field("x").type
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise ConfigError(
                    f"column {f.name!r} is {have} in {first[f.name]} but {f.type} in "
                    f"{info.path}; the files must agree. Pass columns={{{f.name!r}: '<type>'}} "
                    "to read it as one type, or load the files in separate jobs"
                ) from None
            types[f.name] = merged
    if not types and files:
        raise ConfigError(
            f"the files hold no columns: {files[0].path}"
            + (f" and {len(files) - 1} more are" if len(files) > 1 else " is")
            + " empty; there is no table to make of them"
        )
    unknown = [n for n in forced if n not in types]
    if unknown:
        raise ConfigError(
            f"columns= names {', '.join(map(repr, unknown))}, which no file has; the files' "
            f"columns: {', '.join(types)}"
        )
    # a column null in every file (a JSON key never given a value) is text
    fields = [pa.field(n, pa.string() if pa.types.is_null(t) else t) for n, t in types.items()]
    return pa.schema(fields + _hive_fields(files, types))


def _lossy(a: pa.DataType, b: pa.DataType) -> bool:
    """Whether unifying ``a`` and ``b`` would round one's values: a decimal and a float."""
    return bool(
        (pa.types.is_decimal(a) and pa.types.is_floating(b))
        or (pa.types.is_decimal(b) and pa.types.is_floating(a))
    )


def _partition_type(values: list[str]) -> pa.DataType:
    """int64 when every value is an integer as written (no leading zero), date32 when every one
    is an ISO date, text otherwise."""
    import datetime as dt

    if not values:
        return pa.string()
    if all(re.fullmatch(r"[+-]?[1-9][0-9]{0,17}|0", v) for v in values):
        return pa.int64()
    if all(re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", v) for v in values):
        try:
            for v in values:
                dt.date.fromisoformat(v)
            return pa.date32()
        except ValueError:
            pass
    return pa.string()


def _hive_fields(files: list[FileInfo], columns: dict[str, pa.DataType]) -> list[pa.Field]:
    values: dict[str, list[str | None]] = {}
    for info in files:
        for key, value in info.hive:
            values.setdefault(key, []).append(value)
    out = []
    for key, vals in values.items():
        if key in columns:
            raise ConfigError(
                f"{key!r} is both a column of the files and a partition folder ({key}=...); "
                "pass hive=false to ignore the folders, or rename one"
            )
        given = [v for v in vals if v is not None]
        out.append(pa.field(key, _partition_type(given)))
    return out
