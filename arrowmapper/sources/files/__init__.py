"""Files as a source: Parquet, CSV/TSV, JSON lines and Arrow IPC, from a path, glob, folder,
list or upload (:class:`~arrowmapper.config.files.FileSpec`), read in parallel chunks with every
guarantee of a database source (the ledger, retries, resume, verify, transforms, preflight).

The job's ``query`` is optional: empty reads every row; otherwise it is Polars SQL over the
rows as the table ``self`` (``SELECT a, b FROM self WHERE b > 0``), applied to each batch. A
query that aggregates, sorts, limits or de-duplicates needs all rows at once: it is planned as
one chunk, and the plan says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ...config import Endpoint
from ...config.files import DEFAULT_REJECTS, FileSpec
from ...errors import ConfigError, PlanError, SourceError
from ..base import READ, ReadOptions, Source
from ..layout import SourceColumn, SourceLayout
from .discover import FileInfo, discover
from .plan import (
    FILE_STRATEGIES,
    Part,
    loaded_before,
    plan_files,
    plan_files_table,
    replan_changed,
    split_chunk,
)
from .read import part_bytes, read_part
from .rejects import Rejects, SideFile, rejects_folder
from .schema import file_schemas, unite

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ...plan import Chunk, Plan, Rendered
    from ...targets import Earlier

__all__ = ["FILE_STRATEGIES", "FileLayout", "FileSource", "plan_files_table", "whole_query"]

#: the names the rows go by in a query (``FROM self``)
TABLE_NAMES: tuple[str, ...] = ("self", "data", "files")
_WHOLE = re.compile(
    r"\b(GROUP\s+BY|ORDER\s+BY|LIMIT|OFFSET|DISTINCT|HAVING|OVER|UNION|INTERSECT|EXCEPT|JOIN|"
    r"COUNT|SUM|AVG|MIN|MAX|MEDIAN|STDDEV\w*|VARIANCE|VAR_\w+|FIRST|LAST|ARRAY_AGG|STRING_AGG)\b",
    re.I,
)
_STRINGS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def whole_query(query: str, sample: pa.Table | None = None) -> str | None:
    """Why ``query`` must see every row at once (it aggregates, sorts, limits, ...), or None
    when it works row by row (a filter and a projection) and can run on each chunk.

    Three tests, any one enough: a keyword (GROUP BY, COUNT, ...); Polars' plan of it (an
    aggregation, sort, slice, de-duplication or join); and, on a ``sample`` of the rows, the
    query over the two halves giving other rows than over the whole (an aggregate Polars
    knows that no list names, a window, a nondeterministic function)."""
    if not query.strip():
        return None
    m = _WHOLE.search(_STRINGS.sub("''", query))
    if m is not None:
        return f"uses {m.group(1).upper()}, which needs every row at once"
    if sample is None:
        return None
    import polars as pl

    try:
        frame = pl.from_arrow(sample.slice(0, 0))
        assert isinstance(frame, pl.DataFrame)
        ctx = pl.SQLContext(frames={name: frame for name in TABLE_NAMES})
        shown = ctx.execute(query).explain()
    except Exception:
        shown = ""
    for node in ("AGGREGATE", "SORT", "SLICE", "UNIQUE", "JOIN", "UNION", "OVER"):
        if node in shown.upper():
            return f"its plan has {node.lower()}, which needs every row at once"
    if sample.num_rows < 2:
        return None
    half = sample.num_rows // 2
    try:
        whole = _apply(query, sample)
        parts = pa.concat_tables(
            [_apply(query, sample.slice(0, half)), _apply(query, sample.slice(half))]
        )
        same = whole.num_rows == parts.num_rows and _sorted(whole).equals(_sorted(parts))
    except Exception:
        same = False
    if not same:
        return "it gives other rows over parts of the data than over all of it"
    return None


def _sorted(table: pa.Table) -> pa.Table:
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.sort(frame.columns, nulls_last=True).to_arrow()


@dataclass(frozen=True)
class FileLayout(SourceLayout):
    """A file source's layout: every column with its Arrow type, the one schema every part is
    read into (``schema``), the query applied to each batch, and the spec's options."""

    schema: pa.Schema | None = None
    query: str = ""
    #: why the query needs every row at once (it then runs once over the whole chunk, which
    #: the plan makes the only one), or None: it runs on each batch
    whole: str | None = None


