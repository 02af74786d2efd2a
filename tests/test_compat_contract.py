"""The drop-in contract kept through the restructure (#14): what the old executor's callers
pass and import still works the same way."""

from __future__ import annotations

import dataclasses
import pickle
import sqlite3
from pathlib import Path

import pytest

from arrowmapper.compat import (
    ChunkConfig,
    ParallelProcessor,
    execute_query_parallel,
)
from arrowmapper.errors import ConfigError


def test_the_contract_names_import_from_compat() -> None:
    """Callers type their progress callbacks and results with names from the compat module."""
    from arrowmapper import compat

    for name in (
        "ProgressSnapshot",
        "ChunkResult",
        "JobResult",
        "RetryConfig",
        "RetryHandler",
        "ProgressTracker",
        "ParallelProcessingResult",
        "ChunkConfig",
        "ChunkingStrategy",
        "ParallelProcessor",
        "execute_query_parallel",
        "ArrowMapperError",
    ):
        assert name in compat.__all__ and getattr(compat, name) is not None


def test_chunk_config_is_a_plain_value() -> None:
    """replace/asdict/pickle work; an unsaid chunk size stays unsaid through them."""
    unsaid = ChunkConfig()
    assert unsaid.chunk_size == 50_000 and not unsaid.chunk_size_given
    changed = dataclasses.replace(unsaid, strategy="key", key_column="id")
    assert changed.key_column == "id" and not changed.chunk_size_given
    assert dataclasses.replace(unsaid, chunk_size=10).chunk_size_given
    assert dataclasses.asdict(unsaid) == {"chunk_size": 50_000, "strategy": None, "key_column": None}
    assert not pickle.loads(pickle.dumps(unsaid)).chunk_size_given
    assert ChunkConfig(None).chunk_size == 50_000 and not ChunkConfig(None).chunk_size_given
    assert ChunkConfig(777).chunk_size_given
    # an unsaid size ranks below params, a said one above
    assert ParallelProcessor(chunk_config=unsaid).settings({"chunk_size": 123}).chunk_size == 123
    said = ParallelProcessor(chunk_config=ChunkConfig(777))
    assert said.settings({"chunk_size": 123}).chunk_size == 777


def test_settings_say_where_each_value_came_from() -> None:
    s = ParallelProcessor(chunk_size=100).settings({"max_workers": 3})
    assert (s.workers, s.chunk_size) == (3, 100)
    assert s.sources["workers"] == "params" and s.sources["chunk_size"] == "argument"


def _source(tmp_path: Path) -> sqlite3.Connection:
    src = sqlite3.connect(tmp_path / "src.db")
    src.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT)")
    src.executemany("INSERT INTO ev VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 2001)])
    src.commit()
    return src


def test_empty_strategy_and_key_mean_not_given(tmp_path: Path) -> None:
    """Generated mapper code fills unused slots with "": the old executor read that as "not
    given" (params, then the defaults, decide)."""
    src = _source(tmp_path)
    dst = sqlite3.connect(tmp_path / "dst.db")
    r = ParallelProcessor(max_workers=1).process_mapper_job(
        src, "ev", dst, None, "a", strategy="", key=""
    )
    assert r.success and r.total_rows == 2000
    r = ParallelProcessor(max_workers=1, chunk_size=500).process_mapper_job(
        src, "ev", dst, None, "b", strategy="", key="",
        params={"strategy": "key", "key": "id", "min_rows_for_parallel": 0},
    )
    assert r.success and r.total_chunks >= 4  # params' key strategy decided, 500 rows a chunk
    r = execute_query_parallel(src, "ev", dst, "", "c", None, "", "", {}, 1)
    assert r.success and r.total_rows == 2000
    assert dst.execute("SELECT count(*), count(DISTINCT id) FROM b").fetchone() == (2000, 2000)
    with pytest.raises(ConfigError, match="strategy must be one of"):
        ParallelProcessor(max_workers=1).process_mapper_job(
            src, "ev", dst, None, "d", strategy="bogus"
        )


def test_an_unsupported_target_is_named() -> None:
    from arrowmapper.config import parse_uri
    from arrowmapper.run.prepare import target_rules

    with pytest.raises(ConfigError, match=r"target mysql://root@h:3306/db: only postgresql:// "):
        target_rules(parse_uri("mysql://root@h:3306/db", "target"))
