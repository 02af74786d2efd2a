"""The Source protocol: what the engine asks of wherever rows come from.

A source describes the query's columns (:meth:`Source.describe`), answers the planner's
questions (:meth:`Source.probe`, a :class:`~arrowmapper.plan.Probe`), writes the planner's
reader-neutral ranges in its own terms (:attr:`Source.render`, a
:class:`~arrowmapper.plan.ChunkRenderer`), reads one chunk as a stream of Arrow record batches
(:meth:`Source.read_chunk`) and, when a chunk is too big, cuts it in two (:meth:`Source.split`).
``sql.SqlSource`` (connectorx; ADBC for snapshots) is the first; ``open_source`` picks one from
the registration table in ``arrowmapper.sources``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    import pyarrow as pa

    from ..config import Endpoint
    from ..plan import Chunk, ChunkRenderer, Plan, Probe
    from .layout import SourceLayout


@dataclass(frozen=True)
class ReadOptions:
    """How one chunk is read: inside an exported ``snapshot`` (its id) or not, in batches of
    ``batch_size`` rows, each query bounded by ``statement_timeout`` seconds (None: not)."""

    snapshot: str | None = None
    batch_size: int = 65_536
    statement_timeout: float | None = None


#: the default: no snapshot, 65,536-row batches, no statement timeout
READ = ReadOptions()


class Source(Protocol):
    """One source endpoint; a context manager (``close`` is idempotent)."""

    endpoint: Endpoint
    dialect: str

    @property
    def render(self) -> ChunkRenderer:
        """How this source reads the planner's ranges (pass it to ``build_plan``)."""
        ...

    def describe(self, query: str) -> SourceLayout:
        """The query's columns, their declared types and how each is read."""
        ...

    def probe(self, query: str, layout: SourceLayout | None = None) -> Probe:
        """The facts the planner asks for (counts, min/max, quantiles, physical ranges)."""
        ...

    def read_chunk(
        self, chunk: Chunk, layout: SourceLayout | None = None, how: ReadOptions = READ
    ) -> Iterator[pa.RecordBatch]:
        """The chunk's rows as Arrow record batches, read exactly as ``layout`` says."""
        ...

    def split(self, plan: Plan, chunk: Chunk, first_id: int) -> tuple[Chunk, Chunk] | None:
        """Two chunks that together hold exactly ``chunk``'s rows, or None."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...
