"""Values exact or refused up front, and a verify that does not trust the reader.

connectorx cannot carry every value of the types it reads natively (``infinity`` dates and
timestamps, years past 262142, ``time '24:00'``), Arrow's "safe" float64 -> float32 cast does not
check range, SQLite turns NaN into NULL and its ADBC driver cannot write dates outside the years
0000-9999. Each such value is copied exactly or refused with an error naming the column and the
value; a refusal inside a chunk rolls the chunk back and is terminal. ``am.verify`` compares
checksums the servers compute themselves, so a value the reader changed is reported.

The property tests draw values with hypothesis (fixed seed, few examples, each a whole table)
and check every copy against PostgreSQL's own text rendering with ``EXCEPT ALL``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import secrets
import sqlite3
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import arrowmapper as am
from arrowmapper.api import prepare, run_prepared
from arrowmapper.errors import JobFailed, SourceError, TargetError
from arrowmapper.sources import SourceColumn, SourceLayout
from arrowmapper.targets import conform, to_float32
from arrowmapper.verify import SERVER
from tests.conftest import PG

FUZZ = settings(
    max_examples=10,
    derandomize=True,  # a fixed seed: the same values every run
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FLT_MAX = 3.4028234663852886e38


def _copy(pg: PG, query: str, table: str, target: str | None = None, **kw: Any) -> am.JobResult:
    """One job, in this process (the same run_chunk the workers run)."""
    target = target or pg.uri
    schema = pg.schema if target == pg.uri else None
    kw.setdefault("strategy", "none")
    prepared = prepare(pg.uri, query, target, table, schema=schema, **kw)
    return run_prepared(dataclasses.replace(prepared.spec, in_process=True))


def _same(pg: PG, left: str, right: str) -> None:
    """Both queries return the same multiset of rows (EXCEPT ALL both ways, on the server)."""
    for a, b in ((left, right), (right, left)):
        extra = pg.query(f"({a}) EXCEPT ALL ({b})")
        assert not extra, f"rows of {a!r} not in {b!r}: {extra[:5]}"


def _table_rows(pg: PG, table: str) -> int:
    exists = pg.scalar(f"SELECT to_regclass('{pg.schema}.{table}') IS NOT NULL")
    return int(pg.scalar(f"SELECT COUNT(*) FROM {table}")) if exists else 0


# --------------------------------------------------------------------------- refused up front

UNCARRIABLE = [
    ("timestamp", "'infinity'", "infinity"),
    ("timestamp", "'-infinity'", "-infinity"),
    ("timestamp", "'294276-12-31 23:59:59.999999'", "294276-12-31 23:59:59.999999"),
    ("timestamptz", "'infinity'", "infinity"),
    ("timestamptz", "'-infinity'", "-infinity"),
    ("date", "'infinity'", "infinity"),
    ("date", "'-infinity'", "-infinity"),
    ("date", "'5874897-12-31'", "5874897-12-31"),
    ("time", "'24:00'", "24:00:00"),
]


@pytest.mark.parametrize(("sql_type", "literal", "shown"), UNCARRIABLE)
def test_uncarriable_value_is_refused_before_the_first_row(
    pg: PG, sql_type: str, literal: str, shown: str
) -> None:
    pg.execute(f'CREATE TABLE src (id int, "Event At" {sql_type})')
    pg.execute(f"INSERT INTO src VALUES (1, NULL), (2, {literal}), (3, NULL)")
    with pytest.raises(SourceError) as err:
        _copy(pg, pg.t("src"), "dst")
    msg = str(err.value)
    assert "'Event At'" in msg and f"holds {shown}," in msg, msg
    assert "Map it in the query" in msg and 'CAST("Event At" AS text) AS "Event At"' in msg
    assert err.value.transient is False and err.value.kind == "data"
    assert _table_rows(pg, "dst") == 0


def test_guard_holds_where_the_catalog_cannot_be_asked(
    pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only standby refuses the temporary view the describe uses: the guards then come
    from the Arrow types connectorx reports."""
    import arrowmapper.sources.sqltypes as types

    def refuse(*_: Any) -> Any:
        raise RuntimeError("cannot execute CREATE VIEW in a read-only transaction")

    monkeypatch.setattr(types, "_pg_describe", refuse)
    pg.execute("CREATE TABLE src (id int, d date, t time)")
    pg.execute("INSERT INTO src VALUES (1, '2024-01-01', '24:00')")
    with pytest.raises(SourceError, match="column 't' \\(time\\) holds 24:00:00,"):
        _copy(pg, pg.t("src"), "dst")
    pg.execute("UPDATE src SET t = '23:00'")
    assert _copy(pg, pg.t("src"), "dst").success
    _same(pg, "SELECT id, d, t FROM src", "SELECT id, d, t FROM dst")


