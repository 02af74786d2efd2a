"""Planning a file source: each file cut into parts (a Parquet file's row groups, an Arrow
file's record batches, byte ranges of a large uncompressed CSV or JSON-lines file, or the whole
file) and the parts grouped into chunks of about ``chunk_size`` rows.

Strategies: ``auto`` (each file the best way it can be cut), ``rowgroup`` (row groups; other
files whole), ``byterange`` (byte ranges; other files whole), ``file`` (one chunk per file) and
``none`` (one chunk). A chunk's ledger identity (its ``bounds``) is the list of its parts: the
file's path, size and modification time and the part, so a resumed job reads exactly the
parts it planned and refuses a file that changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from ...config.files import FileSpec
from ...errors import ConfigError, PlanError
from ...plan import Chunk, Plan
from .discover import FileInfo
from .read import open_ipc, where

#: the strategies a file source plans
FILE_STRATEGIES: tuple[str, ...] = ("auto", "rowgroup", "byterange", "file", "none")
_WHOLE = "whole"


def _row_groups(info: FileInfo) -> list[int]:
    """Rows in each row group (Parquet) or record batch (an Arrow IPC file)."""
    if info.format == "parquet":
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(info.path).metadata
        return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    with open_ipc(info.path) as reader:
        if not hasattr(reader, "get_batch"):
            return []  # a stream: read whole
        return [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]


def _row_bytes(info: FileInfo) -> float:
    """Bytes per record in a text file, from its first 256 KiB."""
    with open(info.path, "rb") as f:
        head = f.read(1 << 18)
    lines = head.count(b"\n")
    return max(1.0, len(head) / lines) if lines else float(max(1, len(head)))


class Part(dict[str, Any]):
    """One part of a file: the file's identity and format, and which part (``rg``: row
    groups; ``range``: bytes; neither: the whole file); ``rows`` is an estimate."""


def _part(info: FileInfo, rows: int | None, **which: Any) -> Part:
    p = Part(info.identity)
    p.update(format=info.format, compression=info.compression, tab=info.tab)
    if info.hive:
        p["hive"] = [list(kv) for kv in info.hive]
    p.update(which)
    p["rows"] = rows
    return p


def _cut(info: FileInfo, spec: FileSpec, strategy: str, chunk_size: int, how: dict[str, int]) -> list[Part]:
    """The parts of one file under ``strategy``; ``how`` counts what was done (for the reason)."""
    if strategy in ("file", "none"):
        how["whole"] = how.get("whole", 0) + 1
        return [_part(info, _estimate(info))]
    if info.format in ("parquet", "arrow") and strategy in ("auto", "rowgroup"):
        groups = _row_groups(info)
        if groups:
            how["row groups"] = how.get("row groups", 0) + len(groups)
            return [_part(info, n, rg=[i]) for i, n in enumerate(groups)]
        how["whole"] = how.get("whole", 0) + 1
        return [_part(info, None)]
    if info.format in ("csv", "jsonl") and strategy in ("auto", "byterange"):
        if info.compression:
            how["compressed, whole"] = how.get("compressed, whole", 0) + 1
            return [_part(info, _estimate(info))]
        per_row = _row_bytes(info)
        part_bytes = max(1 << 16, int(chunk_size * per_row))
        if info.size >= 2 * part_bytes:
            from ..filesplit import split_csv, split_lines

            if info.format == "csv":
                split = split_csv(
                    info.path,
                    part_bytes,
                    quote=spec.quote,
                    escape=spec.escape,
                    header=spec.header,
                    encoding=spec.encoding,
                )
            else:
                split = split_lines(info.path, part_bytes)
            if len(split.ranges) > 1:
                how["byte ranges"] = how.get("byte ranges", 0) + len(split.ranges)
                return [
                    _part(info, max(1, int((e - s) / per_row)), range=[s, e], header=len(split.header))
                    for s, e in split.ranges
                ]
            how[f"whole ({split.reason})"] = how.get(f"whole ({split.reason})", 0) + 1
            return [_part(info, _estimate(info))]
    how["whole"] = how.get("whole", 0) + 1
    return [_part(info, _estimate(info))]


def _estimate(info: FileInfo) -> int | None:
    if info.format in ("parquet", "arrow"):
        groups = _row_groups(info)
        return sum(groups) if groups else None
    if info.compression:
        return None
    return max(0, int(info.size / _row_bytes(info)) - 1)


def _label(parts: list[Part], base: str) -> str:
    def one(p: Part) -> str:
        name = os.path.relpath(p["path"], base)
        w = where(p)
        return name if w == "the whole file" else f"{name} {w}"

    if len(parts) <= 3:
        return "; ".join(one(p) for p in parts)
    return f"{one(parts[0])}; ... {len(parts) - 2} more ...; {one(parts[-1])}"


def identity(parts: list[Part]) -> str:
    """A chunk's ledger identity: its parts without the estimate."""
    return json.dumps([{k: v for k, v in p.items() if k != "rows"} for p in parts], sort_keys=True)


