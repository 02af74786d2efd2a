"""Which files a :class:`~arrowmapper.config.files.FileSpec` names: globs expanded, folders
walked, each file's format, compression, Hive partition values and identity (path, size,
modification time) read once, in a stable order."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ...config.files import FileSpec
from ...errors import ConfigError, SourceError

#: compression by the last extension
COMPRESSION: dict[str, str] = {
    ".gz": "gzip",
    ".gzip": "gzip",
    ".zst": "zstd",
    ".zstd": "zstd",
    ".bz2": "bz2",
}
#: format by the extension (before a compression extension)
EXTENSIONS: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".tab": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
}
#: the value a Hive partition folder has for NULL
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_GLOB = set("*?[")


@dataclass(frozen=True)
class FileInfo:
    """One file of a source: where, what and which version (``size``, ``mtime_ns``)."""

    path: str
    size: int
    mtime_ns: int
    format: str
    compression: str | None
    tab: bool  # a .tsv/.tab file: tab-separated unless a delimiter is given
    hive: tuple[tuple[str, str | None], ...]  # partition folders: (key, value or None)

    @property
    def identity(self) -> dict[str, Any]:
        """What names this version of the file in the ledger."""
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns}

    @property
    def name(self) -> str:
        """The file's name (for ``plan`` and messages)."""
        return os.path.basename(self.path)


def _kind(path: str, spec: FileSpec) -> tuple[str, str | None, bool]:
    name = os.path.basename(path).lower()
    root, ext = os.path.splitext(name)
    compression = COMPRESSION.get(ext)
    if compression:
        name = root
        ext = os.path.splitext(root)[1]
    tab = ext in (".tsv", ".tab")
    fmt = spec.format or EXTENSIONS.get(ext)
    if fmt is None:
        raise ConfigError(
            f"cannot tell the format of {path} from its name; pass format= (one of parquet, "
            "csv, jsonl, arrow) in the source (file:///...?format=csv or am.files(..., "
            "format='csv'))"
        )
    if compression and fmt in ("parquet", "arrow"):
        raise ConfigError(
            f"{path}: a {fmt} file compresses inside itself; a {compression}-compressed {fmt} "
            "file is not read -- decompress it first"
        )
    return fmt, compression, tab


#: what writers leave beside their data files (Spark, Hadoop, Hive, Delta): never data
_BOOKKEEPING = ("_SUCCESS", "_metadata", "_common_metadata", "_delta_log", "_temporary")
_BOOKKEEPING_PREFIXES = ("_committed_", "_started_", "_temporary")


def _hidden(name: str) -> bool:
    """Dot files (editors', copy tools' and checksum files) and the bookkeeping files writers
    leave beside their data (``_SUCCESS``, ``_metadata``, ...); any other name is data, a
    leading ``_`` included."""
    return name.startswith(".") or name in _BOOKKEEPING or name.startswith(_BOOKKEEPING_PREFIXES)


def _walk(folder: str) -> list[str]:
    out: list[str] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        rel = os.path.relpath(root, folder)
        if rel != "." and any(_hidden(p) for p in rel.split(os.sep)):
            continue
        out.extend(os.path.join(root, n) for n in sorted(names) if not _hidden(n))
    return out


def _base(pattern: str) -> str:
    """The folder of a pattern above its first glob character (partitions are below it)."""
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        if _GLOB & set(part):
            return "/".join(parts[:i]) or "/"
    return os.path.dirname(pattern)


def _partitions(path: str) -> tuple[tuple[str, str | None], ...]:
    """The Hive partition values of a file: the run of ``key=value`` folders directly above it
    (``lake/day=2026-12-01/region=eu/f.parquet``), however the file was named (a glob below
    the partition folders, a folder, the path itself); a ``key=value`` folder higher up,
    above a plain one, is not a partition."""
    out: list[tuple[str, str | None]] = []
    for part in reversed(os.path.dirname(path).split(os.sep)):
        key, eq, value = part.partition("=")
        if not (eq and key):
            break
        value = unquote(value)
        out.append((unquote(key), None if value == HIVE_NULL else value))
    return tuple(reversed(out))


def discover(spec: FileSpec) -> list[FileInfo]:
    """Every file ``spec`` names, in order (each glob's and folder's matches sorted; a file
    named twice is read once); a ConfigError naming the pattern that matches nothing."""
    seen: set[str] = set()
    out: list[FileInfo] = []
    for pattern in spec.paths:
        if _GLOB & set(pattern) and not os.path.exists(pattern):  # data[1].csv is a name
            matches = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
            base = _base(pattern)
            found = [
                p
                for p in matches
                if not any(_hidden(x) for x in os.path.relpath(p, base).split(os.sep))
            ]
        elif os.path.isdir(pattern):
            base = pattern
            found = _walk(pattern)
        elif os.path.isfile(pattern):
            base = os.path.dirname(pattern)
            found = [pattern]
        else:
            raise ConfigError(
                f"no such file or folder: {pattern}; check the path (a relative path is "
                f"relative to the folder the job starts in, {os.getcwd()})"
            )
        if not found:
            raise ConfigError(f"no files match {pattern}; check the pattern")
        for path in found:
            full = os.path.abspath(path)
            real = os.path.realpath(full)  # a symlink to a file already named is that file
            if real in seen:
                continue
            seen.add(real)
            st = os.stat(real)
            fmt, compression, tab = _kind(full, spec)
            hive = _partitions(full) if spec.hive else ()
            out.append(FileInfo(full, st.st_size, st.st_mtime_ns, fmt, compression, tab, hive))
    return out


def check_unchanged(identity: dict[str, Any], job: str | None = None) -> None:
    """Refuse (a terminal SourceError naming the file) when the file is gone or is not the
    version the job planned: its size or modification time differ."""
    path = identity["path"]
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SourceError(
            f"{path} is gone: the job planned it (size {identity['size']}); put it back, or "
            "start a new job for the files there are now",
            transient=False,
        ) from None
    if st.st_size != identity["size"] or st.st_mtime_ns != identity["mtime_ns"]:
        raise SourceError(
            f"{path} changed after the job planned it (size {identity['size']} -> "
            f"{st.st_size}, modified {identity['mtime_ns']} -> {st.st_mtime_ns}); chunks "
            "already committed hold its old rows. Restore the file, or load it with a new job "
            "(and remove the old rows first if they must not stay)",
            transient=False,
        )