def test_finite_edges_copy_exactly(pg: PG) -> None:
    """The last values the reader carries, BC years, 23:59:59.999999 and NULLs, exactly."""
    pg.execute("CREATE TABLE src (id int, ts timestamp, tz timestamptz, d date, t time)")
    pg.execute(
        "INSERT INTO src VALUES "
        "(1, '262142-12-31 23:59:59.999999', '262142-12-31 23:59:59.999999+00', "
        "'262142-12-31', '23:59:59.999999'), "
        "(2, '4714-11-24 00:00:00 BC', '4714-11-24 00:00:00+00 BC', '4714-11-24 BC', '00:00'), "
        "(3, '0001-01-01 00:00 BC', '1677-09-21 00:12:43.145224+00', '0001-01-01 BC', NULL), "
        "(4, NULL, NULL, NULL, NULL)"
    )
    assert _copy(pg, pg.t("src"), "dst").success
    cols = "id, ts::text, tz::text, d::text, t::text"
    _same(pg, f"SELECT {cols} FROM src", f"SELECT {cols} FROM dst")


def test_refusal_inside_a_chunk_is_terminal_and_rolled_back(pg: PG) -> None:
    """Past the preflight's sample: the chunk holding the value fails once, names the column
    and value, and leaves no row; the other chunks commit."""
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, TIMESTAMP '2024-01-01' + g * INTERVAL '1 minute' "
        "AS ts FROM generate_series(1, 6000) g"
    )
    pg.execute("UPDATE src SET ts = 'infinity' WHERE id = 4500")
    with pytest.raises(JobFailed) as err:
        am.map_query(
            pg.uri,
            pg.t("src"),
            pg.uri,
            "dst",
            schema=pg.schema,
            key="id",
            strategy="key",
            chunk_size=2000,
            workers=2,
            retry=am.RetryConfig(max_retries=3, base_delay=0.05),
            path="arrow",  # the Arrow reader's guard (the COPY fast path carries infinity)
        )
    result = err.value.result
    assert len(result.failed_chunks) == 1
    failed = next(r for r in result.chunk_results if not r.success)
    assert failed.attempts == 1 and not failed.transient
    assert "column 'ts'" in (failed.error or "") and "holds infinity" in (failed.error or "")
    assert "holds infinity" in str(err.value)
    plan = am.plan_query(pg.uri, pg.t("src"), strategy="key", key="id", chunk_size=2000)
    where = next(c.predicate for c in plan.chunks if c.chunk_id == failed.chunk_id)
    assert pg.scalar(f"SELECT COUNT(*) FROM dst WHERE {where}") == 0  # rolled back
    assert pg.scalar(f"SELECT COUNT(*) FROM src WHERE {where} AND id = 4500") == 1
    assert pg.scalar("SELECT COUNT(*) FROM dst") == result.rows_written > 3000


def test_text_is_the_exact_path_into_existing_date_columns(pg: PG) -> None:
    """Selected as text into pre-created date/time columns, the server parses every value:
    infinity, 24:00, BC and far-future years arrive exactly."""
    pg.execute("CREATE TABLE src (id int, ts timestamp, tz timestamptz, d date, t time)")
    pg.execute(
        "INSERT INTO src VALUES (1, 'infinity', '-infinity', 'infinity', '24:00'), "
        "(2, '294276-12-31 23:59:59.999999', '4714-11-24 00:00+00 BC', '5874897-12-31', "
        "'23:59:59.999999'), (3, '2024-02-29 12:00', '2024-02-29 12:00+05', '2024-02-29', "
        "'12:00'), (4, NULL, NULL, NULL, NULL)"
    )
    pg.execute("CREATE TABLE dst (LIKE src)")
    query = (
        f"SELECT id, ts::text AS ts, tz::text AS tz, d::text AS d, t::text AS t FROM {pg.t('src')}"
    )
    assert _copy(pg, query, "dst").success
    _same(pg, "SELECT * FROM src", "SELECT * FROM dst")


def test_numeric_nan_is_refused_for_a_decimal_and_exact_unconstrained(pg: PG) -> None:
    """numeric(p,s) holds NaN (not Infinity: PostgreSQL refuses that itself); no decimal does."""
    value, shown = "'NaN'", "NaN"
    pg.execute("CREATE TABLE src (id int, amount numeric(12,2), free numeric)")
    pg.execute(f"INSERT INTO src VALUES (1, 1.5, 2.5), (2, {value}, {value})")
    with pytest.raises(SourceError) as err:
        _copy(pg, pg.t("src"), "dst")
    msg = str(err.value)
    assert "'amount' (numeric(12,2)) holds " + shown in msg and "NULLIF" in msg, msg
    assert err.value.transient is False
    # the fix the message names: an unconstrained numeric travels as exact text
    fixed = f"SELECT id, amount::numeric AS amount, free FROM {pg.t('src')}"
    assert _copy(pg, fixed, "dst2").success
    _same(
        pg,
        "SELECT id, amount::text, free::text FROM src",
        "SELECT id, amount::text, free::text FROM dst2",
    )


# --------------------------------------------------------------------------- floats


