"""The chunk planner: pure functions from a few probed facts to a :class:`Plan`.

* :mod:`.ranges` -- reader-neutral ranges (:class:`KeyRange`, :class:`Page`,
  :class:`LocatorRange`) and the pure splitting arithmetic;
* :mod:`.records` -- :class:`Chunk`, :class:`Plan` and the two seams the planner calls: a
  :class:`Probe` (facts about the source) and a :class:`ChunkRenderer` (a range in the
  source's own terms);
* :mod:`.strategies` -- :func:`build_plan`: none, key, quantile, offset, ctid, rowid, auto.

The SQL a chunk runs is the source's (``arrowmapper.sources.render``). ``source_sql``,
``select_all``, ``render_literal``, ``split_by`` and ``split_offset`` lived here and are still
importable from here (resolved on first use) while callers move to ``arrowmapper.sources``.
"""

from __future__ import annotations

from typing import Any

from ..sql import bare_table as bare_table  # re-exported: compat uses it
from ..sql import quote_ident as quote_ident
from .ranges import (
    ChunkRange,
    HotRange,
    KeyRange,
    LocatorRange,
    Page,
    PartitionRange,
    Tiebreak,
    chunk_count,
    equal_width_boundaries,
    ranges_from_boundaries,
)
from .records import (
    RELATION_WORDS,
    Chunk,
    ChunkRenderer,
    Partition,
    Plan,
    Probe,
    Rendered,
    TableShape,
    replace_chunk,
)
from .strategies import bounds_json, build_plan

__all__ = [
    "Chunk",
    "ChunkRange",
    "ChunkRenderer",
    "HotRange",
    "KeyRange",
    "LocatorRange",
    "Page",
    "Partition",
    "PartitionRange",
    "Plan",
    "Probe",
    "RELATION_WORDS",
    "Rendered",
    "TableShape",
    "Tiebreak",
    "bare_table",
    "bounds_json",
    "build_plan",
    "chunk_count",
    "equal_width_boundaries",
    "quote_ident",
    "ranges_from_boundaries",
    "replace_chunk",
]

#: names that moved to the SQL source (old name -> its home), kept importable from here
_MOVED = {
    "SUBQUERY_ALIAS": "SUBQUERY_ALIAS",
    "render_literal": "render_literal",
    "select_all": "select_all",
    "source_sql": "source_sql",
    "split_by": "split_by",
    "split_offset": "split_offset",
}


def __getattr__(name: str) -> Any:
    """The aliases in ``_MOVED``: imported on first use, since the sources import the plan."""
    if name in _MOVED:
        from ..sources import render

        return getattr(render, _MOVED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
