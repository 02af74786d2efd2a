"""The Source protocol: what the engine asks of wherever rows come from.

A source describes the query's columns (:meth:`Source.describe`), answers the planner's
questions (:meth:`Source.probe`, a :class:`~arrowmapper.plan.Probe`), writes the planner's
reader-neutral ranges in its own terms (:attr:`Source.render`, a
:class:`~arrowmapper.plan.ChunkRenderer`), reads one chunk as a stream of Arrow record batches
(:meth:`Source.read_chunk`) and, when a chunk is too big, cuts it in two (:meth:`Source.split`).
``sql.SqlSource`` (connectorx; ADBC for snapshots) is the first; ``open_source`` picks one from
the registration table in ``arrowmapper.sources``.

The run/ package knows sources only through this protocol. A new source may subclass
:class:`Source` explicitly to inherit the defaults of the optional parts (no split, no
snapshot, nothing to close).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Self

from ..errors import ConfigError, SourceError
from ..plan import Probe

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

    from ..config import Endpoint
    from ..plan import Chunk, ChunkRenderer, Plan
    from ..targets import Earlier
    from .layout import SourceLayout


@dataclass(frozen=True)
class ReadOptions:
    """How one chunk is read: inside an exported ``snapshot`` (its id) or not, in batches of
    ``batch_size`` rows, each query bounded by ``statement_timeout`` seconds (None: not).

    ``on_bytes``: called with the source bytes of each piece of the chunk the source has
    finished reading (a file source: each part -- a byte range, row groups, a whole file),
    before it yields the batches of the next piece; the worker adds them to the progress
    board's ``bytes_read``. A source that cannot count its bytes (a database) never calls it.

    ``job_id``: the job the chunk is read for. A source that keeps something per chunk beside
    its rows (a file source's rejected rows) writes it under the job's id; None (a read outside
    a job's run: verify, the preflight) writes nothing.
    """

    snapshot: str | None = None
    batch_size: int = 65_536
    statement_timeout: float | None = None
    on_bytes: Callable[[int], None] | None = field(default=None, compare=False)
    job_id: str | None = None

    def read_bytes(self, n: int) -> None:
        """Report ``n`` bytes read (to :attr:`on_bytes`, when there is one)."""
        if self.on_bytes is not None and n > 0:
            self.on_bytes(n)


#: the default: no snapshot, 65,536-row batches, no statement timeout
READ = ReadOptions()


class SourceFacts(Probe, Protocol):
    """What :meth:`Source.probe` answers: the planner's :class:`~arrowmapper.plan.Probe` plus
    the query's Arrow schema and a sample of its rows (the preflight runs the transform on it)."""

    def schema(self) -> pa.Schema:
        """The query's Arrow schema, as the chunks will be read (no rows read)."""
        ...

    def sample(self, rows: int = 1000) -> pa.Table:
        """The query's first ``rows`` rows, read as the chunks will be."""
        ...

    def duplicated(self, keys: tuple[str, ...]) -> dict[str, Any] | None:
        """One value of ``keys`` the query returns more than once (with its count, ``_am_n``),
        or None: mode='merge' refuses a key that is not unique."""
        ...


class Source(Protocol):
    """One source endpoint; a context manager (``close`` is idempotent)."""

    endpoint: Endpoint
    dialect: str
    #: every chunk can read one exported snapshot (:meth:`export_snapshot`)
    snapshots: bool = False
    #: the binary COPY format :meth:`copy_out` streams (None: no COPY fast path); a target
    #: dialect with the same ``copy_format`` takes the stream undecoded
    copy_format: str | None = None

    @property
    def render(self) -> ChunkRenderer:
        """How this source reads the planner's ranges (pass it to ``build_plan``)."""
        ...

    def describe(self, query: str) -> SourceLayout:
        """The query's columns, their declared types and how each is read."""
        ...

    def probe(self, query: str, layout: SourceLayout | None = None) -> SourceFacts:
        """The facts the planner asks for (counts, min/max, quantiles, physical ranges)."""
        ...

    def read_chunk(
        self, chunk: Chunk, layout: SourceLayout | None = None, how: ReadOptions = READ
    ) -> Iterator[pa.RecordBatch]:
        """The chunk's rows as Arrow record batches, read exactly as ``layout`` says."""
        ...

    def rejected(self, chunk_id: int) -> int:
        """The rows the last complete read of ``chunk_id`` in this process skipped as bad (a
        file source's ``bad_rows``); the worker reports them with the chunk. The default: 0
        (a source that never skips a row)."""
        return 0

    def plan(
        self,
        query: str,
        strategy: str,
        key: str | None,
        chunk_size: int,
        workers: int,
        earlier: Sequence[Earlier] | None = None,
    ) -> Plan | None:
        """The source's own plan, or None (the default: the planner cuts the query into key,
        page or locator ranges, which :attr:`render` writes). Files plan themselves.
        ``earlier``: an incremental job's view of what earlier jobs committed into the table
        (the plan leaves it out); the default refuses incremental jobs."""
        if earlier is not None:
            raise ConfigError(
                "incremental=True needs a source that can tell what is new (files); a "
                "database query is copied whole each run"
            )
        return None

    def check_plan(self, plan: Plan, committed: set[int], chunk_size: int) -> Plan:
        """The plan of a job being resumed, against the source as it is now: ``plan`` itself,
        a plan whose uncommitted chunks read what changed anew (a file changed before any of
        its rows committed), or a refusal (it changed after). The default: ``plan``."""
        return plan

    def cursor_max(
        self, query: str, cursor: str, at_most: tuple[str, str] | None = None
    ) -> tuple[str | None, bool]:
        """A run with ``cursor=``: the cursor column's highest value in ``query`` as the
        server's exact text (None: no row has one) and whether some row has a NULL cursor. The
        default refuses: only a source whose server compares values can bound a run."""
        raise ConfigError(
            f"cursor={cursor!r} bounds a database query; a {self.dialect} source cannot: use "
            "incremental=True for files"
        )

    def cursor_bounded(
        self, query: str, cursor: str, kind: str, lo: str | None, hi: str | None
    ) -> str:
        """``query`` restricted to the rows whose cursor (of ``kind``: integer, numeric, date,
        timestamp, timestamptz or text) is above ``lo`` (None: no lower bound) and at most
        ``hi`` (None: no rows); NULL cursors left out."""
        raise ConfigError(f"cursor={cursor!r} needs a database source")

    def cursor_collation(self, query: str, cursor: str) -> str | None:
        """The collation of a text cursor where the server's comparison may fold case or
        trailing spaces (so a value equal to the mark in that order is never loaded), or
        None (the default: this source compares text exactly)."""
        return None

    def cursor_above(self, kind: str, a: str, b: str) -> bool:
        """Whether the cursor value ``a`` (the server's text) is above ``b``, in the server's
        order."""
        raise ConfigError("cursor= needs a database source")

    def count_rows(
        self, query: str, chunk: Chunk | None = None, layout: SourceLayout | None = None
    ) -> int:
        """The rows ``query`` returns now, or one ``chunk`` of it (``verify`` compares them
        with the ledger). The default reads the chunk and counts."""
        if chunk is None:
            raise SourceError(f"{type(self).__name__} cannot count a whole query")
        return sum(b.num_rows for b in self.read_chunk(chunk, layout))

    def rows_at_most(self, chunk: Chunk, limit: int) -> int:
        """The rows ``chunk`` holds now, counted no further than ``limit + 1`` (so the
        answer is cheap however large the chunk is): what decides whether a small job may run
        in the calling process. The default trusts the plan's estimate (a file's metadata);
        a source whose estimates come from statistics that may be stale counts."""
        return limit + 1 if chunk.estimated_rows is None else chunk.estimated_rows

    def split(self, plan: Plan, chunk: Chunk, first_id: int) -> tuple[Chunk, Chunk] | None:
        """Two chunks that together hold exactly ``chunk``'s rows, or None (the default: this
        source cannot cut a chunk, so one too big for memory fails as it is)."""
        return None

    def export_snapshot(self) -> tuple[Any, str]:
        """Open a transaction whose snapshot every chunk's read joins: (its connection, kept
        open while the job runs; the snapshot id for :attr:`ReadOptions.snapshot`). The
        default refuses: this source has no snapshots."""
        raise SourceError(f"snapshot=True needs a PostgreSQL source, not {self.dialect}")

    def copy_columns(self, query: str) -> list[tuple[str, int, int, str]]:
        """``(name, type oid, typmod, declared type)`` of each result column of ``query``,
        what the COPY fast path compares with the target's. The default refuses."""
        raise SourceError(f"a {self.dialect} source has no COPY fast path")

    def copy_out(
        self, chunk: Chunk, how: ReadOptions, rows: list[int]
    ) -> Iterator[bytes]:
        """The chunk's rows as the server's binary COPY stream, undecoded (``rows[0]``: the
        COPY's row count once it ended; ``how.snapshot`` is joined). The default refuses."""
        raise SourceError(f"a {self.dialect} source has no COPY fast path")

    def close(self) -> None:
        """Release what the source holds open (idempotent); the default holds nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