def test_float4_range_is_checked_like_postgresql() -> None:
    ok = pa.array([float("nan"), math.inf, -math.inf, 3.4028235e38, -0.0, 1e-45, 0.1, None])
    out = to_float32(ok, "v")
    assert out.type == pa.float32()
    assert math.isnan(out[0].as_py()) and out[1].as_py() == math.inf and out[2].as_py() == -math.inf
    assert out[3].as_py() == FLT_MAX and math.copysign(1, out[4].as_py()) == -1
    assert out[5].as_py() > 0 and out[7].as_py() is None
    for bad in (1e39, -3.4028236e38, 1e-50):
        with pytest.raises(TargetError) as err:
            to_float32(pa.array([1.0, bad]), "v")
        assert "column 'v' holds" in str(err.value) and "double precision" in str(err.value)
    with pytest.raises(TargetError, match="holds '1000000"):  # the decimal's exact text
        to_float32(pa.array([Decimal("1e39")], pa.decimal256(40, 0)), "v")
    batch = pa.RecordBatch.from_pydict({"v": [1e300]})
    with pytest.raises(TargetError, match="column 'v' holds 1e\\+300"):
        conform(batch, pa.schema([pa.field("v", pa.float32())]), "postgresql")


def test_float8_beyond_real_is_refused_naming_the_column(pg: PG) -> None:
    pg.execute("CREATE TABLE src (id int, v float8)")
    pg.execute("INSERT INTO src VALUES (1, 1.5), (2, 'NaN'), (3, '-Infinity'), (4, 1e39)")
    pg.execute("CREATE TABLE dst (id int, v real)")
    with pytest.raises(TargetError) as err:
        _copy(pg, pg.t("src"), "dst")
    assert "column 'v' holds 1e+39" in str(err.value) and "real (float4)" in str(err.value)
    assert pg.scalar("SELECT COUNT(*) FROM dst") == 0
    pg.execute("DELETE FROM src WHERE id = 4")
    assert _copy(pg, pg.t("src"), "dst").success  # NaN and infinities pass exactly
    _same(pg, "SELECT id, v::real::text FROM src", "SELECT id, v::text FROM dst")


def _fits_float4(x: float) -> bool:
    """PostgreSQL's float8 -> float4 rule: no overflow to infinity, no underflow to zero."""
    if math.isnan(x) or math.isinf(x):
        return True
    try:
        y = struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return False
    return not (y == 0.0 and x != 0.0)


EDGE_FLOATS = [
    0.0,
    -0.0,
    5e-324,
    -2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    FLT_MAX,
    3.4028235677973362e38,  # rounds down to FLT_MAX
    3.4028235677973366e38,  # rounds up to infinity: refused
    1.401298464324817e-45,
    7e-46,
    1e-46,
    math.nan,
    math.inf,
    -math.inf,
]
floats = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)
# mostly values float4 holds (so both outcomes of the real target occur), some of any size
float_lists = st.tuples(
    st.lists(st.floats(width=32) | st.sampled_from(EDGE_FLOATS[:8]), min_size=1, max_size=40),
    st.lists(floats | st.sampled_from(EDGE_FLOATS), max_size=2),
).map(lambda t: t[0] + t[1])


@FUZZ
@given(values=float_lists)
def test_fuzz_floats_exact_in_float8_and_real_or_refused(pg: PG, values: list[float]) -> None:
    pg.execute("DROP TABLE IF EXISTS src, dst8, dst4")
    pg.execute("CREATE TABLE src (id int, v float8)")
    pg.execute(
        "INSERT INTO src SELECT * FROM unnest(%s::int[], %s::float8[])",
        (list(range(len(values))), values),
    )
    assert _copy(pg, pg.t("src"), "dst8").success
    _same(pg, "SELECT id, v::text FROM src", "SELECT id, v::text FROM dst8")
    pg.execute("CREATE TABLE dst4 (id int, v real)")
    fits = all(_fits_float4(v) for v in values)
    event("real: exact" if fits else "real: refused")
    if fits:
        assert _copy(pg, pg.t("src"), "dst4").success
        _same(pg, "SELECT id, v::real::text FROM src", "SELECT id, v::text FROM dst4")
    else:
        with pytest.raises(TargetError, match="column 'v' holds"):
            _copy(pg, pg.t("src"), "dst4")
        assert pg.scalar("SELECT COUNT(*) FROM dst4") == 0


# --------------------------------------------------------------------------- dates and timestamps

US_PER_DAY = 86_400_000_000
PG_TS_DAYS = (-2440588, 106_762_939)  # 4714-11-24 BC .. 294276-12-31 (days from 1970)
PG_DATE_DAYS = (-2440588, 2_145_042_905)  # .. 5874897-12-31
CX_LAST_DAY = 95_026_236  # 262142-12-31: the last day connectorx carries


