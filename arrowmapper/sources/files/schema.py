"""The columns of a file source: each file's schema (Parquet and Arrow from their metadata; CSV
and JSON lines inferred from a sample, carefully), united by name across the files, explicit
``columns=`` types over all of it, and the Hive partition columns after.

Inference never changes a value silently: a CSV column whose sample holds a number with a
leading zero (``007``, a ZIP code), an integer too long for a double, a decimal with more
significant digits than a double keeps (``1234567890123456.78``) or a number beyond a double's
range (``1e400``) stays text, and the plan says so; a value after the sample that its column's
inferred type would change is refused when it is read (:mod:`.csvtext`). CSV timestamps are
inferred with microseconds (a fractional second after the sample fits). A type the files
disagree on is refused with both files named, unless one type holds the other (int32 and
int64, float and double, timestamp units, string sizes). Files after the first
:data:`SAMPLED_FILES` are not sampled: a CSV file's columns take the types the sampled CSV
files gave the same names (text for a name they lack).

TSV files (``.tsv``, ``.tab``) are read without quoting unless ``quote=`` says otherwise, as
PostgreSQL's text format and most TSV writers write them: a value may start with a quote.
A TSV file whose sample has a field that is wholly quoted (``"a"``) is refused: it looks
quoted, and ``quote`` must say whether it is.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from ...config.files import QUOTE_AUTO, FileSpec
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


def csv_delimiter(info: FileInfo, spec: FileSpec) -> str:
    """The delimiter a CSV file is read with: ``delimiter``, or a tab for a ``.tsv``/``.tab``
    file and a comma otherwise."""
    return spec.delimiter or ("\t" if info.tab else ",")


def csv_quote(info: FileInfo, spec: FileSpec) -> str | None:
    """The quote character a CSV file is read with (None: no quoting): ``quote`` as given;
    by default ``"``, and none for a ``.tsv``/``.tab`` file."""
    return spec.quote_for(info.tab)


