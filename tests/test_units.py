"""Transforms, the progress board and the public surface (no database)."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

import arrowmapper
from arrowmapper.errors import ConfigError
from arrowmapper.run.progress import ChunkState, ProgressBoard
from arrowmapper.transform import Transformer, normalize
from tests import helpers

FRAME = pl.DataFrame({"id": [1, 2, 3], "amount": [10, 20, 30]})


@pytest.mark.parametrize(
    "transform",
    [
        helpers.double_amount,
        "tests.helpers:double_amount",
        [pl.all(), (pl.col("amount") * 2).alias("amount2")],
        "SELECT *, amount * 2 AS amount2 FROM self",
    ],
    ids=["callable", "module:function", "expressions", "sql"],
)
def test_each_transform_form(transform: object) -> None:
    out = Transformer(normalize(transform)).apply(FRAME)
    assert out["amount2"].to_list() == [20, 40, 60]
    batches = list(Transformer(normalize(transform)).batches(FRAME.to_arrow().to_batches()[0]))
    assert pa.Table.from_batches(batches).column("amount2").to_pylist() == [20, 40, 60]


def test_transform_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="must be a top-level function"):
        normalize(lambda df: df)
    with pytest.raises(ConfigError, match="cannot import module 'no_such_mod'"):
        normalize("no_such_mod:f")
    with pytest.raises(ConfigError, match="has no function 'nope'"):
        normalize("tests.helpers:nope")
    with pytest.raises(ConfigError, match="only Polars expressions"):
        normalize([pl.col("a"), "b"])
    with pytest.raises(ConfigError, match="must be None, a callable"):
        normalize(42)
    with pytest.raises(TypeError, match="must return a polars DataFrame"):
        Transformer(normalize(helpers.returns_list)).apply(FRAME)


def test_progress_board_states_and_snapshot() -> None:
    board = ProgressBoard.create(3)
    try:
        for c in range(3):
            board.set(c, "estimate", 100)
        board.move(0, ChunkState.RUNNING)
        board.add(0, "rows_written", 50)
        snap = board.snapshot(started=0.0)
        assert snap.running_chunks == 1 and 0 < snap.progress_percentage < 34
        board.move(0, ChunkState.DONE)
        board.move(1, ChunkState.SKIPPED)
        board.move(2, ChunkState.RUNNING)
        board.move(2, ChunkState.RETRY_WAIT)
        board.move(2, ChunkState.RUNNING)
        board.move(2, ChunkState.FAILED)
        snap = board.snapshot(started=0.0)
        assert (snap.completed_chunks, snap.failed_chunks, snap.progress_percentage) == (
            2,
            1,
            100.0,
        )
        with pytest.raises(RuntimeError, match="illegal transition DONE -> RUNNING"):
            board.move(0, ChunkState.RUNNING)
        other = ProgressBoard.attach(board.name, 3)
        assert other.get(0, "rows_written") == 50
        other.close()
        assert board.get(0, "rows_written") == 50  # a worker closing does not unlink
    finally:
        board.close()
        board.close()  # idempotent


def test_public_surface_is_pinned() -> None:
    assert arrowmapper.__all__ == sorted(arrowmapper.__all__)
    assert set(arrowmapper.__all__) == {
        "ArrowMapperError", "Chunk", "ChunkFailed", "ChunkResult", "ChunkState", "ConfigError",
        "JobFailed", "JobResult", "Plan", "PlanError", "ProgressSnapshot", "RetryConfig",
        "SourceError", "TargetError", "map_query", "plan_query", "verify", "VerifyReport",
        "files",  # a file source with its options (arrowmapper.config.files)
        "map_tables", "plan_tables", "TablesResult",  # several tables per job
        # the existing executor's names (drop-in layer)
        "ChunkConfig", "ChunkingStrategy", "ParallelProcessingResult", "ParallelProcessor",
        "ProgressTracker", "RetryHandler", "create_progress_callback", "create_retry_handler",
        "execute_query_parallel",
    }  # fmt: skip
    for name in arrowmapper.__all__:
        assert getattr(arrowmapper, name).__doc__, f"{name} has no docstring"


def test_a_ctrl_c_while_a_worker_is_spawned_is_not_lost() -> None:
    """The parent ignores SIGINT while it spawns (so the child starts ignoring it); a Ctrl-C
    in that window must still interrupt the parent once the spawn is done."""
    import os
    import signal

    from arrowmapper.run.procs import sigint_ignored

    # Python's own handler, as in a program (an earlier test's library may have left another)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with sigint_ignored():
                os.kill(os.getpid(), signal.SIGINT)  # lands while ignored
                reached = True
            raise AssertionError("not interrupted")  # pragma: no cover
        assert reached
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