def _days(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [lo, hi, 0, -719528, 2932896]
    return st.one_of(st.integers(lo, hi), st.sampled_from([e for e in edges if lo <= e <= hi]))


temporal_rows = st.lists(
    st.tuples(
        _days(PG_TS_DAYS[0], CX_LAST_DAY),
        st.integers(0, US_PER_DAY - 1),
        _days(PG_DATE_DAYS[0], CX_LAST_DAY),
    ),
    min_size=1,
    max_size=30,
)
# at most one value the reader cannot carry: +-infinity or a day past 262142-12-31
uncarriable = st.none() | st.tuples(
    st.sampled_from(["ts", "d"]),
    st.sampled_from(["infinity", "-infinity"])
    | st.integers(CX_LAST_DAY + 1, CX_LAST_DAY + 3)
    | st.integers(CX_LAST_DAY + 1, PG_TS_DAYS[1]),
)


@FUZZ
@given(rows=temporal_rows, bad=uncarriable, at=st.integers(0, 29))
def test_fuzz_dates_and_timestamps_exact_or_refused(
    pg: PG, rows: list[Any], bad: tuple[str, Any] | None, at: int
) -> None:
    pg.execute("DROP TABLE IF EXISTS src, dst")
    pg.execute("CREATE TABLE src (id int, ts timestamp, tz timestamptz, d date)")
    rows = list(rows)
    if bad is not None:
        day, us, dday = rows[at % len(rows)]
        rows[at % len(rows)] = (bad[1], us, dday) if bad[0] == "ts" else (day, us, bad[1])
    for i, (day, us, dday) in enumerate(rows):
        ts = (
            f"'{day}'::timestamp"
            if isinstance(day, str)
            else f"TIMESTAMP 'epoch' + {day} * INTERVAL '1 day' + {us} * INTERVAL '1 microsecond'"
        )
        d = f"'{dday}'::date" if isinstance(dday, str) else f"DATE 'epoch' + {dday}"
        pg.execute(f"INSERT INTO src VALUES ({i}, {ts}, ({ts}) AT TIME ZONE 'UTC', {d})")
    held = pg.query(
        "SELECT bool_or(NOT isfinite(ts) OR ts > '262142-12-31 23:59:59.999999'), "
        "bool_or(NOT isfinite(d) OR d > '262142-12-31') FROM src"
    )[0]
    assert any(held) == (bad is not None)
    event("refused" if bad else "exact")
    if bad is not None:
        with pytest.raises(SourceError) as err:
            _copy(pg, pg.t("src"), "dst")
        named = str(err.value).split("'")[1]
        assert named in ("ts", "tz", "d") and held[named == "d"], str(err.value)
        assert _table_rows(pg, "dst") == 0
    else:
        assert _copy(pg, pg.t("src"), "dst").success
        cols = "id, ts::text, tz::text, d::text"
        _same(pg, f"SELECT {cols} FROM src", f"SELECT {cols} FROM dst")


# --------------------------------------------------------------------------- numerics

digits = st.text("0123456789", min_size=1, max_size=60)
numerics = st.one_of(
    st.tuples(st.sampled_from(["", "-"]), digits, st.text("0123456789", max_size=40)).map(
        lambda t: f"{t[0]}{t[1]}.{t[2]}" if t[2] else f"{t[0]}{t[1]}"
    ),
    st.sampled_from(["NaN", "0", "-0.000", "1e-30", "99999999999999999999.99999999999999999999"]),
)
fitting = st.tuples(
    st.sampled_from(["", "-"]),
    st.text("0123456789", min_size=1, max_size=20),
    st.text("0123456789", max_size=20),
).map(lambda t: f"{t[0]}{t[1]}.{t[2] or '0'}")


@FUZZ
@given(
    free=st.lists(numerics, min_size=1, max_size=30),
    fixed=st.lists(fitting, min_size=1, max_size=30),
)
def test_fuzz_numerics_with_many_digits_exact(pg: PG, free: list[str], fixed: list[str]) -> None:
    pg.execute("DROP TABLE IF EXISTS src, dst")
    pg.execute("CREATE TABLE src (id int, n numeric, p numeric(40,20))")
    n = max(len(free), len(fixed))
    pg.execute(
        "INSERT INTO src SELECT * FROM unnest(%s::int[], %s::numeric[], %s::numeric[])",
        (list(range(n)), free + [None] * (n - len(free)), fixed + [None] * (n - len(fixed))),
    )
    assert _copy(pg, pg.t("src"), "dst").success
    _same(pg, "SELECT id, n::text, p::text FROM src", "SELECT id, n::text, p::text FROM dst")


# --------------------------------------------------------------------------- SQLite targets


def test_sqlite_refuses_nan_and_dates_it_cannot_write(pg: PG, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path}/t.db"
    pg.execute("CREATE TABLE f (id int, v float8)")
    pg.execute("INSERT INTO f VALUES (1, 1.5), (2, 'Infinity'), (3, 'NaN')")
    with pytest.raises(TargetError, match="column 'v' holds NaN, which SQLite cannot store"):
        _copy(pg, pg.t("f"), "f", target)
    pg.execute("CREATE TABLE d (id int, d date, ts timestamp)")
    pg.execute("INSERT INTO d VALUES (1, '2024-01-01', '10000-01-01 00:00')")
    with pytest.raises(TargetError, match="column 'ts' holds \\+?10000-01-01 00:00:00"):
        _copy(pg, pg.t("d"), "d", target)
    pg.execute("TRUNCATE d")
    pg.execute("INSERT INTO d VALUES (1, '0002-01-01 BC', NULL)")
    with pytest.raises(TargetError, match="column 'd' holds -0001-01-01, outside the years"):
        _copy(pg, pg.t("d"), "d", target)
    con = sqlite3.connect(f"{tmp_path}/t.db")
    assert con.execute("SELECT name FROM sqlite_master WHERE name IN ('f', 'd')").fetchall() in (
        [],
        [("f",)],
        [("d",)],
        [("f",), ("d",)],
    )
    for table in ("f", "d"):
        if con.execute(f"SELECT 1 FROM sqlite_master WHERE name = '{table}'").fetchall():
            assert con.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)


