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
from collections.abc import Callable, Sequence
from typing import Any

from ...config.files import FileSpec
from ...errors import ConfigError, PlanError, SourceError
from ...plan import Chunk, Plan
from .discover import FileInfo, check_unchanged
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


def _cut(
    info: FileInfo, spec: FileSpec, strategy: str, chunk_size: int, how: dict[str, int]
) -> list[Part]:
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
                from .schema import csv_delimiter, csv_quote

                split = split_csv(
                    info.path,
                    part_bytes,
                    quote=csv_quote(info, spec),
                    escape=spec.escape,
                    header=spec.header,
                    encoding=spec.encoding,
                    delimiter=csv_delimiter(info, spec),
                )
            else:
                split = split_lines(info.path, part_bytes, encoding=spec.encoding)
            if len(split.ranges) > 1:
                how["byte ranges"] = how.get("byte ranges", 0) + len(split.ranges)
                return [
                    _part(
                        info, max(1, int((e - s) / per_row)), range=[s, e], header=len(split.header)
                    )
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
    if skip is not None:  # an incremental job: what is left is new, and named by its content
        kept = [p for p in parts if not skip(p)]
        skipped = len(parts) - len(kept)
        parts = kept
        for p in parts:
            p["hash"] = content_hash(p["path"])
    groups = _group(parts, chosen, chunk_size)
    chunks = _chunks(groups, 0, _base(files))
    ests = [c.estimated_rows for c in chunks]
    total = None if any(e is None for e in ests) else sum(e or 0 for e in ests)
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


def _base(files: list[FileInfo]) -> str:
    """The folder parts are named relative to in ``plan`` (the files' common folder)."""
    if not files:
        return "/"
    if len(files) == 1:
        return os.path.dirname(files[0].path)
    return os.path.commonpath([f.path for f in files])


def _group(parts: list[Part], chosen: str, chunk_size: int) -> list[list[Part]]:
    """Parts grouped into chunks: all in one (``none``), one per file (``file``), or
    consecutive parts up to about ``chunk_size`` rows (a bigger part alone)."""
    if chosen == "none":
        return [parts] if parts else []
    if chosen == "file":
        by_file: dict[str, list[Part]] = {}
        for p in parts:
            by_file.setdefault(p["path"], []).append(p)
        return list(by_file.values())
    groups: list[list[Part]] = []
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
    return groups


def _chunk(chunk_id: int, group: list[Part], base: str) -> Chunk:
    est = [p["rows"] for p in group]
    rows = None if any(r is None for r in est) else sum(est)
    body = json.dumps({"parts": [dict(p) for p in group]})
    return Chunk(chunk_id, body, _label(group, base), identity(group), rows)


def _chunks(groups: list[list[Part]], first_id: int, base: str) -> list[Chunk]:
    return [_chunk(first_id + i, g, base) for i, g in enumerate(groups)]


def replan_changed(
    plan: Plan, committed: set[int], spec: FileSpec, chunk_size: int
) -> tuple[Plan, list[str]]:
    """A resumed plan after files changed: a changed file none of whose parts committed is cut
    again (new chunks, the file's new version), its old parts dropped from the chunks that
    have not committed; a changed file with a committed part is refused, naming it (its old
    rows are in the table), as is a file that is gone. Returns the plan (``plan`` itself when
    nothing changed) and one note per file cut again."""
    changed: set[str] = set()
    gone: set[str] = set()
    for chunk in plan.chunks:
        for part in json.loads(chunk.bounds):
            try:
                st = os.stat(part["path"])
            except FileNotFoundError:
                gone.add(part["path"])
                continue
            if st.st_size != part["size"] or st.st_mtime_ns != part["mtime_ns"]:
                changed.add(part["path"])
    if not changed and not gone:
        return plan, []
    for chunk in plan.chunks:
        for part in json.loads(chunk.bounds):
            if part["path"] in changed | gone:
                verb = "is gone" if part["path"] in gone else "changed"
                if chunk.chunk_id in committed or part["path"] in gone:
                    check_unchanged(part)  # raises, naming the file and what changed
                    raise SourceError(f"{part['path']} {verb}", transient=False)
    kept: list[Chunk] = []
    fresh: dict[str, Part] = {}
    for chunk in plan.chunks:
        parts = [Part(p) for p in json.loads(chunk.sql)["parts"]]
        stay = [p for p in parts if p["path"] not in changed]
        for p in parts:
            if p["path"] in changed:
                fresh.setdefault(p["path"], p)
        if len(stay) == len(parts):
            kept.append(chunk)
        elif stay:
            kept.append(_chunk(chunk.chunk_id, stay, os.path.dirname(stay[0]["path"])))
    how: dict[str, int] = {}
    new_parts: list[Part] = []
    for path, old in fresh.items():
        st = os.stat(path)
        info = FileInfo(
            path,
            st.st_size,
            st.st_mtime_ns,
            old["format"],
            old.get("compression"),
            bool(old.get("tab")),
            tuple((k, v) for k, v in old.get("hive", ())),
        )
        chosen = plan.strategy if plan.strategy in FILE_STRATEGIES else "auto"
        new_parts.extend(_cut(info, spec, chosen, chunk_size, how))
    first = max((c.chunk_id for c in plan.chunks), default=-1) + 1
    if plan.strategy == "none":  # one chunk (the query sees every row at once): it stays one
        others = [c for c in kept if c.chunk_id in committed]
        rest = [c for c in kept if c.chunk_id not in committed]
        parts = [Part(p) for c in rest for p in json.loads(c.sql)["parts"]] + new_parts
        cid = rest[0].chunk_id if rest else first
        kept, added = others, ([_chunk(cid, parts, "/")] if parts else [])
    else:
        chosen = plan.strategy if plan.strategy == "file" else "auto"
        added = _chunks(_group(new_parts, chosen, chunk_size), first, "/")
    notes = [
        f"{path} changed before any of its rows committed: cut again and read as it is now"
        for path in fresh
    ]
    replanned = Plan(plan.strategy, plan.reason, plan.key, plan.query, tuple(kept + added), None)
    return replanned, notes


def content_hash(path: str) -> str:
    """A file's content digest (BLAKE2b, 128 bits): an incremental job records it, so a file
    touched later with the same bytes is known as loaded."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def loaded_before(earlier: Sequence[Any]) -> Callable[[Part], bool]:
    """For an incremental job: whether a part's file was loaded by a finished earlier job into
    the same table (skip it). A file an earlier job loaded that has changed since, or one an
    unfinished job holds part of, is refused naming the file and the job."""
    loaded: dict[str, tuple[int, int, str, str | None]] = {}
    unfinished: dict[str, str] = {}
    for e in earlier:
        try:
            parts = json.loads(e.bounds)
        except ValueError:
            continue
        if not isinstance(parts, list):
            continue
        for p in parts:
            if not isinstance(p, dict) or "path" not in p:
                continue
            if e.finished:
                loaded[p["path"]] = (p["size"], p["mtime_ns"], e.job_id, p.get("hash"))
            else:
                unfinished.setdefault(p["path"], e.job_id)

    def skip(part: Part) -> bool:
        path = part["path"]
        if path in unfinished:
            raise ConfigError(
                f"{path} is being loaded into this table by job {unfinished[path]!r}, which has "
                "not finished: if it is running, let it finish; if it died, resume it "
                "(resume=True with its job_id) before the next incremental run"
            )
        if path not in loaded:
            return False
        size, mtime, job, digest = loaded[path]
        touched = size == part["size"] and mtime != part["mtime_ns"] and digest is not None
        if touched and content_hash(path) == digest:
            return True  # copied again or synced, but the same bytes: loaded
        if (size, mtime) != (part["size"], part["mtime_ns"]):
            raise ConfigError(
                f"{path} was loaded into this table by job {job!r} and has changed since (size "
                f"{size} -> {part['size']}); its old rows are in the table. Remove them and "
                "load it with a job that is not incremental, or restore the file"
            )
        return True

    return skip


def split_chunk(chunk: Chunk, first_id: int) -> tuple[Chunk, Chunk] | None:
    """``chunk`` cut in two (after a worker died of memory): its parts halved, or a single
    part's row groups halved; None for one row group or one byte range."""
    parts = [Part(p) for p in json.loads(chunk.sql)["parts"]]
    if len(parts) > 1:
        half = len(parts) // 2
        groups = [parts[:half], parts[half:]]
    elif parts and parts[0].get("rg") and len(parts[0]["rg"]) > 1:
        p, rg = parts[0], parts[0]["rg"]
        half = len(rg) // 2
        groups = [[Part(p, rg=rg[:half], rows=None)], [Part(p, rg=rg[half:], rows=None)]]
    else:
        return None
    base = os.path.dirname(parts[0]["path"])
    # the chunks the halves replace (this one and what it replaced): a side file of rejected
    # rows one of them wrote before its worker died is removed when a half's is written
    replaces = [chunk.chunk_id, *json.loads(chunk.sql).get("replaces", ())]
    out = []
    for i, group in enumerate(groups):
        est = [p["rows"] for p in group]
        rows = None if any(r is None for r in est) else sum(est)
        body = json.dumps({"parts": [dict(p) for p in group], "replaces": replaces})
        out.append(Chunk(first_id + i, body, _label(group, base), identity(group), rows))
    return out[0], out[1]


_ONE = {"row groups": "row group", "record batches": "record batch", "byte ranges": "byte range"}


def _parts_text(kinds: dict[str, int]) -> str:
    """``4 row groups``, ``1 byte range``, ``whole`` (several kinds joined by commas)."""
    words = []
    for kind, n in kinds.items():
        if kind == _WHOLE:
            words.append(_WHOLE if n == 1 else f"{n} times whole")
        else:
            words.append(f"{n} {_ONE[kind] if n == 1 else kind}")
    return ", ".join(words)


def plan_files_table(plan: Plan) -> tuple[str, list[dict[str, Any]]]:
    """The files a file source's plan reads, from its chunks' JSON, in plan order: (their
    common folder, one row per file: ``path`` relative to the folder, ``full_path``,
    ``format``, ``compression``, ``size`` in bytes, ``parts`` in words -- ``4 row groups``,
    ``3 byte ranges``, ``whole`` -- ``part_count``, ``chunks`` (how many chunks read it) and
    ``rows``, the estimate, None when unknown (a compressed text file))."""
    files: dict[str, dict[str, Any]] = {}
    kinds: dict[str, dict[str, int]] = {}
    for chunk in plan.chunks:
        for part in json.loads(chunk.sql)["parts"]:
            path = part["path"]
            row = files.get(path)
            if row is None:
                row = files[path] = {
                    "path": path,
                    "full_path": path,
                    "format": part["format"],
                    "compression": part.get("compression"),
                    "size": int(part["size"]),
                    "parts": "",
                    "part_count": 0,
                    "chunks": 0,
                    "rows": 0,
                    "_chunks": set(),
                }
                kinds[path] = {}
            if part.get("rg") is not None:
                kind = "row groups" if part["format"] == "parquet" else "record batches"
                n = len(part["rg"])
            elif part.get("range") is not None:
                kind, n = "byte ranges", 1
            else:
                kind, n = _WHOLE, 1
            kinds[path][kind] = kinds[path].get(kind, 0) + n
            row["part_count"] += n
            row["_chunks"].add(chunk.chunk_id)
            rows = part.get("rows")
            row["rows"] = None if rows is None or row["rows"] is None else row["rows"] + rows
    paths = list(files)
    if not paths:
        base = "/"
    elif len(paths) == 1:
        base = os.path.dirname(paths[0])
    else:
        base = os.path.commonpath(paths)
    out = []
    for path, row in files.items():
        row["path"] = os.path.relpath(path, base)
        row["parts"] = _parts_text(kinds[path])
        row["chunks"] = len(row.pop("_chunks"))
        out.append(row)
    return base, out
