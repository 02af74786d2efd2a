"""The targets package without the engine: the dialect table, the one registration table, the
type map read from it, and the ledger's typed records against a real SQLite file."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from arrowmapper import targets
from arrowmapper.config import parse_uri
from arrowmapper.errors import ConfigError, TargetError
from arrowmapper.targets import (
    DIALECTS,
    TARGETS,
    JobRecord,
    LedgerEntry,
    TableRef,
    Target,
    Written,
    dialect_of,
    open_target,
    sql_type_name,
    storage_schema,
)

PACKAGE = Path(targets.__file__).parent


# --------------------------------------------------------------------------- the tables


def test_every_target_class_is_registered_under_its_dialect_row() -> None:
    assert set(TARGETS) == set(DIALECTS) == {"postgresql", "sqlite"}
    for name, cls in TARGETS.items():
        assert issubclass(cls, Target)
        assert cls.dialect is DIALECTS[name] is dialect_of(name)


def test_the_base_target_is_not_a_target_of_any_system(tmp_path: Path) -> None:
    endpoint = parse_uri(f"sqlite:///{tmp_path / 'unit.db'}", "target")
    with pytest.raises(TypeError, match="abstract"):
        Target(endpoint, TableRef(None, "t", "sqlite"))  # type: ignore[abstract]


def test_an_unknown_dialect_is_refused_naming_the_supported_ones() -> None:
    with pytest.raises(ConfigError, match=r"postgresql:// and sqlite://.*got mysql"):
        dialect_of("mysql")
    with pytest.raises(ConfigError, match=r"only postgresql:// and sqlite:/// .*got mysql"):
        open_target(
            parse_uri("mysql://u@127.0.0.1:3306/db", "target"), TableRef(None, "t", "mysql")
        )


def test_no_dialect_name_is_compared_outside_the_table() -> None:
    """Differences live in dialects.py (and in each system's own module), not in branches."""
    compared = re.compile(r"""[=!]=\s*["'](sqlite|postgresql)["']|["']postgresql["']""")
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name == "dialects.py":
            continue
        hits = [line for line in path.read_text().splitlines() if compared.search(line)]
        assert not hits, f"{path.name}: {hits}"


def test_the_table_says_what_differs() -> None:
    pg, lite = DIALECTS["postgresql"], DIALECTS["sqlite"]
    assert (pg.schemas, lite.schemas) == (True, False)
    assert (pg.truncates, lite.truncates) == (True, False)
    assert pg.quote('a"b') == lite.quote('a"b') == '"a""b"'
    assert lite.same_name("Events", "EVENTS") and not pg.same_name("Events", "EVENTS")
    assert pg.name_limit == (63, None) and lite.name_limit == (None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pg.schemas = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("arrow", "postgresql", "sqlite"),
    [
        (pa.int64(), "bigint", "INTEGER"),
        (pa.bool_(), "boolean", "BOOLEAN"),
        (pa.float32(), "real", "REAL"),
        (pa.string(), "text", "TEXT"),
        (pa.binary(), "bytea", "BLOB"),
        (pa.decimal128(12, 2), "numeric(12,2)", "DECIMAL_TEXT(12,2)"),
        (pa.timestamp("us", "UTC"), "timestamptz", "TIMESTAMP WITH TIME ZONE"),
        (pa.timestamp("us"), "timestamp", "TIMESTAMP"),
        (pa.date32(), "date", "DATE"),
        (pa.list_(pa.int32()), "integer[]", "TEXT"),
        (pa.int8(), "int8", "INTEGER"),  # no PostgreSQL name: Arrow's own
    ],
)
def test_type_names_come_from_the_table(arrow: pa.DataType, postgresql: str, sqlite: str) -> None:
    assert sql_type_name(arrow, "postgresql") == postgresql
    assert sql_type_name(arrow, "sqlite") == sqlite


def test_storage_types_follow_the_table() -> None:
    schema = pa.schema([("d", pa.decimal128(10, 3)), ("t", pa.time64("us")), ("u", pa.uint32())])
    assert storage_schema(schema, "postgresql").types == [
        pa.decimal128(10, 3),
        pa.time64("us"),
        pa.int64(),
    ]
    assert storage_schema(schema, "sqlite").types == [pa.string(), pa.string(), pa.int64()]
    lists = pa.schema([("xs", pa.large_list(pa.int64()))])
    assert storage_schema(lists, "postgresql").types == [pa.list_(pa.int64())]
    with pytest.raises(TargetError, match="SQLite targets cannot store lists"):
        storage_schema(lists, "sqlite")


# --------------------------------------------------------------------------- the ledger on SQLite


def _sqlite(tmp_path: Path, table: str = "dst") -> Target:
    endpoint = parse_uri(f"sqlite:///{tmp_path / 'unit.db'}", "target")
    return open_target(endpoint, TableRef(None, table, "sqlite"))


def _batch(ids: list[int]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"id": ids, "label": [f"v{i}" for i in ids]})