def _sqlite_date(days: int) -> str:
    """ISO text of a day from 1970, years 0000-9999 (the Gregorian calendar repeats every 400
    years, so year 0 is computed as year 400)."""
    ordinal = days + dt.date(1970, 1, 1).toordinal()
    shift = 0 if ordinal >= 1 else 400
    day = dt.date.fromordinal(ordinal + 146_097 * (shift // 400))
    return f"{day.year - shift:04d}-{day.month:02d}-{day.day:02d}"


SQLITE_DAYS = (-719528, 2932896)  # 0000-01-01 .. 9999-12-31


@FUZZ
@given(
    values=st.lists(
        st.tuples(
            st.floats(allow_nan=False) | st.sampled_from([x for x in EDGE_FLOATS if x == x]),
            st.integers(*SQLITE_DAYS) | st.sampled_from(SQLITE_DAYS),
        ),
        min_size=1,
        max_size=30,
    ),
    bad=st.none()
    | st.just((math.nan, 0))
    | st.tuples(st.just(1.0), st.sampled_from([SQLITE_DAYS[0] - 1, SQLITE_DAYS[1] + 1]))
    | st.tuples(st.just(1.0), st.integers(SQLITE_DAYS[1] + 1, CX_LAST_DAY)),
)
def test_fuzz_sqlite_floats_and_dates_exact_or_refused(
    pg: PG, tmp_path: Path, values: list[tuple[float, int]], bad: tuple[float, int] | None
) -> None:
    values = values + ([bad] if bad is not None else [])
    pg.execute("DROP TABLE IF EXISTS src")
    pg.execute("CREATE TABLE src (id int, v float8, d date)")
    pg.execute(
        "INSERT INTO src SELECT i, v, DATE 'epoch' + d FROM "
        "unnest(%s::int[], %s::float8[], %s::int[]) AS u(i, v, d)",
        (list(range(len(values))), [v for v, _ in values], [d for _, d in values]),
    )
    db = tmp_path / f"fz{secrets.token_hex(6)}.db"  # a fresh file for every example
    target = f"sqlite:///{db}"
    nan = any(math.isnan(v) for v, _ in values)
    outside = any(not SQLITE_DAYS[0] <= d <= SQLITE_DAYS[1] for _, d in values)
    assert (nan or outside) == (bad is not None)
    event("refused" if bad else "exact")
    if nan or outside:
        with pytest.raises(TargetError, match="column '[vd]' holds"):
            _copy(pg, pg.t("src"), "dst", target)
        return
    assert _copy(pg, pg.t("src"), "dst", target).success
    got = sqlite3.connect(db).execute("SELECT id, v, d FROM dst ORDER BY id").fetchall()
    assert [(v, d) for _, v, d in got] == [(v, _sqlite_date(d)) for v, d in values]


# --------------------------------------------------------------------------- the guard itself


def test_refusal_is_found_in_driver_errors_of_both_readers() -> None:
    layout = SourceLayout(
        "postgresql",
        (
            SourceColumn("id", "integer"),
            SourceColumn("ts", "timestamp without time zone", guard="timestamp"),
        ),
    )
    sql = layout.wrap("SELECT id, ts FROM t")
    assert 'isfinite("ts")' in sql and "column #1 holds" in sql and 'AS "ts"' in sql
    panic = (
        'cx writer failed: ... message: "invalid input syntax for type timestamp: '
        '\\"[arrowmapper] column #1 holds infinity [/arrowmapper]\\""'
    )
    adbc = 'ERROR: invalid input syntax for type timestamp: "[arrowmapper] column #1 holds -infinity [/arrowmapper]"'
    for text, value in ((panic, "infinity"), (adbc, "-infinity")):
        err = layout.refusal(RuntimeError(text))
        assert err is not None and err.transient is False
        assert f"column 'ts' (timestamp without time zone) holds {value}," in str(err)
    assert layout.refusal(RuntimeError("connection reset")) is None

    def broken() -> Any:
        yield pa.record_batch({"id": [1]})
        raise RuntimeError(panic)

    stream = layout.stream(broken())
    assert next(stream).num_rows == 1
    with pytest.raises(SourceError, match="holds infinity"):
        next(stream)
    plain = SourceLayout("postgresql", (SourceColumn("id", "integer"),))
    assert plain.wrap("SELECT 1") == "SELECT 1"


# --------------------------------------------------------------------------- verify


@pytest.fixture
def mood(pg: PG) -> PG:
    pg.execute(f"CREATE TYPE {pg.schema}.mood AS ENUM ('sad', 'ok', 'happy')")
    return pg


def test_verify_server_checksums_agree_on_every_type(mood: PG) -> None:
    """Every type test_types round-trips, into a created table and into one with wider or
    different types (float8 -> real, int -> bigint, timestamptz -> timestamp, text -> uuid,
    json -> jsonb): the servers' checksums agree, and verify says which checks ran."""
    from tests.test_types import CASES

    pg = mood
    names = list(CASES)
    cols = ", ".join(
        f"c{i} {pg.schema + '.mood' if t == 'mood' else t}" for i, t in enumerate(names)
    )
    pg.execute(
        f"CREATE TABLE src (id int PRIMARY KEY, {cols}, f8 float8, i4 int, tz timestamptz, "
        "u text, j json)"
    )
    n = max(len(v) for v in CASES.values()) + 1
    for row in range(1, 61):
        k = row % n
        vals = [CASES[t][k] if k < len(CASES[t]) else "NULL" for t in names]
        extra = (
            f"{row} * 1.1e10, {row}, '2024-01-01 12:00+05'::timestamptz + {row} * interval '1h', "
            f"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd38{row:04d}', '{{\"k\": {row}.50}}'"
        )
        pg.execute(f"INSERT INTO src VALUES ({row}, {', '.join(vals)}, {extra})")
    pg.execute(
        f"CREATE TABLE other (id bigint, {cols}, f8 real, i4 bigint, tz timestamp, u uuid, j jsonb)"
    )
    for table in ("dst", "other"):
        r = am.map_query(
            pg.uri,
            pg.t("src"),
            pg.uri,
            table,
            schema=pg.schema,
            key="id",
            strategy="key",
            chunk_size=20,
            workers=2,
            job_id=f"types-{table}",
        )
        assert r.success and r.chunks >= 3, r.errors
        report = am.verify(pg.uri, pg.uri, f"types-{table}", schema=pg.schema)
        assert report.ok, report.summary()
        assert SERVER in report.checks_done and not report.checks_skipped
        assert all(c.server_source_checksum for c in report.checks)
        assert all(c.server_source_checksum == c.server_target_checksum for c in report.checks)
        assert "server checksums" in report.summary()


@pytest.mark.parametrize("at", [5, 2222], ids=["in-the-sample", "later"])
def test_verify_catches_a_value_the_reader_changed(
    pg: PG, monkeypatch: pytest.MonkeyPatch, at: int
) -> None:
    """The copy path that corrupts (no guards, as before them): connectorx turns infinity into
    262142-12-31. The reader would read the same wrong value again; the servers' checksums
    tell. verify still reports when the reader now refuses the value, in the sample its
    preflight reads (reader checks skipped) or in a chunk (that chunk's read_error)."""
    import arrowmapper.sources.sqltypes as types

    pg.execute(
        f"CREATE TABLE src AS SELECT g AS id, CASE WHEN g = {at} THEN 'infinity' ELSE "
        "TIMESTAMP '2024-01-01' + g * INTERVAL '1 hour' END AS ts FROM generate_series(1, 3000) g"
    )
    sampled = pg.scalar("SELECT bool_or(NOT isfinite(ts)) FROM (SELECT ts FROM src LIMIT 1000) s")
    assert sampled == (at < 1000)  # the preflight reads the first 1,000 rows
    with monkeypatch.context() as unguarded:
        unguarded.setattr(types, "_GUARDS", {})
        result = _copy(  # the Arrow reader unguarded (the COPY fast path never decodes)
            pg,
            pg.t("src"),
            "dst",
            strategy="key",
            key="id",
            chunk_size=1000,
            job_id="corrupt",
            path="arrow",
        )
    assert result.success
    assert pg.scalar(f"SELECT ts::text FROM dst WHERE id = {at}") == "262142-12-31 23:59:59.999999"

    report = am.verify(pg.uri, pg.uri, "corrupt", schema=pg.schema)
    assert not report.ok and SERVER in report.checks_done
    bad = [c for c in report.checks if not c.ok]
    assert len(bad) == 1, report.summary()
    check = bad[0]
    assert check.server_source_checksum != check.server_target_checksum
    assert check.target_rows == check.source_rows == check.rows_written
    assert "source server's checksum" in "; ".join(check.problems)
    if at < 1000:
        assert any("reader checksums" in s and "holds infinity" in s for s in report.checks_skipped)
    else:  # the reader now refuses the value it once changed
        assert check.read_error and "holds infinity" in check.read_error
    assert "server checksums" in report.summary()


def test_verify_reports_a_changed_row_and_skips_what_it_cannot_check(
    pg: PG, tmp_path: Path
) -> None:
    pg.execute("CREATE TABLE src AS SELECT g AS id, g * 1.5 AS v FROM generate_series(1, 500) g")
    am.map_query(pg.uri, pg.t("src"), pg.uri, "dst", schema=pg.schema, job_id="upd")
    assert am.verify(pg.uri, pg.uri, "upd", schema=pg.schema).ok
    pg.execute("UPDATE dst SET v = v + 1 WHERE id = 7")  # a later writer changes a value
    report = am.verify(pg.uri, pg.uri, "upd", schema=pg.schema)
    assert not report.ok
    check = report.checks[0]
    assert check.server_source_checksum != check.server_target_checksum
    assert "source server's checksum" in "; ".join(check.problems)

    target = f"sqlite:///{tmp_path}/v.db"
    am.map_query(pg.uri, pg.t("src"), target, "dst", job_id="lite")
    lite = am.verify(pg.uri, target, "lite")
    assert lite.ok and SERVER not in lite.checks_done
    assert any("PostgreSQL as both source and target" in s for s in lite.checks_skipped)
    assert "not checked: server checksums" in lite.summary()
    with_transform = am.verify(
        pg.uri, pg.uri, "upd", schema=pg.schema, transform="tests.helpers:slow_identity"
    )
    assert any("transform" in s for s in with_transform.checks_skipped)


# --------------------------------------------------------------------------- session settings


@pytest.fixture
def odd_db(pg: PG) -> Any:
    """A database whose sessions render text unlike the defaults (found by review: dates read
    as text had day and month swapped, a negative interval changed sign, floats lost digits)."""
    import psycopg

    name = "am_odd_" + secrets.token_hex(4)
    with psycopg.connect(pg.uri, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute(f"ALTER DATABASE {name} SET DateStyle = 'SQL, DMY'")
        conn.execute(f"ALTER DATABASE {name} SET IntervalStyle = 'sql_standard'")
        conn.execute(f"ALTER DATABASE {name} SET extra_float_digits = 0")
        conn.execute(f"ALTER DATABASE {name} SET TimeZone = 'Asia/Kolkata'")
    uri = pg.uri.rsplit("/", 1)[0] + "/" + name
    try:
        yield uri
    finally:
        with psycopg.connect(pg.uri, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


VALUES_TEXT = (
    "SELECT 1 AS id, '{2024-02-01}'::date[] AS d, '-1 days -02:00:00'::interval AS iv, "
    "'{0.12345678901234567}'::float8[] AS f, '{\"2024-02-01 10:00:00.5\"}'::timestamp[] AS ts, "
    "'{\"2024-02-01 10:00:00+00\"}'::timestamptz[] AS tz, '12:30:00+02'::timetz AS tt"
)


@pytest.mark.parametrize("direction", ["odd source", "odd target"])
def test_text_read_values_do_not_depend_on_session_settings(
    pg: PG, odd_db: str, direction: str
) -> None:
    import psycopg

    src, dst = (odd_db, pg.uri) if direction == "odd source" else (pg.uri, odd_db)
    # the test's own schema on the shared database; public in the throwaway one
    src_schema = pg.schema if src == pg.uri else "public"
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {src_schema}.vals AS {VALUES_TEXT}")
    schema = pg.schema if dst == pg.uri else "public"
    r = am.map_query(
        src, f"{src_schema}.vals", dst, "vals_copy", schema=schema, verify=True, workers=1
    )
    assert r.success
    iso = "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'"
    cols = "d::text, iv::text, f::text, ts::text, tz::text, tt::text"
    with psycopg.connect(src, autocommit=True) as conn:
        conn.execute(iso + "; SET extra_float_digits = 1")
        want = conn.execute(f"SELECT {cols} FROM {src_schema}.vals").fetchall()
    with psycopg.connect(dst, autocommit=True) as conn:
        conn.execute(iso + "; SET extra_float_digits = 1")
        got = conn.execute(f"SELECT {cols} FROM {schema}.vals_copy").fetchall()
    assert got == want
    assert want[0][0] == "{2024-02-01}" and want[0][1] == "-1 days -02:00:00"
    report = am.verify(src, dst, r.job_id, schema=schema)
    assert report.ok, report.summary()


def test_numeric_into_float_columns_rounds_as_postgresql_does(pg: PG) -> None:
    """Found by review: Arrow's decimal -> float cast rounds twice (393817424.487548 became
    393817408 in a real column; PostgreSQL's cast gives 393817440)."""
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, "
        "round((random() * 10 ^ (g % 12))::numeric, 6) AS n FROM generate_series(1, 3000) g"
    )
    pg.execute("INSERT INTO src VALUES (0, 393817424.487548)")
    pg.execute("CREATE TABLE dst (id int, n real)")
    pg.execute("CREATE TABLE dst8 (id int, n double precision)")
    _copy(pg, pg.t("src"), "dst")
    _copy(pg, pg.t("src"), "dst8")
    _same(pg, f"SELECT id, n::real FROM {pg.t('src')}", f"SELECT id, n FROM {pg.t('dst')}")
    _same(
        pg,
        f"SELECT id, n::double precision FROM {pg.t('src')}",
        f"SELECT id, n FROM {pg.t('dst8')}",
    )


def test_a_categorical_column_is_written_as_its_values(pg: PG) -> None:
    """Found by review: a Polars Categorical was refused at chunk time as 'changing meaning'."""
    import polars as pl

    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, 'v' || (g % 3) AS l FROM generate_series(1, 500) g"
    )
    pg.execute("CREATE TABLE dst (id int, l text)")
    transform = [pl.col("id"), pl.col("l").cast(pl.Categorical)]
    r = _copy(pg, pg.t("src"), "dst", transform=transform)
    assert r.success
    _same(pg, f"SELECT * FROM {pg.t('src')}", f"SELECT * FROM {pg.t('dst')}")


@pytest.mark.parametrize(
    ("source_type", "target_type", "value"),
    [
        ("timestamp(6)", "timestamp(0)", "'2024-01-01 12:00:00.6'"),
        ("timestamptz", "timestamptz(2)", "'2024-01-01 12:00:00.123456+00'"),
        ("time", "time(0)", "'12:00:00.7'"),
        ("interval", "interval(0)", "'1 day 00:00:00.9'"),
        ("interval", "interval hour to minute", "'1 day 02:03:04'"),
        ("numeric[]", "numeric(5,2)[]", "'{1.005,2.5}'"),
        ("text[]", "varchar(3)[]", "'{abcdef}'"),
        ("bit varying", "bit(3)", "'10101'"),
    ],
)
def test_a_narrower_target_column_is_refused_before_the_first_row(
    pg: PG, source_type: str, target_type: str, value: str
) -> None:
    """Found by review: the server rounds or cuts these on the way in, without an error."""
    pg.execute(f"CREATE TABLE src (id int, x {source_type})")
    pg.execute(f"INSERT INTO src VALUES (1, {value})")
    pg.execute(f"CREATE TABLE dst (id int, x {target_type})")
    with pytest.raises(am.ConfigError, match="column 'x': the target's .* without an error"):
        _copy(pg, pg.t("src"), "dst")
    assert _table_rows(pg, "dst") == 0
    # what the user asks for in the query is theirs: the same type passes
    _copy(pg, f"SELECT id, x::{target_type} AS x FROM {pg.t('src')}", "dst")
    assert _table_rows(pg, "dst") == 1


def test_sqlite_reals_in_numeric_columns_and_booleans_are_exact(pg: PG, tmp_path: Path) -> None:
    """Found by review: SQLite's CAST(real AS TEXT) keeps 15 digits (0.30000000000000004 became
    0.3, verify agreeing), and connectorx reads any non-zero BOOLEAN as true."""
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, price NUMERIC, flag BOOLEAN)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?)",
            [(1, 0.1 + 0.2, 1), (2, 1.0000000000000002, 0), (3, 0.1, None), (4, 12, 1)],
        )
    src = f"sqlite://{path}"
    r = am.map_query(src, "t", pg.uri, "dst", schema=pg.schema, workers=1, verify=True)
    assert r.success
    got = pg.query("SELECT id, price::text, flag FROM dst ORDER BY id")
    assert got == [
        (1, "0.30000000000000004", True),
        (2, "1.0000000000000002", False),
        (3, "0.1", None),
        (4, "12", True),
    ]
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO t VALUES (5, 1, 2)")
    with pytest.raises(am.ArrowMapperError, match="'flag' .* not a boolean"):
        am.map_query(src, "t", pg.uri, "dst2", schema=pg.schema, workers=1)