def plan_files(
    files: list[FileInfo],
    spec: FileSpec,
    query: str,
    strategy: str,
    key: str | None,
    chunk_size: int,
    whole_query: str | None,
    skip: Callable[[Part], bool] | None = None,
) -> Plan:
    """The plan of ``files``. ``whole_query``: why the query must run over all rows at once
    (it aggregates, sorts or limits): one chunk then. ``skip``: parts an incremental job
    loaded before."""
    if strategy not in FILE_STRATEGIES:
        raise ConfigError(
            f"strategy {strategy!r} is for database sources; a file source plans "
            f"{', '.join(FILE_STRATEGIES)}"
        )
    if key is not None:
        raise ConfigError(
            "key= chooses how a database query is cut; a file source is cut by file, row group "
            "or byte range (strategy=...) -- drop key (mode='merge' takes its key from the "
            "target's primary key)"
        )
    chosen = strategy
    if whole_query:
        chosen = "none"
    how: dict[str, int] = {}
    parts: list[Part] = []
    for info in files:
        parts.extend(_cut(info, spec, chosen, chunk_size, how))
    skipped = 0
    if skip is not None:
        kept = [p for p in parts if not skip(p)]
        skipped = len(parts) - len(kept)
        parts = kept
    groups: list[list[Part]] = []
    if chosen == "none":
        groups = [parts] if parts else []
    elif chosen == "file":
        for p in parts:
            groups.append([p])
    else:
        current: list[Part] = []
        rows = 0
        for p in parts:
            n = p["rows"] if p["rows"] is not None else chunk_size
            if current and rows + n > chunk_size:
                groups.append(current)
                current, rows = [], 0
            current.append(p)
            rows += n
        if current:
            groups.append(current)
    chunks = []
    base = os.path.dirname(os.path.commonpath([f.path for f in files])) if files else "/"
    if len(files) > 1:
        base = os.path.commonpath([f.path for f in files])
    total: int | None = 0
    for i, group in enumerate(groups):
        est = [p["rows"] for p in group]
        rows_in = None if any(r is None for r in est) else sum(est)
        if rows_in is None or total is None:
            total = None
        else:
            total += rows_in
        body = json.dumps({"parts": [dict(p) for p in group]})
        chunks.append(Chunk(i, body, _label(group, base), identity(group), rows_in))
    done = ", ".join(f"{n} {what}" for what, n in how.items())
    n_files = len(files)
    reason = f"{n_files} file{'s' if n_files != 1 else ''}: {done}"
    if whole_query:
        reason = f"one chunk: the query {whole_query}; {reason}"
    elif strategy == "auto":
        reason = f"auto, each file as it splits best; {reason}"
    if chosen not in ("none", "file"):
        reason += f"; grouped into chunks of about {chunk_size:,} rows"
    if skipped:
        reason += f"; {skipped} parts loaded by earlier runs skipped"
    if not chunks and not skipped:
        raise PlanError("the file source has no rows to plan")  # pragma: no cover
    return Plan(chosen if chosen != "auto" else "auto", reason, None, query, tuple(chunks), total)
