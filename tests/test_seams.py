"""The seams, used as docs/architecture.md says to use them: a source that is not a database
(an Arrow IPC file, ``arrowmapper/sources/arrowfile.py`` plus one line of ``SOURCES``) runs a
real job -- real worker processes, a real SQLite file and PostgreSQL underneath -- and the run/
package reaches sources only through the Source protocol.
"""

from __future__ import annotations

import ast
import json
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

import arrowmapper as am
from arrowmapper.errors import ArrowMapperError, ConfigError
from arrowmapper.plan import build_plan
from arrowmapper.sources import SOURCES, open_source, source_endpoint
from tests.conftest import PG

ROOT = Path(__file__).resolve().parents[1]
ROWS = 5_000


def _arrow_file(tmp_path: Path) -> Path:
    """5,000 rows with an integer key (ten of them NULL), text and a float."""
    ids = [None if i % 500 == 7 else i for i in range(1, ROWS + 1)]
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": [f"row {i}" for i in range(ROWS)],
            "score": [i / 4 for i in range(ROWS)],
        }
    )
    path = tmp_path / "events.arrow"
    with ipc.new_file(path, table.schema) as out:
        out.write_table(table)
    return path


def test_the_arrow_source_is_one_registration_line() -> None:
    """Its scheme is registered once, and that line is all the package knows of it."""
    text = (ROOT / "arrowmapper/sources/__init__.py").read_text()
    assert [line for line in text.splitlines() if "arrowfile" in line] == [
        '    "arrow": _lazy(".arrowfile", "ArrowFileSource"),'
    ]
    assert "arrow" in SOURCES
    own = {Path("sources/arrowfile.py"), Path("sources/__init__.py")}
    for path in (ROOT / "arrowmapper").rglob("*.py"):
        if path.relative_to(ROOT / "arrowmapper") not in own:
            assert "arrowfile" not in path.read_text(), path


def test_arrow_source_plans_and_reads_through_the_protocol(tmp_path: Path) -> None:
    path = _arrow_file(tmp_path)
    endpoint = source_endpoint(f"arrow://{path}")
    assert endpoint.path == str(path)
    with open_source(endpoint) as src:
        assert src.describe("events").columns == ()
        probe = src.probe("events")
        assert probe.count() == ROWS and probe.schema().names == ["id", "name", "score"]
        plan = build_plan(probe, "events", "key", "id", 1_000, render=src.render)
        assert plan.strategy == "key" and len(plan.chunks) > 2
        assert any(json.loads(c.sql).get("null") for c in plan.chunks)  # the NULL keys' chunk
        ids: list[int | None] = []
        for chunk in plan.chunks:
            for batch in src.read_chunk(chunk):
                ids.extend(batch.column("id").to_pylist())
        assert len(ids) == ROWS  # each row in exactly one chunk
        assert sorted(i for i in ids if i is not None) == sorted(
            i for i in range(1, ROWS + 1) if i % 500 != 7
        )
        assert src.split(plan, plan.chunks[0], 99) is None  # the default: cannot cut a chunk
        with pytest.raises(ArrowMapperError, match="PostgreSQL source"):
            src.export_snapshot()
        with pytest.raises(ConfigError, match="bare name"):
            src.describe("SELECT * FROM events")


def test_a_job_from_an_arrow_file_into_sqlite(tmp_path: Path) -> None:
    path = _arrow_file(tmp_path)
    db = tmp_path / "out.db"
    result = am.map_query(
        f"arrow://{path}",
        "events",
        f"sqlite:///{db}",
        "events",
        strategy="key",
        key="id",
        chunk_size=1_000,
        workers=2,
    )
    assert result.failed_chunks == () and result.chunks > 2
    assert result.rows_read == result.rows_written == ROWS
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(id), SUM(score) FROM events").fetchone() == (
            ROWS,
            ROWS - 10,
            sum(i / 4 for i in range(ROWS)),
        )
        assert conn.execute("SELECT name FROM events WHERE id = 4321").fetchone() == ("row 4320",)


def test_a_job_from_an_arrow_file_into_postgresql(tmp_path: Path, pg: PG) -> None:
    path = _arrow_file(tmp_path)
    result = am.map_query(
        f"arrow://{path}", "events", pg.uri, "events", schema=pg.schema, workers=2
    )
    assert result.failed_chunks == () and result.rows_written == ROWS
    assert pg.query("SELECT COUNT(*), COUNT(id), MAX(id) FROM events") == [(ROWS, ROWS - 10, ROWS)]
    assert pg.scalar("SELECT name FROM events WHERE id = 17") == "row 16"


def test_run_names_no_sql_source_class_or_function() -> None:
    """run/ imports from arrowmapper.sources only the protocol's names (and open_source)."""
    allowed = {"ReadOptions", "Source", "SourceFacts", "SourceLayout", "open_source"}
    allowed |= {"source_endpoint"}  # a job's source URI: a database's, or a registered scheme
    for path in sorted((ROOT / "arrowmapper/run").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("sources"):
                names = {a.name for a in node.names}
                assert names <= allowed, f"{path.name} imports {names - allowed} from sources"
