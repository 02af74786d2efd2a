"""The plan's records and the two seams the planner calls: a :class:`Probe` for facts about
the source and a :class:`ChunkRenderer` that writes a range in the source's own terms."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from .ranges import KeyRange, LocatorRange, Page, PartitionRange


@dataclass(frozen=True)
class Chunk:
    """One unit of work: a query whose rows are disjoint from every other chunk's.

    ``bounds`` holds the reader-neutral range as JSON; ``sql`` and ``predicate`` are how the
    source that planned it reads that range (the source renders them, see
    :class:`ChunkRenderer`)."""

    chunk_id: int
    sql: str
    predicate: str
    bounds: str
    estimated_rows: int | None = None


@dataclass(frozen=True)
class Plan:
    """The chunks of one job, the strategy used and why (``auto`` explains its choice);
    ``notes``: what else the planner found (a hot key value and how it was cut, or why not)."""

    strategy: str
    reason: str
    key: str | None
    query: str
    chunks: tuple[Chunk, ...]
    estimated_rows: int | None = None
    notes: tuple[str, ...] = ()
    #: ``am.plan_query`` with a target: the path the job would take (arrow or copy) and why;
    #: never stored (a job decides its path when it prepares)
    path: str | None = None
    path_reason: str = ""

    def to_json(self) -> str:
        """The plan as stored in the target's ledger (resume reads it back)."""
        data = asdict(self)
        if self.path is None:  # stored plans stay as they were
            data.pop("path")
            data.pop("path_reason")
        return json.dumps(data, default=str)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """The plan :meth:`to_json` stored."""
        data = json.loads(text)
        chunks = tuple(Chunk(**c) for c in data.pop("chunks"))
        notes = tuple(data.pop("notes", ()))
        return cls(chunks=chunks, notes=notes, **data)

    def describe(self) -> str:
        """The plan as ``arrowmapper plan`` prints it."""
        lines = [
            f"strategy: {self.strategy} ({self.reason})",
            f"chunks: {len(self.chunks)}; estimated rows: {self.estimated_rows}",
            *(f"note: {n}" for n in self.notes),
        ]
        if self.path is not None:
            lines.insert(1, f"path: {self.path} ({self.path_reason})")
        for c in self.chunks:
            lines.append(f"  {c.chunk_id:>5}  ~{c.estimated_rows or 0:>10}  {c.predicate}")
        return "\n".join(lines)


def replace_chunk(plan: Plan, parent: int, children: tuple[Chunk, ...]) -> Plan:
    """The plan with chunk ``parent`` replaced by ``children`` (for the stored plan)."""
    chunks = tuple(c for c in plan.chunks if c.chunk_id != parent) + children
    return Plan(
        plan.strategy, plan.reason, plan.key, plan.query, chunks, plan.estimated_rows, plan.notes
    )


@dataclass(frozen=True)
class Rendered:
    """A range as one source reads it: the whole chunk query and its predicate alone (what
    ``arrowmapper plan`` shows)."""

    sql: str
    predicate: str


class ChunkRenderer(Protocol):
    """How a source reads a range of ``query`` (``sources.render.SqlRender`` for SQL)."""

    def everything(self, query: str) -> Rendered:
        """All rows, one chunk."""
        ...

    def key_range(self, query: str, key: str, rng: KeyRange) -> Rendered: ...

    # optional: ``hot_range(query, key, rng: HotRange) -> Rendered`` (the rows of one hot key
    # value, cut by a tiebreak); a renderer without it never gets a hot value split

    def page(self, query: str, key: str, page: Page) -> Rendered: ...

    def locator_range(self, query: str, rng: LocatorRange) -> Rendered: ...

    def partition_range(self, query: str, rng: PartitionRange) -> Rendered: ...


#: what kind of relation a plain table name is (``TableShape.kind``)
RELATION_WORDS: dict[str, str] = {
    "table": "table",
    "partitioned": "partitioned table",
    "view": "view",
    "matview": "materialized view",
    "foreign": "foreign table",
    "other": "relation without rows of its own",
}


@dataclass(frozen=True)
class Partition:
    """One leaf partition: its FROM item, whether it has heap blocks (a foreign table as a
    partition has none), how many, and its estimated rows."""

    relation: str
    heap: bool
    blocks: int
    rows: int


@dataclass(frozen=True)
class TableShape:
    """What the catalog says of a plain table name: its ``kind`` (a key of
    :data:`RELATION_WORDS`), its single-column unique NOT NULL keys (the primary key first)
    and, for a partitioned table, its leaf partitions."""

    kind: str
    keys: tuple[str, ...] = ()
    partitions: tuple[Partition, ...] = ()


class Probe(Protocol):
    """What the planner needs to know about a source (``sources.SourceProbe`` for SQL)."""

    dialect: str

    def columns(self) -> dict[str, str]: ...  # name -> arrow type string

    def key_stats(self, key: str) -> tuple[int, int, Any, Any]: ...  # rows, non-null, min, max

    def quantiles(self, key: str, n: int) -> list[Any]: ...

    def is_unique(self, key: str) -> bool: ...

    def declared_nullable(self, key: str) -> bool | None: ...

    def count(self) -> int: ...

    def heap_blocks(self) -> tuple[int, int]: ...  # ctid: blocks, estimated rows

    def rowid_range(self) -> tuple[int, int, int]: ...  # rowid: rows, min, max

    # optional: ``frequent(key, min_rows, among=None) -> list[tuple[value, rows]]`` (the key
    # values that hold more than ``min_rows`` rows, only among ``among`` where given, in the
    # server's order) and ``tiebreak_quantiles(key,
    # value, by: Tiebreak, n) -> list`` (inner boundaries of ``by`` at its n-quantiles among
    # the rows holding ``value``): a probe without them plans hot values as one chunk each.
    # optional: ``sampled() -> tuple[int, str] | None`` (a large table planned from the
    # catalog's estimated rows and a sample: said in the plan's notes).
    # optional: ``shape() -> TableShape | None`` (what the catalog says of a plain table
    # name; None for a query). A probe without it is planned as before (see strategies._shape)
