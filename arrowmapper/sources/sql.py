"""The SQL source: connectorx reads (ADBC inside an exported snapshot), the first
:class:`~arrowmapper.sources.base.Source`.

What differs between SQL servers comes from the tables in :mod:`.dialects` and
:mod:`arrowmapper.sql.dialects`; this module only puts the pieces together: the type preflight
(:mod:`.sqltypes`), the planner's probe (:mod:`.probe`), the rendering of ranges
(:mod:`.render`), the readers (:mod:`.reader`, :mod:`.snapshot`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Self

import pyarrow as pa

from ..config import Endpoint
from ..errors import ConfigError, SourceError
from ..plan import Chunk, Plan
from ..sql import quote_ident
from .base import READ, ReadOptions
from .copyout import CopyReader, copy_columns
from .cursor import above, bounded_query, collation, cursor_max
from .dialects import source_dialect
from .layout import SourceLayout
from .probe import SourceProbe
from .reader import read_arrow, rows_of
from .render import SqlRender, render_literal, source_sql, split_by, split_offset
from .snapshot import SnapshotReader, export_snapshot
from .sqltypes import describe_source


class SqlSource:
    """A SQL database connectorx reads (PostgreSQL, MySQL/MariaDB, SQLite, ...).

    >>> with SqlSource(parse_uri("sqlite:///shop.db")) as src:  # doctest: +SKIP
    ...     plan = build_plan(src.probe("orders"), "orders", "auto", None, 100_000,
    ...                       render=src.render)
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.dialect: str = endpoint.dialect
        self.render = SqlRender(self.dialect)
        self.snapshots = source_dialect(self.dialect).snapshots
        self.copy_format = source_dialect(self.dialect).copy_format
        self._snapshot: SnapshotReader | None = None
        self._copy: CopyReader | None = None

    def describe(self, query: str) -> SourceLayout:
        """The query's columns and how each is read (see :func:`describe_source`)."""
        return describe_source(self.endpoint, query)

    def probe(self, query: str, layout: SourceLayout | None = None) -> SourceProbe:
        """The planner's questions about ``query``, each one query of the source."""
        return SourceProbe(self.endpoint, query, layout)

    def read_chunk(
        self, chunk: Chunk, layout: SourceLayout | None = None, how: ReadOptions = READ
    ) -> Iterator[pa.RecordBatch]:
        """The chunk's rows: its SQL wrapped by ``layout`` (text reads, guards), read by
        connectorx -- or by ADBC inside ``how.snapshot`` -- and decoded; a guard's refusal is
        raised as the terminal :class:`~arrowmapper.errors.SourceError` it stands for."""
        sql = layout.wrap(chunk.sql) if layout is not None else chunk.sql
        reader: Any
        if how.snapshot:
            if self._snapshot is None:
                self._snapshot = SnapshotReader(self.endpoint)
            reader = self._snapshot.read(sql, how.snapshot, how.statement_timeout)
        else:
            reader = read_arrow(self.endpoint, sql, how.batch_size, how.statement_timeout)
        if layout is None:
            yield from reader
            return
        for batch in layout.stream(reader):
            yield layout.decode(batch)

    def copy_columns(self, query: str) -> list[tuple[str, int, int, str]]:
        """The query's columns as the COPY fast path compares them (see
        :func:`~.copyout.copy_columns`)."""
        if self.copy_format is None:
            raise SourceError(f"a {self.dialect} source has no COPY fast path")
        return copy_columns(self.endpoint, query)

    def copy_out(self, chunk: Chunk, how: ReadOptions, rows: list[int]) -> Iterator[bytes]:
        """The chunk's SQL (unwrapped: the relay carries every value, guards are for Arrow) as
        the server's binary COPY stream (:class:`~.copyout.CopyReader`)."""
        if self.copy_format is None:
            raise SourceError(f"a {self.dialect} source has no COPY fast path")
        if self._copy is None:
            self._copy = CopyReader(self.endpoint)
        return self._copy.blocks(chunk.sql, how.snapshot, how.statement_timeout, rows)

    def rejected(self, chunk_id: int) -> int:
        """0: a database's rows are typed by its server; none is skipped."""
        return 0

    def plan(
        self,
        query: str,
        strategy: str,
        key: str | None,
        chunk_size: int,
        workers: int,
        earlier: Any = None,
    ) -> Plan | None:
        """None: the planner cuts a query into ranges (:attr:`render` writes them); an
        incremental job (``earlier``) is refused: a query has no notion of what is new."""
        if earlier is not None:
            raise ConfigError(
                "incremental=True needs a source that can tell what is new (files); a "
                "database query is copied whole each run"
            )
        return None

    def check_plan(self, plan: Plan, committed: set[int], chunk_size: int) -> Plan:
        """``plan``: a resumed offset plan is checked against the row count instead."""
        return plan

    # -- runs with a cursor (see :mod:`.cursor`)
    def cursor_max(
        self, query: str, cursor: str, at_most: tuple[str, str] | None = None
    ) -> tuple[str | None, bool]:
        """The cursor's highest value as the server's exact text (None: none) and whether
        some row has a NULL cursor; with ``at_most`` (kind, text), not above that value."""
        return cursor_max(self.endpoint, query, cursor, at_most)

    def cursor_bounded(
        self, query: str, cursor: str, kind: str, lo: str | None, hi: str | None
    ) -> str:
        """``query`` restricted to ``lo < cursor <= hi`` (no ``hi``: no rows)."""
        return bounded_query(query, self.dialect, cursor, kind, lo, hi)

    def cursor_collation(self, query: str, cursor: str) -> str | None:
        """A text cursor's collation where the server may fold case or trailing spaces."""
        return collation(self.endpoint, query, cursor)

    def cursor_above(self, kind: str, a: str, b: str) -> bool:
        """Whether the cursor value ``a`` is above ``b``, compared by the server."""
        return above(self.endpoint, kind, a, b)

    def count_rows(
        self, query: str, chunk: Chunk | None = None, layout: SourceLayout | None = None
    ) -> int:
        """``SELECT COUNT(*)`` of the query, or of one chunk's query, on the server."""
        relation = source_sql(query, self.dialect) if chunk is None else f"({chunk.sql}) AS _am_v"
        counted = read_arrow(self.endpoint, f"SELECT COUNT(*) AS n FROM {relation}")
        return int(counted.read_all().column(0)[0].as_py())

    def rows_at_most(self, chunk: Chunk, limit: int) -> int:
        """The chunk's rows now, counted on the server up to ``limit + 1`` (the planner's
        estimate may come from stale statistics: a table loaded since its last ANALYZE)."""
        n = int(limit) + 1
        bounded = f"SELECT 1 AS one FROM ({chunk.sql}) AS _am_v LIMIT {n}"
        counted = read_arrow(self.endpoint, f"SELECT COUNT(*) AS n FROM ({bounded}) AS _am_w")
        return int(counted.read_all().column(0)[0].as_py())

    def split(self, plan: Plan, chunk: Chunk, first_id: int) -> tuple[Chunk, Chunk] | None:
        """Two chunks that together hold exactly ``chunk``'s rows, or None when it cannot be
        split (one key value, one row, no key). Probes the source for a boundary inside it."""
        d = self.dialect
        bounds = json.loads(chunk.bounds)
        by = bounds.get("by")
        if (
            plan.strategy in ("key", "quantile")
            and "value" in bounds
            and by not in (None, "ctid", "rowid")
        ):
            # part of a hot key value's rows: cut again by its tiebreak, a unique NOT NULL column
            return self._halve(plan, chunk, quote_ident(str(by), d), first_id, "")
        if plan.strategy in ("key", "quantile") and plan.key:
            q = quote_ident(plan.key, d)
            if chunk.predicate.strip() == f"{q} IS NULL":
                return None
            return self._halve(plan, chunk, q, first_id, f" WHERE {q} IS NOT NULL")
        if plan.strategy == "rowid":
            row = rows_of(
                self.endpoint,
                f"SELECT MIN(rowid) AS lo, MAX(rowid) AS hi FROM "
                f"{source_sql(plan.query, d)} WHERE {chunk.predicate}",
            )[0]
            if row["lo"] is None or int(row["hi"]) <= int(row["lo"]):
                return None
            mid = (int(row["lo"]) + int(row["hi"]) + 1) // 2
            return split_by(plan, chunk, "rowid", str(mid), first_id, d)
        if plan.strategy == "ctid":
            if "not_in" in bounds or bounds.get("heap") is False:
                return None  # a partitioned table's rest, or a leaf without heap blocks
            # a leaf partition's blocks are its own (the predicate names it by tableoid)
            leaf = bounds.get("partition")
            lo = int(bounds.get("block_lo") or 0)
            hi = bounds.get("block_hi")
            whole = leaf or plan.query
            hi = int(hi) if hi is not None else self.probe(whole).heap_blocks()[0]
            if hi - lo < 2:
                return None
            mid = (lo + hi) // 2
            part = {"partition": leaf} if leaf else {}
            extra = (
                {**part, "block_lo": lo, "block_hi": mid},
                {**part, "block_lo": mid, "block_hi": bounds.get("block_hi")},
            )
            return split_by(plan, chunk, "ctid", f"'({mid},0)'::tid", first_id, d, extra)
        if plan.strategy == "offset":
            return split_offset(plan, chunk, first_id, d)
        return None


    def _halve(
        self, plan: Plan, chunk: Chunk, q: str, first_id: int, where: str
    ) -> tuple[Chunk, Chunk] | None:
        """``chunk`` cut in two at the median of the column ``q`` (quoted) over its rows
        (``where``: which of them), or None when that median cannot cut it."""
        d = self.dialect
        sql = (
            f"SELECT MIN(k) AS b FROM (SELECT {q} AS k, NTILE(2) OVER (ORDER BY {q}) AS t "
            f"FROM ({chunk.sql}) AS _am_c{where}) AS _am_q GROUP BY t ORDER BY t"
        )
        values = [r["b"] for r in rows_of(self.endpoint, sql)]
        if len(values) < 2 or values[0] == values[1]:
            return None
        return split_by(plan, chunk, q, render_literal(values[1], d), first_id, d)
    def export_snapshot(self) -> tuple[Any, str]:
        """A REPEATABLE READ transaction's exported snapshot (PostgreSQL; see
        :func:`~arrowmapper.sources.snapshot.export_snapshot`)."""
        return export_snapshot(self.endpoint)

    def close(self) -> None:
        """Close the snapshot reader's connection, if one was opened (idempotent)."""
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None
        if self._copy is not None:
            self._copy.close()
            self._copy = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plan_split(endpoint: Endpoint, plan: Any, chunk: Any, first_id: int) -> Any:
    """:meth:`SqlSource.split` for a source named by its endpoint (the old spelling; the run/
    package calls ``open_source(endpoint).split``)."""
    with SqlSource(endpoint) as source:
        return source.split(plan, chunk, first_id)