def test_decimals_sqlite_numeric_affinity_would_round_are_refused(pg: PG, tmp_path: Path) -> None:
    """Found by review: SQLite's NUMERIC affinity keeps 15 significant digits of the exact text
    it is given (12345678901234567890.0123456789 became 1.2345678901234567e19)."""
    pg.execute("CREATE TABLE src (id int, n numeric(40,10))")
    pg.execute("INSERT INTO src VALUES (1, 1.5), (2, 123456789012.345)")
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE dst (id INTEGER, n DECIMAL(40,10))")
        conn.execute("CREATE TABLE dst_text (id INTEGER, n TEXT)")
    target = f"sqlite://{path}"
    assert _copy(pg, pg.t("src"), "dst", target=target).success  # 15 digits or fewer: exact
    pg.execute("INSERT INTO src VALUES (3, 12345678901234567890.0123456789)")
    with pytest.raises(TargetError, match="'n' holds .* NUMERIC affinity"):
        _copy(pg, pg.t("src"), "dst", target=target, job_id="again")
    assert _copy(pg, pg.t("src"), "dst_text", target=target).success
    with sqlite3.connect(path) as conn:
        texts = [t for (t,) in conn.execute("SELECT n FROM dst_text ORDER BY id")]
    assert texts[2] == "12345678901234567890.0123456789"