def test_a_chunk_and_its_typed_ledger_entry_commit_once(tmp_path: Path) -> None:
    with _sqlite(tmp_path) as tgt:
        assert type(tgt).__name__ == "SqliteTarget"
        tgt.ensure_ledger()
        tgt.create_table(_batch([1]).schema)
        assert tgt.register_job("j1", "{}", {"query": "q"})
        assert not tgt.register_job("j1", "{}", {"query": "other"})  # the first claim holds
        written = tgt.write_chunk("j1", 0, "id < 4", [_batch([1, 2, 3])], lambda: 3, verify=True)
        assert isinstance(written, Written)
        assert (written.rows, written.locator) == (3, "rowid:1:3")
        assert written.checksum is not None and written.checksum.startswith("h1:3:")
        # a second writer of the same chunk finds its ledger row and writes nothing
        assert tgt.write_chunk("j1", 0, "id < 4", [_batch([1, 2, 3])]) is None
        assert tgt.write_chunk("j1", 1, "id >= 4", [_batch([4, 5])]) is not None

        entries = tgt.ledger("j1")
        assert entries == {
            0: LedgerEntry(rows=3, rows_read=3, checksum=written.checksum, locator="rowid:1:3"),
            1: LedgerEntry(rows=2, rows_read=None, checksum=None, locator="rowid:4:5"),
        }
        assert tgt.committed("j1") == {0: 3, 1: 2}
        assert tgt.row_count() == 5
        assert tgt.read_rows("rowid:4:5", ["id"]).column("id").to_pylist() == [4, 5]

        record = tgt.job_record("j1")
        assert isinstance(record, JobRecord)
        assert (record.target_table, record.fingerprint, record.finished_at) == (
            "dst",
            {"query": "q"},
            None,
        )
        tgt.mark_finished("j1")
        finished = tgt.job_record("j1")
        assert finished is not None and finished.finished_at is not None

        other = sqlite3.connect(tmp_path / "unit.db")
        other.execute("DELETE FROM dst WHERE id = 2")
        other.commit()
        other.close()
        assert tgt.missing_chunks("j1") == [(0, 3, 2)]


def test_a_table_whose_rows_a_rowid_range_cannot_find_gets_no_locator(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "unit.db")
    con.execute("CREATE TABLE keyed (id INTEGER PRIMARY KEY, label TEXT)")
    con.commit()
    con.close()
    with _sqlite(tmp_path, "keyed") as tgt:
        tgt.ensure_ledger()
        assert tgt.untracked()
        written = tgt.write_chunk("j2", 0, "", [_batch([7, 3])])
        assert written is not None and written.locator == "none:"
        assert tgt.ledger("j2")[0].locator == "none:"
        assert tgt.missing_chunks("j2") == []  # nothing it could look for
        with pytest.raises(TargetError, match="cannot be told apart"):
            tgt.read_rows("none:", ["id"])


def test_an_older_jobs_table_is_upgraded(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "unit.db")
    con.execute(
        "CREATE TABLE arrowmapper_jobs (job_id TEXT PRIMARY KEY, target_table TEXT NOT NULL, "
        "plan TEXT NOT NULL, created_at TEXT)"
    )
    con.execute("INSERT INTO arrowmapper_jobs VALUES ('old', 'dst', '{}', NULL)")
    con.commit()
    con.close()
    with _sqlite(tmp_path) as tgt:
        assert tgt.has_ledger()
        record = tgt.job_record("old")
        assert record == JobRecord("old", "dst", "{}", None, None)
        assert {"fingerprint", "finished_at"} <= set(tgt.column_types(targets.JOBS))


# ------------------------------------------------ two incremental runs that registered at once


def _admit_race(open_one: Any) -> None:
    """Both jobs registered, each plan holding file "f": admitted one at a time, exactly one
    may load it and the other is forgotten, whichever order the two threads take."""
    import json
    import threading

    plan = json.dumps({"chunks": [{"bounds": "f"}]})
    first = open_one()
    first.ensure_ledger()
    for job in ("a", "b"):
        assert first.register_job(job, plan, {})
    first.close()
    admitted: dict[str, bool] = {}
    gate = threading.Barrier(2)

    def admit(job: str) -> None:
        tgt = open_one()
        try:
            gate.wait()
            admitted[job] = tgt.admit_incremental(
                job, lambda others: not any(e.bounds == "f" for e in others)
            )
        finally:
            tgt.close()

    threads = [threading.Thread(target=admit, args=(j,)) for j in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(admitted.values()) == [False, True]
    check = open_one()
    try:
        winner = next(j for j, ok in admitted.items() if ok)
        assert {e.job_id for e in check.earlier()} == {winner}
    finally:
        check.close()


def test_incremental_admission_admits_exactly_one_on_sqlite(tmp_path: Path) -> None:
    _admit_race(lambda: _sqlite(tmp_path))


def test_incremental_admission_admits_exactly_one_on_postgresql(pg: Any) -> None:
    endpoint = parse_uri(pg.uri, "target")
    _admit_race(lambda: open_target(endpoint, TableRef(pg.schema, "dst", "postgresql")))