def _apply(query: str, table: pa.Table | pa.RecordBatch) -> pa.Table:
    import polars as pl

    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    ctx = pl.SQLContext(frames={name: df for name in TABLE_NAMES}, eager=True)
    out: Any = ctx.execute(query)
    return out.to_arrow()


def _bad_rows_note(spec: FileSpec, files: list[FileInfo]) -> str:
    """What ``bad_rows`` does to this job, for the plan and the result's notes."""
    what = (
        "skipped and counted (rows_rejected)"
        if spec.bad_rows == "skip"
        else f"skipped, counted (rows_rejected) and written with the reason to "
        f"{os.path.join(spec.rejects or DEFAULT_REJECTS, '<job id>', 'chunk-<n>.csv')}"
    )
    note = f"bad_rows={spec.bad_rows}: CSV and JSON-lines rows that do not parse are {what}"
    if any(f.format in ("parquet", "arrow") for f in files):
        note += "; Parquet and Arrow files have no row to reject (a corrupt one fails its chunk)"
    return note


def _parquet_rows(part: dict[str, Any]) -> int:
    """The rows of a Parquet part, from the file's metadata (the file checked unchanged)."""
    import pyarrow.parquet as pq

    from .discover import check_unchanged

    check_unchanged(part)
    meta = pq.ParquetFile(part["path"]).metadata
    groups = part.get("rg")
    if groups is None:
        groups = range(meta.num_row_groups)
    return sum(meta.row_group(i).num_rows for i in groups)


@contextlib.contextmanager
def _file_errors() -> Iterator[None]:
    """A file that vanished or cannot be opened while the job is described or planned: a
    SourceError naming it and what to do, not an OSError from deep inside."""
    try:
        yield
    except FileNotFoundError as exc:
        raise SourceError(
            f"{exc.filename} is gone: it was found, then removed before the job could read "
            "it; run the job again (it plans the files there are then)",
            transient=False,
            kind="config",
        ) from None
    except PermissionError as exc:
        raise SourceError(
            f"{exc.filename} cannot be read: permission denied; let the job's user read it",
            transient=False,
            kind="config",
        ) from None


class FileFacts:
    """What the planner and the preflight ask of a file source."""

    dialect = "other"

    def __init__(self, source: FileSource, layout: FileLayout) -> None:
        self.source = source
        self.layout = layout

    def schema(self) -> pa.Schema:
        """The rows' schema after the query."""
        assert self.layout.schema is not None
        if not self.layout.query:
            return self.layout.schema
        return _apply(self.layout.query, self.layout.schema.empty_table()).schema

    def sample(self, rows: int = 1000) -> pa.Table:
        """The first ``rows`` rows of the first file(s), after the query."""
        assert self.layout.schema is not None
        batches: list[pa.RecordBatch] = []
        got = 0
        for info in self.source.files():
            part = Part(info.identity)
            part.update(format=info.format, compression=info.compression, tab=info.tab)
            if info.hive:
                part["hive"] = [list(kv) for kv in info.hive]
            for batch in read_part(part, self.source.spec, self.layout.schema, rows):
                batches.append(batch)
                got += batch.num_rows
                if got >= rows:
                    break
            if got >= rows:
                break
        table = pa.Table.from_batches(batches, schema=self.layout.schema).slice(0, rows)
        if self.layout.query:
            table = _apply(self.layout.query, table)
        return table

    def columns(self) -> dict[str, str]:
        """Column name -> Arrow type."""
        return {f.name: str(f.type) for f in self.schema()}

    def count(self) -> int:
        """The rows the plan estimates (exact for Parquet and Arrow files)."""
        plan = self.source.plan_chunks(self.layout.query, "auto", None, 50_000)
        return plan.estimated_rows or 0

    def duplicated(self, keys: tuple[str, ...]) -> dict[str, Any] | None:
        """One value of ``keys`` more than one row holds (every file is read for it)."""
        import polars as pl

        seen: list[pl.DataFrame] = []
        for info in self.source.files():
            part = Part(info.identity)
            part.update(format=info.format, compression=info.compression, tab=info.tab)
            if info.hive:
                part["hive"] = [list(kv) for kv in info.hive]
            assert self.layout.schema is not None
            for batch in read_part(part, self.source.spec, self.layout.schema, 65_536):
                table = _apply(self.layout.query, batch) if self.layout.query else batch
                frame = pl.from_arrow(table)
                assert isinstance(frame, pl.DataFrame)
                seen.append(frame.select(list(keys)))
        if not seen:
            return None
        counts = pl.concat(seen).group_by(list(keys)).len(name="_am_n").filter(pl.col("_am_n") > 1)
        if counts.is_empty():
            return None
        row: dict[str, Any] = counts.head(1).to_dicts()[0]
        return row

    def key_stats(self, key: str) -> tuple[int, int, Any, Any]:
        """Not asked: a file source plans itself."""
        raise PlanError("a file source is planned by file, row group or byte range")

    def quantiles(self, key: str, n: int) -> list[Any]:
        """Not asked: a file source plans itself."""
        raise PlanError("a file source is planned by file, row group or byte range")

    def is_unique(self, key: str) -> bool:
        """Whether no two rows share ``key``."""
        return self.duplicated((key,)) is None

    def declared_nullable(self, key: str) -> bool | None:
        """Unknown: files declare little."""
        return None

    def heap_blocks(self) -> tuple[int, int]:
        """Not offered."""
        raise PlanError("a file source has no ctid")

    def rowid_range(self) -> tuple[int, int, int]:
        """Not offered."""
        raise PlanError("a file source has no rowid")


