"""Files as a job's source: what names them (a path, a glob, a directory, a ``file://`` URI, a
list of them, an uploaded file) and how they are parsed, as one :class:`FileSpec` with one
canonical URI (``file:///abs/path?option=value``), so a job's source is still one string: its
fingerprint, the CLI, job files and ``MAPPER_*`` variables all see the same text.

>>> spec = FileSpec.parse("file:///data/2026-*/*.csv?delimiter=%3B&header=false")
>>> spec.paths, spec.delimiter, spec.header
(('/data/2026-*/*.csv',), ';', False)
>>> FileSpec.parse(spec.uri) == spec
True
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from ..errors import ConfigError

#: file formats a file source reads (``format=`` or the extension says which)
FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl", "arrow")
#: what ``bad_rows`` may say: stop at the first bad row (None), skip them, or skip and write
#: them with the reason to a side file
BAD_ROWS: tuple[str, ...] = ("skip", "file")
_QUOTES_OFF = ("", "none")
#: ``quote``'s default: ``"`` for CSV, no quoting for a TSV file (``.tsv``, ``.tab``)
QUOTE_AUTO = "auto"
#: the folder ``bad_rows="file"`` writes under when ``rejects`` does not say (in the current
#: folder of whoever names the source)
DEFAULT_REJECTS = "arrowmapper-rejects"


@dataclass(frozen=True)
class FileSpec:
    """Which files a job reads and how: every option of a file source.

    ``paths``: absolute paths, globs (``*``, ``?``, ``[..]``, ``**``) or directories, read in
    this order (each glob's matches sorted). ``format``: one of :data:`FORMATS`, or None to
    go by each file's extension (``.parquet``, ``.csv``/``.tsv``, ``.jsonl``/``.ndjson``,
    ``.arrow``/``.feather``; ``.gz``/``.zst``/``.bz2`` after it: compressed). CSV: ``delimiter``
    (None: ``,``, or a tab for ``.tsv``), ``quote`` (None turns quoting off; by default
    :data:`QUOTE_AUTO`: ``"``, and no quoting for a ``.tsv``/``.tab`` file), ``escape``,
    ``header``, ``null`` (the texts read as NULL: by default only an unquoted empty field, as
    COPY reads CSV), ``encoding``. ``columns``: explicit types (``name=type`` pairs, Arrow type
    names such as ``int64``, ``string``, ``decimal128(12,2)``, ``timestamp[us, tz=UTC]``) that
    win over what is inferred. ``hive``: ``key=value`` folders become columns.
    ``bad_rows``: None (a bad row fails its chunk, naming the file and line), ``"skip"`` or
    ``"file"``: a CSV row with the wrong number of fields or a value that does not convert to
    its column's type, a JSON line that does not parse or holds a value of the wrong type, is
    skipped and counted in the result (``rows_rejected``); ``"file"`` also writes each with
    the reason to ``<rejects>/<job id>/chunk-<n>.csv`` (columns file, line, reason, raw).
    Parquet and Arrow files have no rows to reject: a corrupt one still fails its chunk.
    """

    paths: tuple[str, ...]
    format: str | None = None
    delimiter: str | None = None
    quote: str | None = QUOTE_AUTO
    escape: str | None = None
    header: bool = True
    null: tuple[str, ...] = ("",)
    encoding: str = "utf8"
    columns: tuple[tuple[str, str], ...] = ()
    hive: bool = True
    bad_rows: str | None = None
    #: where ``bad_rows="file"`` writes (None: ``arrowmapper-rejects/`` in the current folder,
    #: made absolute when the spec is made)
    rejects: str | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.paths:
            raise ConfigError("a file source needs at least one path, glob or directory")
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(
                f"file format must be one of {', '.join(FORMATS)}; got {self.format!r}"
            )
        for name in ("delimiter", "quote", "escape"):
            value = getattr(self, name)
            if name == "quote" and value == QUOTE_AUTO:
                continue
            if value is not None and len(value) != 1:
                raise ConfigError(f"{name} must be one character, got {value!r}")
        if self.bad_rows is not None and self.bad_rows not in BAD_ROWS:
            raise ConfigError(f"bad_rows must be 'skip', 'file' or None; got {self.bad_rows!r}")
        try:
            "x".encode(self.encoding)
        except LookupError:
            raise ConfigError(f"unknown encoding {self.encoding!r}") from None
        # where rejected rows go, fixed now (like the paths): every worker writes there,
        # whatever its own current folder
        if self.rejects is not None:
            object.__setattr__(self, "rejects", _absolute(self.rejects))
        elif self.bad_rows == "file":
            object.__setattr__(self, "rejects", _absolute(DEFAULT_REJECTS))

    def quote_for(self, tab: bool) -> str | None:
        """The quote character a CSV file is read with: ``quote`` as given, or by default
        ``"`` -- and none for a TSV file (``tab``: ``.tsv``, ``.tab``), as PostgreSQL's text
        format and most TSV writers write them (a value may start with a quote)."""
        if self.quote == QUOTE_AUTO:
            return None if tab else '"'
        return self.quote

    # -- the canonical URI
    @property
    def uri(self) -> str:
        """``file://`` + the first path, the others and every non-default option as query
        parameters; :meth:`parse` reads it back."""
        params: list[tuple[str, str]] = [("path", p) for p in self.paths[1:]]
        for f in fields(self):
            if f.name == "paths":
                continue
            value, default = getattr(self, f.name), f.default
            if value == default:
                continue
            if f.name == "null":
                params.extend(("null", v) for v in value)
            elif f.name == "columns":
                params.extend(("column", f"{n}={t}") for n, t in value)
            elif isinstance(value, bool):
                params.append((f.name, "true" if value else "false"))
            else:
                params.append((f.name, "none" if value is None else str(value)))
        query = urlencode(params, quote_via=quote) if params else ""
        return "file://" + quote(self.paths[0], safe="/*[]!:~@+,=") + (f"?{query}" if query else "")

    @property
    def display(self) -> str:
        """The paths, for messages and ``plan``."""
        more = f" (+{len(self.paths) - 1} more)" if len(self.paths) > 1 else ""
        return f"file://{self.paths[0]}{more}"

    @classmethod
    def parse(cls, uri: str) -> FileSpec:
        """The spec a ``file://`` URI (or a plain path or glob) names."""
        text = uri.strip()
        if text.lower().startswith("file://"):
            rest = text[len("file://") :]
            path, _, query = rest.partition("?")
            first = unquote(path)
            if first and not first.startswith("/"):
                first = os.path.abspath(first)
            return cls.from_options([first], parse_qsl(query, keep_blank_values=True))
        return cls.from_options([text], [])

    @classmethod
    def from_options(cls, paths: list[str], options: list[tuple[str, str]]) -> FileSpec:
        """The spec of ``paths`` with options given as text (URI parameters, CLI)."""
        known = {f.name for f in fields(cls)} - {"paths"}
        kw: dict[str, Any] = {}
        nulls: list[str] = []
        columns: list[tuple[str, str]] = []
        for name, value in options:
            if name == "path":
                paths.append(value)
            elif name == "null":
                nulls.append(value)
            elif name == "column":
                col, eq, typ = value.partition("=")
                if not eq or not col or not typ:
                    raise ConfigError(f"column= must be name=type, got {value!r}")
                columns.append((col, typ))
            elif name in ("header", "hive"):
                from .job import parse_bool

                kw[name] = parse_bool(name, value)
            elif name in known:
                kw[name] = None if value.lower() in _QUOTES_OFF and name != "encoding" else value
            else:
                raise ConfigError(
                    f"unknown file source option {name!r}; options: path, "
                    + ", ".join(sorted(known))
                )
        if nulls:
            kw["null"] = tuple(nulls)
        if columns:
            kw["columns"] = tuple(columns)
        return cls(paths=tuple(_absolute(p) for p in paths), **kw)

    def with_options(self, **options: Any) -> FileSpec:
        """A copy with ``options`` (the keywords of :func:`files`)."""
        return replace(self, **_keywords(options))


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(text: str) -> str:
    """``${NAME}`` in a path replaced by the variable (one that is not set is refused)."""

    def value(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            raise ConfigError(f"the file source names ${{{m.group(1)}}}, which is not set")
        return os.environ[m.group(1)]

    return _ENV.sub(value, text)


def _absolute(path: str) -> str:
    path = _expand(path)
    if not path:
        raise ConfigError("a file source path is empty")
    if "\x00" in path:
        raise ConfigError("a file source path contains a NUL character")
    return str(Path(os.path.expanduser(path)).absolute()) if not path.startswith("/") else path


def _keywords(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name == "null" and value is not None:
            value = (value,) if isinstance(value, str) else tuple(value)
        elif name == "columns" and value is not None:
            items = value.items() if isinstance(value, dict) else value
            value = tuple((str(n), _type_text(t)) for n, t in items)
        out[name] = value
    return out


def _type_text(t: object) -> str:
    """An Arrow type (or a Polars dtype, or text) as the type name ``columns`` keeps."""
    if isinstance(t, str):
        return t
    try:
        import pyarrow as pa

        if isinstance(t, pa.DataType):
            return str(t)
    except ImportError:  # pragma: no cover
        pass
    try:
        import polars as pl

        if isinstance(t, pl.DataType) or (isinstance(t, type) and issubclass(t, pl.DataType)):
            return str(pl.DataFrame(schema={"c": t}).to_arrow().schema.field("c").type)
    except (ImportError, TypeError):  # pragma: no cover
        pass
    raise ConfigError(f"a column type must be an Arrow or Polars type or its name, got {t!r}")


def files(source: Any, **options: Any) -> str:
    """A file source with its parsing options, as the URI to pass as ``source``.

    ``source``: a path, glob, directory or ``file://`` URI, a list of them, or an uploaded
    file (bytes, or a binary file-like object; it is kept in a spool folder under a name made
    from its content, so a resumed job finds it again). Options: see :class:`FileSpec`
    (``columns`` may be a dict of name -> type).

    >>> files("/data/*.csv", delimiter=";", null=["", "NA"]).split("?")[1]
    'delimiter=%3B&null=&null=NA'
    """
    return file_spec(source, options).uri


def file_spec(source: Any, options: dict[str, Any] | None = None) -> FileSpec:
    """The :class:`FileSpec` of a job's ``source`` argument (see :func:`files`)."""
    opts = dict(options or {})
    if isinstance(source, FileSpec):
        spec = source
    elif isinstance(source, str):
        spec = FileSpec.parse(source)
    elif isinstance(source, os.PathLike):
        spec = FileSpec.parse(str(os.fspath(source)))
    elif isinstance(source, bytes | bytearray | memoryview) or hasattr(source, "read"):
        path = spool_upload(source, opts.get("format"))
        spec = FileSpec(paths=(path,))
    elif isinstance(source, list | tuple):
        if not source:
            raise ConfigError("a file source list is empty; give at least one path")
        specs = [file_spec(s) for s in source]
        first = specs[0]
        spec = replace(first, paths=tuple(p for s in specs for p in s.paths))
    else:
        raise ConfigError(
            f"source must be a database URI, a file path, glob or URI, a list of them, or "
            f"an uploaded file (bytes or a binary file object); got {type(source).__name__}"
        )
    return spec.with_options(**opts) if opts else spec


def is_file_source(source: object) -> bool:
    """Whether ``source`` names files rather than a database: not a string (a path object, a
    list, an upload), a ``file://`` URI, or a string without ``://`` (a path or glob)."""
    if isinstance(source, str):
        text = source.strip()
        if _ENV.search(text):  # ${NAME}: decided by what it expands to (a DATABASE_URL, a path)
            missing = [n for n in _ENV.findall(text) if n not in os.environ]
            if missing:  # parse_uri says which variable is not set
                return text.lower().startswith("file://")
            text = _expand(text)
        return text.lower().startswith("file://") or ("://" not in text and bool(text))
    return source is not None


def names_files(source: object) -> bool:
    """Whether a caller's ``source`` (a connection, a URI, ...) names files: a path, glob or
    ``file://`` URI, a path object, a list of them, bytes, or a binary file-like object. A
    database connection object does not."""
    if isinstance(source, str):
        return is_file_source(source)
    if isinstance(source, os.PathLike | bytes | bytearray | memoryview | FileSpec):
        return True
    if isinstance(source, list | tuple):
        return bool(source) and all(names_files(s) for s in source)
    return callable(getattr(source, "read", None))


def spool_dir() -> Path:
    """Where uploaded files are kept: ``$ARROWMAPPER_SPOOL``, or ``arrowmapper-uploads`` in the
    system's temporary folder. Workers read them there (a Dask cluster on other machines
    needs a shared folder)."""
    where = os.environ.get("ARROWMAPPER_SPOOL") or os.path.join(
        tempfile.gettempdir(), "arrowmapper-uploads"
    )
    Path(where).mkdir(parents=True, exist_ok=True)
    return Path(where)


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PAR1", ".parquet"),
    (b"ARROW1", ".arrow"),
    (b"\xff\xff\xff\xff", ".arrow"),  # an IPC stream
    (b"\x1f\x8b", ".gz"),
    (b"\x28\xb5\x2f\xfd", ".zst"),
    (b"BZh", ".bz2"),
)


def _suffix(path: str, head: bytes, fmt: str | None) -> str:
    """The file name suffix an upload is spooled under: its format's, from ``format=`` or its
    first bytes (JSON lines when it starts with ``{``, CSV otherwise); a compressed upload's
    first bytes are read through its decompressor, from the whole spooled file."""
    ext = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl", "arrow": ".arrow"}
    for magic, suffix in _MAGIC:
        if head.startswith(magic):
            if suffix in (".gz", ".zst", ".bz2"):
                return _suffix(path, _inflate(path, suffix), fmt) + suffix
            return suffix
    if fmt:
        return ext.get(fmt, ".csv")
    return ".jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else ".csv"


def _inflate(path: str, suffix: str) -> bytes:
    """The first bytes of a compressed upload, decompressed (b"" when they cannot be: then
    ``format=`` decides, CSV by default)."""
    try:
        import pyarrow as pa

        codec = {".gz": "gzip", ".zst": "zstd", ".bz2": "bz2"}[suffix]
        with pa.input_stream(path, compression=codec) as f:
            return bytes(f.read(64))
    except Exception:  # a corrupt stream: reading it says so, with the file named
        return b""


def spool_upload(data: Any, fmt: str | None = None) -> str:
    """An uploaded file (bytes or a binary file-like object) written once to the spool folder
    under the SHA-256 of its content; its path. The same bytes always get the same path, so
    a job over an upload resumes, and a different upload is a different file."""
    digest = hashlib.sha256()
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place once complete
        dir=spool_dir(), prefix=".upload-", delete=False
    )
    head = b""
    try:
        with tmp:
            if isinstance(data, bytes | bytearray | memoryview):
                chunks: Any = [bytes(data)]
            else:

                def read() -> Any:
                    while True:
                        block = data.read(1 << 20)
                        if isinstance(block, str):
                            raise ConfigError(
                                "an uploaded file must be opened in binary mode ('rb'), or "
                                "passed as bytes"
                            )
                        if not block:
                            return
                        yield block

                chunks = read()
            for block in chunks:
                if len(head) < 4096:
                    head += block[: 4096 - len(head)]
                digest.update(block)
                tmp.write(block)
        final = spool_dir() / (digest.hexdigest() + _suffix(tmp.name, head, fmt))
        if final.exists():
            os.unlink(tmp.name)
        else:
            os.replace(tmp.name, final)
        return str(final)
    except BaseException:
        if os.path.exists(tmp.name):
            os.unlink(tmp.name)
        raise


__all__ = [
    "BAD_ROWS",
    "DEFAULT_REJECTS",
    "FORMATS",
    "FileSpec",
    "file_spec",
    "files",
    "is_file_source",
    "names_files",
    "spool_dir",
    "spool_upload",
]
