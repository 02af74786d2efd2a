"""PostgreSQL -> SQLite -> PostgreSQL: a SQLite table arrowmapper creates declares what each
column means (TIMESTAMP WITH TIME ZONE, DATE, DECIMAL(p,s), BOOLEAN, ...), keeps instants as
UTC text with an explicit offset, verifies, and reads back as the same values and types."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

import arrowmapper as am
from arrowmapper.targets.values import to_decimal_text, to_instant_text
from tests.conftest import PG

_COLUMNS = {
    "id": "integer",
    "tz": "timestamp with time zone",
    "ts": "timestamp without time zone",
    "d": "date",
    "t": "time without time zone",
    "n": "numeric(38,10)",
    "m": "numeric(12,2)",
    "b": "boolean",
    "by": "bytea",
}


def _source(pg: PG) -> str:
    cols = ", ".join(f"{c} {t}" for c, t in _COLUMNS.items())
    pg.execute(f"CREATE TABLE src ({cols})")
    pg.execute(
        "INSERT INTO src VALUES "
        "(1, '2024-03-02 12:34:56.123456+02', '2024-03-02 12:34:56.000001', '2024-03-02', "
        "'23:59:59.999999', 1234567890123456789012345678.0123456789, 9999999999.99, true, "
        "'\\x00ff'), "
        "(2, '0001-01-01 00:00:00.000001+00', '0001-01-01 00:00:00', '0001-01-01', '00:00:00', "
        "-0.0000000001, -0.01, false, ''), "
        "(3, '9999-12-31 23:59:59.999999+00', '9999-12-31 23:59:59.999999', '9999-12-31', "
        "'12:00:00.5', 0, 0, true, '\\x7f'), "
        "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    return pg.t("src")


def test_postgres_sqlite_postgres_round_trip(pg: PG, tmp_path: Path) -> None:
    src, db = _source(pg), tmp_path / "rt.db"
    lite = f"sqlite:///{db}"
    r = am.map_query(
        pg.uri, src, lite, "dst", key="id", chunk_size=2, workers=1, verify=True, job_id="rt-1"
    )
    assert r.verified and not r.verification_failures, r.summary()
    with sqlite3.connect(db) as conn:
        declared = dict(conn.execute("SELECT name, type FROM pragma_table_info('dst')").fetchall())
        tz = conn.execute("SELECT tz, typeof(tz) FROM dst ORDER BY id").fetchall()
        n = conn.execute("SELECT n, typeof(n), m FROM dst ORDER BY id").fetchall()
        # SQLite's own date functions read the instant (the +02 offset applied)
        unix = conn.execute("SELECT unixepoch(tz) FROM dst WHERE id = 1").fetchone()[0]
    assert declared == {
        "id": "INTEGER",
        "tz": "TIMESTAMP WITH TIME ZONE",
        "ts": "TIMESTAMP",
        "d": "DATE",
        "t": "TIME",
        "n": "DECIMAL_TEXT(38,10)",
        "m": "DECIMAL_TEXT(12,2)",
        "b": "BOOLEAN",
        "by": "BLOB",
    }
    assert tz == [
        ("2024-03-02T10:34:56.123456+00:00", "text"),
        ("0001-01-01T00:00:00.000001+00:00", "text"),
        ("9999-12-31T23:59:59.999999+00:00", "text"),
        (None, "null"),
    ]
    assert unix == 1709375696
    assert n == [  # exact text in plain notation, every scale digit kept
        ("1234567890123456789012345678.0123456789", "text", "9999999999.99"),
        ("-0.0000000001", "text", "-0.01"),
        ("0.0000000000", "text", "0.00"),
        (None, "null", None),
    ]

    report = am.verify(pg.uri, lite, "rt-1")
    assert report.ok and len(report.checks_done) == 2, report.summary()

    back = am.map_query(lite, "dst", pg.uri, "back", schema=pg.schema, workers=1, verify=True)
    assert back.rows_written == 4 and back.verified, back.summary()
    types = dict(
        pg.query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'back'::regclass AND attnum > 0 AND NOT attisdropped"
        )
    )
    assert types == {**_COLUMNS, "id": "bigint"}
    pg.assert_same_rows(src, pg.t("back"), ", ".join(c for c in _COLUMNS if c != "id"))


@pytest.mark.parametrize("declared", ["", "TEXT"])
def test_instants_into_an_existing_sqlite_table_verify(
    pg: PG, tmp_path: Path, declared: str
) -> None:
    """An existing column (no declared type, as earlier versions made it, or TEXT) gets the
    same offset text, and verify passes; an untyped column is compared as instants (also
    the offset-less UTC text earlier versions wrote), and a changed instant is a mismatch."""
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, TIMESTAMPTZ '2024-01-01 00:00:00.5+05' "
        "+ g * interval '1 hour 1 microsecond' AS tz FROM generate_series(1, 6) g"
    )
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"CREATE TABLE dst (id INTEGER, tz {declared})")
    lite = f"sqlite:///{db}"
    r = am.map_query(
        pg.uri,
        pg.t("src"),
        lite,
        "dst",
        key="id",
        chunk_size=3,
        workers=1,
        verify=True,
        job_id="old-1",
    )
    assert r.verified and not r.verification_failures, r.summary()
    with sqlite3.connect(db) as conn:
        first = conn.execute("SELECT tz FROM dst WHERE id = 1").fetchone()[0]
    assert first == "2023-12-31T20:00:00.500001+00:00"
    report = am.verify(pg.uri, lite, "old-1")
    assert report.ok, report.summary()
    if not declared:  # an earlier version's table: it wrote UTC without an offset
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE dst SET tz = substr(tz, 1, 26)")
        assert am.verify(pg.uri, lite, "old-1").ok
    with sqlite3.connect(db) as conn:  # another instant: the offset now says +01:00
        conn.execute("UPDATE dst SET tz = tz || '+01:00' WHERE id = 2")
    changed = am.verify(pg.uri, lite, "old-1")
    assert not changed.ok and changed.state == "mismatch", changed.summary()


def test_sqlite_source_refuses_a_zoned_value_without_offset(pg: PG, tmp_path: Path) -> None:
    """A TIMESTAMP WITH TIME ZONE value without an offset names no instant: refused, not
    guessed."""
    db = tmp_path / "tz.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE s (id INTEGER, tz TIMESTAMP WITH TIME ZONE)")
        conn.execute(
            "INSERT INTO s VALUES (1, '2024-01-01T00:00:00+01:00'), (2, '2024-01-01 00:00')"
        )
    with pytest.raises(am.ArrowMapperError, match=r"'tz'.*2024-01-01 00:00.*offset"):
        am.map_query(f"sqlite:///{db}", "s", pg.uri, "dst", schema=pg.schema, workers=1)


@pytest.mark.parametrize(
    "arrow", [pa.decimal128(20, 10), pa.decimal256(20, 10), pa.decimal256(40, 10)]
)
def test_decimal_text_is_plain_and_exact(arrow: pa.DataType) -> None:
    """What a SQLite target stores for a decimal: every scale digit, no exponent (Arrow's own
    cast writes 0E-10 and -1E-10), whichever decimal type carries it."""
    values = [Decimal("0"), Decimal("-1E-10"), None, Decimal("1234567890.0123456789")]
    text = to_decimal_text(pa.array(values, arrow)).to_pylist()
    assert text == ["0.0000000000", "-0.0000000001", None, "1234567890.0123456789"]


def test_instant_text_is_utc_iso_with_offset_and_every_microsecond() -> None:
    """What a SQLite target stores for a zoned timestamp, whatever its zone and unit."""
    ts = pa.array([0, 1, None, -62135596800000000], pa.timestamp("us", "UTC"))
    assert to_instant_text(ts).to_pylist() == [
        "1970-01-01T00:00:00.000000+00:00",
        "1970-01-01T00:00:00.000001+00:00",
        None,
        "0001-01-01T00:00:00.000000+00:00",
    ]
    paris = pa.array([1_700_000_000_000], pa.timestamp("ms", "Europe/Paris"))
    assert to_instant_text(paris).to_pylist() == ["2023-11-14T22:13:20.000000+00:00"]