class _NoRender:
    """A file source plans its chunks itself (:meth:`FileSource.plan`); the SQL planner's
    ranges do not apply."""

    def _refuse(self, *args: Any) -> Rendered:
        raise PlanError(
            f"a file source plans {', '.join(FILE_STRATEGIES)}, not a database strategy"
        )

    everything = key_range = page = locator_range = _refuse


class FileSource(Source):
    """Rows of files (``file://`` URIs, paths, globs, folders, lists, uploads)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.dialect = endpoint.dialect
        self.spec = FileSpec.parse(endpoint.uri)
        self._files: list[FileInfo] | None = None
        self._layouts: dict[str, FileLayout] = {}
        self._rejected: dict[int, int] = {}
        self.notes: list[str] = []

    @property
    def render(self) -> Any:
        """Not used: see :meth:`plan`."""
        return _NoRender()

    def files(self) -> list[FileInfo]:
        """The files the spec names now (found once per source)."""
        if self._files is None:
            self._files = discover(self.spec)
        return self._files

    def describe(self, query: str) -> FileLayout:
        """The files' one schema (inferred, united, ``columns=`` applied) and the query
        checked against it."""
        with _file_errors():
            return self._describe(query)

    def _describe(self, query: str) -> FileLayout:
        query = (query or "").strip()
        if query in self._layouts:
            return self._layouts[query]
        files = self.files()
        notes: list[str] = []
        schemas = file_schemas(files, self.spec, notes)
        schema = unite(files, schemas, self.spec)
        if query:
            try:
                _apply(query, schema.empty_table())
            except Exception as exc:
                raise ConfigError(
                    f"the query over the files failed: {exc}. It is Polars SQL over the rows as "
                    f"the table 'self' (SELECT ... FROM self WHERE ...); the columns: "
                    f"{', '.join(schema.names)}"
                ) from None
        if self.spec.bad_rows is not None:
            notes.append(_bad_rows_note(self.spec, files))
        # JSON text (nested JSON-lines values, columns={...: 'json'}) makes a PostgreSQL json
        # column: the text kept as the file writes it (a table created with jsonb takes it too)
        columns = tuple(
            SourceColumn(
                f.name, str(f.type), target_type="json" if isinstance(f.type, pa.JsonType) else None
            )
            for f in schema
        )
        layout = FileLayout(
            self.dialect, columns=columns, notes=tuple(notes), schema=schema, query=query
        )
        if query:  # does it run on each batch, or once over every row?
            raw = FileFacts(self, FileLayout(self.dialect, columns=columns, schema=schema))
            whole = whole_query(query, raw.sample(1_000))
            layout = dataclasses.replace(layout, whole=whole)
        self._layouts[query] = layout
        return layout

    def probe(self, query: str, layout: SourceLayout | None = None) -> FileFacts:
        """The facts of the files (for the preflight: schema, sample, duplicates)."""
        if not isinstance(layout, FileLayout):
            layout = self.describe(query)
        return FileFacts(self, layout)

    def plan_chunks(
        self, query: str, strategy: str, key: str | None, chunk_size: int, skip: Any = None
    ) -> Plan:
        """The plan of the files (see :func:`.plan.plan_files`)."""
        with _file_errors():
            return self._plan_chunks(query, strategy, key, chunk_size, skip)

    def _plan_chunks(
        self, query: str, strategy: str, key: str | None, chunk_size: int, skip: Any = None
    ) -> Plan:
        query = (query or "").strip()
        whole = self.describe(query).whole if query else None
        return plan_files(self.files(), self.spec, query, strategy, key, chunk_size, whole, skip)

    def plan(
        self,
        query: str,
        strategy: str,
        key: str | None,
        chunk_size: int,
        workers: int,
        earlier: Sequence[Earlier] | None = None,
    ) -> Plan:
        """A file source plans its own chunks: by row group, byte range or file. An
        incremental job (``earlier``) leaves out every file a finished earlier job loaded into
        the table, refusing one that changed since and one an unfinished job is loading."""
        skip = None if earlier is None else loaded_before(earlier)
        return self.plan_chunks(query, strategy, key, chunk_size, skip)

    def check_plan(self, plan: Plan, committed: set[int], chunk_size: int) -> Plan:
        """A resumed plan against the files now: a changed file none of whose parts
        committed is cut again; one with a committed part, or a file that is gone, is refused
        naming it (:func:`.plan.replan_changed`)."""
        replanned, notes = replan_changed(plan, committed, self.spec, chunk_size)
        self.notes.extend(notes)
        return replanned

    def count_rows(
        self, query: str, chunk: Chunk | None = None, layout: SourceLayout | None = None
    ) -> int:
        """The rows of one chunk, or of every file the source names now (Parquet row groups
        counted from their metadata when there is no query; everything else read)."""
        if not isinstance(layout, FileLayout):
            layout = self.describe(query)
        chunks = (
            [chunk]
            if chunk is not None
            else list(self.plan_chunks(layout.query, "file", None, 1).chunks)
        )
        total = 0
        for c in chunks:
            parts = json.loads(c.sql)["parts"]
            if not layout.query and all(p["format"] == "parquet" for p in parts):
                total += sum(_parquet_rows(p) for p in parts)
            else:
                total += sum(b.num_rows for b in self.read_chunk(c, layout))
        return total

    def split(self, plan: Plan, chunk: Chunk, first_id: int) -> tuple[Chunk, Chunk] | None:
        """Two chunks of half the parts (or row groups) each; None for one row group or range."""
        return split_chunk(chunk, first_id)

    def read_chunk(
        self, chunk: Chunk, layout: SourceLayout | None = None, how: ReadOptions = READ
    ) -> Iterator[pa.RecordBatch]:
        """The chunk's parts, read in order, each batch through the query; the bytes of each
        part go to ``how.on_bytes`` once it is read (see :func:`.read.part_bytes`). With
        ``bad_rows``, the rows that do not parse are skipped and counted (:meth:`rejected`);
        with ``bad_rows="file"`` and a job (``how.job_id``), written to the chunk's side file
        once every row is read (:mod:`.rejects`)."""
        if not isinstance(layout, FileLayout) or layout.schema is None:
            layout = self.describe("")
        assert layout.schema is not None
        body = json.loads(chunk.sql)
        cid = chunk.chunk_id
        self._rejected.pop(cid, None)
        side = None
        if self.spec.bad_rows == "file" and how.job_id is not None:
            folder = rejects_folder(self.spec.rejects or DEFAULT_REJECTS, how.job_id)
            side = SideFile(folder, cid, tuple(body.get("replaces", ())))
        rejects = Rejects(side)
        held: list[pa.RecordBatch] = []  # a whole query's input: every row of the chunk
        try:
            for part in body["parts"]:
                for batch in read_part(part, self.spec, layout.schema, how.batch_size, rejects):
                    if layout.whole:
                        held.append(batch)
                    elif layout.query:
                        try:
                            out = _apply(layout.query, batch)
                        except Exception as exc:
                            raise SourceError(
                                f"the query failed on {part['path']}: {exc}", transient=False
                            ) from None
                        yield from out.to_batches()
                    else:
                        yield batch
                if how.on_bytes is not None:
                    how.read_bytes(part_bytes(part))
            if layout.whole:
                every = pa.Table.from_batches(held, schema=layout.schema)
                held.clear()
                try:
                    out = _apply(layout.query, every)
                except Exception as exc:
                    raise SourceError(f"the query failed: {exc}", transient=False) from None
                yield from out.to_batches(max_chunksize=how.batch_size)
            if side is not None:
                side.commit()  # every row read; the target commits after this
            self._rejected[cid] = rejects.count
        finally:
            if side is not None:
                side.discard()

    def rejected(self, chunk_id: int) -> int:
        """The rows the last complete read of ``chunk_id`` skipped as bad (``bad_rows``)."""
        return self._rejected.get(chunk_id, 0)
