"""An Arrow IPC file as a source (``arrow:///path/to/file.arrow``): the smallest source that is
not a database, and the worked example of "Adding a source" in ``docs/architecture.md``.

The file holds one table; the job's query names it (a bare name: there is no SQL to run). A
chunk is the whole file or a key range (strategy ``none``, ``key`` or ``auto`` with a key); the
source writes a range in its own terms (a JSON filter, :class:`ArrowRender`) and reads it back
in :meth:`ArrowFileSource.read_chunk`. It has no snapshots and cannot split a chunk: the
defaults of :class:`~.base.Source`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ..config import Endpoint
from ..errors import ConfigError, PlanError, SourceError
from ..plan import Chunk, KeyRange, LocatorRange, Page, PartitionRange, Rendered
from .base import READ, ReadOptions, Source
from .layout import SourceLayout


def _read(path: str) -> pa.Table:
    import pyarrow.ipc as ipc

    try:
        with pa.memory_map(path) as f:
            return ipc.open_file(f).read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise SourceError(f"cannot read the Arrow file {path}: {exc}", transient=False) from None


class ArrowRender:
    """Ranges as this source reads them: a JSON filter (the chunk's ``sql``)."""

    def everything(self, query: str) -> Rendered:
        """All rows, one chunk."""
        return Rendered("{}", "true")

    def key_range(self, query: str, key: str, rng: KeyRange) -> Rendered:
        """``lo <= key < hi`` (open ends: None), or ``key IS NULL``."""
        spec = {"key": key, "lo": rng.lo, "hi": rng.hi, "null": rng.null}
        shown = f"{key} IS NULL" if rng.null else f"{rng.lo} <= {key} < {rng.hi}"
        return Rendered(json.dumps(spec), shown)

    def page(self, query: str, key: str, page: Page) -> Rendered:
        """Not offered: an Arrow file is read whole or by key ranges."""
        raise PlanError("an Arrow file source plans strategy 'none' or 'key', not 'offset'")

    def locator_range(self, query: str, rng: LocatorRange) -> Rendered:
        """Not offered: an Arrow file has no physical row locator."""
        raise PlanError(f"an Arrow file source has no {rng.locator}; use strategy 'key'")

    def partition_range(self, query: str, rng: PartitionRange) -> Rendered:
        """Not offered: an Arrow file has no partitions."""
        raise PlanError("an Arrow file source has no partitions; use strategy 'key'")


class ArrowFacts:
    """The planner's questions answered from the table itself (it is in memory)."""

    dialect = "other"  # the planner reads the (bare) query with the generic SQL rules

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def schema(self) -> pa.Schema:
        """The table's schema."""
        return self.table.schema

    def sample(self, rows: int = 1000) -> pa.Table:
        """The table's first ``rows`` rows."""
        return self.table.slice(0, rows)

    def columns(self) -> dict[str, str]:
        """Column name -> Arrow type string."""
        return {f.name: str(f.type) for f in self.table.schema}

    def count(self) -> int:
        """The number of rows."""
        return int(self.table.num_rows)

    def key_stats(self, key: str) -> tuple[int, int, Any, Any]:
        """Rows, non-null rows, min and max of ``key``."""
        import pyarrow.compute as pc

        col = self.table.column(key)
        bounds = pc.min_max(col).as_py()
        return self.count(), self.count() - col.null_count, bounds["min"], bounds["max"]

    def quantiles(self, key: str, n: int) -> list[Any]:
        """Not offered (strategy 'key' needs none)."""
        raise PlanError("an Arrow file source plans strategy 'none' or 'key', not 'quantile'")

    def is_unique(self, key: str) -> bool:
        """Whether ``key`` has no repeated value."""
        return self.duplicated((key,)) is None

    def declared_nullable(self, key: str) -> bool | None:
        """Whether the schema lets ``key`` be null."""
        return bool(self.table.schema.field(key).nullable)

    def duplicated(self, keys: tuple[str, ...]) -> dict[str, Any] | None:
        """One value of ``keys`` held by more than one row (with its count, ``_am_n``)."""
        counts = self.table.group_by(list(keys)).aggregate([([], "count_all")])
        twice = counts.filter(counts.column("count_all").to_numpy() > 1).slice(0, 1).to_pylist()
        if not twice:
            return None
        row: dict[str, Any] = twice[0]
        row["_am_n"] = row.pop("count_all")
        return row

    def heap_blocks(self) -> tuple[int, int]:
        """Not offered: no heap."""
        raise PlanError("an Arrow file source has no ctid")

    def rowid_range(self) -> tuple[int, int, int]:
        """Not offered: no rowid."""
        raise PlanError("an Arrow file source has no rowid")


class ArrowFileSource(Source):
    """Rows of one Arrow IPC file; ``arrow:///abs/path.arrow`` (``arrow://rel.arrow``)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.dialect = endpoint.dialect
        self.path = endpoint.path or endpoint.uri.split("://", 1)[1]
        self._table: pa.Table | None = None

    @property
    def render(self) -> ArrowRender:
        """Ranges as JSON filters."""
        return ArrowRender()

    def _whole(self, query: str | None = None) -> pa.Table:
        if query is not None and not query.strip().isidentifier():
            raise ConfigError(
                f"an Arrow file source reads its one table: the query must be a bare name, "
                f"got {query!r}"
            )
        if self._table is None:
            self._table = _read(self.path)
        return self._table

    def describe(self, query: str) -> SourceLayout:
        """Every column is read as it is stored: nothing to rewrite or decode."""
        self._whole(query)
        return SourceLayout(self.dialect)

    def probe(self, query: str, layout: SourceLayout | None = None) -> ArrowFacts:
        """The planner's facts, from the table."""
        return ArrowFacts(self._whole(query))

    def read_chunk(
        self, chunk: Chunk, layout: SourceLayout | None = None, how: ReadOptions = READ
    ) -> Iterator[pa.RecordBatch]:
        """The rows the chunk's JSON filter selects, ``how.batch_size`` rows a batch."""
        import pyarrow.compute as pc

        table, spec = self._whole(), json.loads(chunk.sql)
        if spec:
            col = table.column(spec["key"])
            if spec["null"]:
                mask = pc.is_null(col)
            else:
                mask = pc.is_valid(col)
                if spec["lo"] is not None:
                    mask = pc.and_(mask, pc.greater_equal(col, spec["lo"]))
                if spec["hi"] is not None:
                    mask = pc.and_(mask, pc.less(col, spec["hi"]))
            table = table.filter(mask)
        yield from table.to_batches(max_chunksize=how.batch_size)

    def close(self) -> None:
        """Forget the table (idempotent)."""
        self._table = None