def test_verify_a_sqlite_target_with_a_zoned_timestamp(pg: PG, tmp_path: Path) -> None:
    """Found by review: verify crashed reading back SQLite's offset-less UTC text."""
    pg.execute(
        "CREATE TABLE src AS SELECT g AS id, TIMESTAMPTZ '2024-01-01 07:00:00.5+00' "
        "+ g * interval '1 hour' AS ts FROM generate_series(1, 50) g"
    )
    target = f"sqlite://{tmp_path / 't.db'}"
    r = am.map_query(pg.uri, pg.t("src"), target, "dst", workers=1, job_id="tz-lite")
    assert r.success
    report = am.verify(pg.uri, target, "tz-lite")
    assert report.ok, report.summary()


def test_a_sqlite_date_the_reader_cannot_parse_names_its_column(pg: PG, tmp_path: Path) -> None:
    """Found by review: 'cx writer failed: Source(SQLiteError(FromSqlConversionFailure(1, ...'
    was the whole message."""
    path = tmp_path / "d.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, happened DATETIME)")
        conn.execute("INSERT INTO t VALUES (1, '2024-01-01T12:00:00+05:00')")
    with pytest.raises(am.ArrowMapperError, match="column 'happened'"):
        am.map_query(f"sqlite://{path}", "t", pg.uri, "dst", schema=pg.schema, workers=1)