def csv_options(info: FileInfo, spec: FileSpec) -> tuple[Any, Any]:
    """pyarrow's ReadOptions and ParseOptions for one CSV file."""
    import pyarrow.csv as pcsv

    delimiter = csv_delimiter(info, spec)
    quote = csv_quote(info, spec)
    read = pcsv.ReadOptions(
        encoding=spec.encoding,
        autogenerate_column_names=not spec.header,
        block_size=1 << 22,
        use_threads=False,
    )
    parse = pcsv.ParseOptions(
        delimiter=delimiter,
        quote_char=quote if quote is not None else False,
        escape_char=spec.escape if spec.escape is not None else False,
        newlines_in_values=quote is not None,
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
    """The inferred schema, with numbers that would not keep their value kept as strings
    (:mod:`.csvtext` says which) and timestamps with microseconds."""
    import pyarrow.compute as pc

    from .csvtext import decimal_for, first_problem

    fields = []
    for f in sample.schema:
        typ = f.type
        if (pa.types.is_integer(typ) or pa.types.is_floating(typ)) and f.name in text.column_names:
            raw = pc.ascii_trim(text.column(f.name).combine_chunks(), " \t")
            values = [v for v in raw.to_pylist() if v is not None]
            found = first_problem(raw, sample.column(f.name).combine_chunks(), typ, True)
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
            elif found is not None:
                value = raw[found[0]].as_py()
                dec = decimal_for(value)
                fix = f"; pass columns={{{f.name!r}: '{dec}'}} for an exact number" if dec else ""
                notes.append(
                    f"{info.name}: column {f.name!r} is read as text: its value {value!r} "
                    f"{found[1]}{fix}"
                )
                typ = pa.string()
        if pa.types.is_timestamp(typ) and typ.unit in ("s", "ms"):
            # a fractional second after the sample fits (PostgreSQL keeps microseconds)
            typ = pa.timestamp("us", typ.tz)
        # null: every sampled value was empty (or the file is its header alone): what the
        # other files say, and text when none says more (see unite)
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
    except (OSError, pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise SourceError(
            f"cannot read {info.path} as {info.format}: {exc}{encoding_hint(str(exc), spec)}",
            transient=False,
        ) from None


def file_schemas(files: list[FileInfo], spec: FileSpec, notes: list[str]) -> list[pa.Schema]:
    """Each file's columns (:func:`file_schema`): the first :data:`SAMPLED_FILES` files
    sampled; a CSV file after them read for its header alone, its columns typed as the
    sampled CSV files type the same names (text for a name none of them has), so a value
    that does not fit fails its chunk naming the file, line and column."""
    schemas = [file_schema(f, spec, i < SAMPLED_FILES, notes) for i, f in enumerate(files)]
    later = [i for i, f in enumerate(files) if i >= SAMPLED_FILES and f.format == "csv"]
    if not later:
        return schemas
    forced = overrides(spec)
    known: dict[str, pa.DataType] = {}
    for info, schema in zip(files[:SAMPLED_FILES], schemas, strict=False):
        if info.format != "csv":
            continue
        for f in schema:
            have = known.get(f.name)
            known[f.name] = f.type if have is None else _wider(have, f.type)
    for i in later:
        schemas[i] = pa.schema(
            [
                pa.field(f.name, f.type if f.name in forced else known.get(f.name, f.type))
                for f in schemas[i]
            ]
        )
    notes.append(
        f"{len(later)} CSV file{'s' if len(later) != 1 else ''} after the first "
        f"{SAMPLED_FILES} files {'were' if len(later) != 1 else 'was'} not sampled: "
        "their columns take the types the sampled files give the same names (text for a "
        "name they lack); a value that does not fit fails its chunk, naming it (pass "
        "columns= to decide a type)"
    )
    return schemas


def _wider(have: pa.DataType, other: pa.DataType) -> pa.DataType:
    """The type that holds both (``have`` when none does: :func:`unite` refuses them)."""
    try:
        merged: pa.DataType = (
            pa.unify_schemas(
                [pa.schema([("x", have)]), pa.schema([("x", other)])], promote_options="permissive"
            )
            .field("x")
            .type
        )
        return merged
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return have


def encoding_hint(message: str, spec: FileSpec) -> str:
    """What to do about text that is not in the encoding the source was told (or "")."""
    if "invalid UTF8" in message or "codec can't decode" in message:
        return (
            f"; the file is not {spec.encoding} text: pass its encoding "
            "(encoding=latin1, cp1252, ...; file:///...?encoding=latin1)"
        )
    return ""


def _looks_quoted(data: bytes, delimiter: str) -> bytes | None:
    """A field of ``data`` (lines split at the delimiter, without quoting) that is wholly
    quoted (``"a"``, ``""``), or None."""
    try:
        d = re.escape(delimiter.encode("ascii"))
    except UnicodeEncodeError:
        return None
    found = re.search(rb"(?:^|" + d + rb')("[^\r\n' + d + rb']*")(?=' + d + rb"|\r?$)", data, re.M)
    return found.group(1) if found else None


def _csv_schema(info: FileInfo, spec: FileSpec, sample: bool, notes: list[str]) -> pa.Schema:
    import pyarrow.csv as pcsv

    data = _head(info, SAMPLE_BYTES if sample else 1 << 16)
    if data and b"\n" not in data and b"\r" not in data and _ascii_newline(spec.encoding):
        data += b"\n"  # the header record alone, without a line end: no rows
    if info.tab and spec.quote == QUOTE_AUTO:
        quoted = _looks_quoted(data, csv_delimiter(info, spec))
        if quoted is not None:
            shown = quoted[:40].decode(spec.encoding, "replace")
            raise SourceError(
                f"{info.path} looks quoted (it has the field {shown!r}), and a TSV file is "
                "read without quoting (as PostgreSQL's text format writes it: a value may "
                "start with a quote); say which it is: quote='\"' reads quoted fields (CSV "
                "quoting with tabs), quote=None keeps every quote as text "
                "(file:///...?quote=%22 or ?quote=none)",
                transient=False,
                kind="config",
            )
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


def _ascii_newline(encoding: str) -> bool:
    """Whether ``\\n`` is the byte ``\\n`` in ``encoding`` (UTF-8, latin-1, ...; not UTF-16)."""
    try:
        return "a\n".encode(encoding) == b"a\n"
    except (LookupError, UnicodeError):
        return False


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
    each type; a column a file's sample has no value for, null, takes the others' type, and
    is text when no file has more); ``columns=`` wins; the Hive partition columns last."""
    forced = overrides(spec)
    types: dict[str, pa.DataType] = {}
    first: dict[str, str] = {}
    for info, schema in zip(files, schemas, strict=True):
        for f in schema:
            if f.name in forced:
                types.setdefault(f.name, forced[f.name])
                continue
            have = types.get(f.name)
            if have is None or (pa.types.is_null(have) and not pa.types.is_null(f.type)):
                types[f.name] = _widened(f.type)  # the first file with values for it says
                first[f.name] = info.path
                continue
            if have == _widened(f.type) or pa.types.is_null(f.type):
                continue
            if _lossy(have, f.type):
                raise ConfigError(
                    f"column {f.name!r} is {have} in {first[f.name]} but {f.type} in "
                    f"{info.path}; a double does not hold every decimal. Pass "
                    f"columns={{{f.name!r}: '<type>'}} to read it as one type"
                )
            try:
                merged = (
                    pa.unify_schemas(
                        [pa.schema([("x", have)]), pa.schema([("x", f.type)])],
                        promote_options="permissive",
                    )
                    .field("x")
                    .type
                )
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
    # a column no file has a value for (a JSON key never given one): text
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
