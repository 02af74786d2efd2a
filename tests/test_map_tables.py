"""map_tables: several tables per job, their chunks sharing one pool (issue #16).

PostgreSQL to PostgreSQL (a source schema and a target schema of the test server), and
MariaDB to PostgreSQL. Real servers, real worker processes."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import arrowmapper as am
from arrowmapper.cli import main
from arrowmapper.run.tables import table_job_id
from tests.conftest import PG, MariaDB


@pytest.fixture
def dst(pg: PG) -> Iterator[str]:
    """A second schema on the test server, the target's."""
    schema = "d_" + secrets.token_hex(5)
    pg.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        pg.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _source(pg: PG, big: int = 3000) -> None:
    """Four tables (big and chunked, empty, a mixed-case name with a space, one with an FK),
    a view and a sequence, in the test's schema."""
    pg.execute(
        f"""
        CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE, name text);
        INSERT INTO customers SELECT g, 'c' || g || '@x', 'name ' || g
            FROM generate_series(1, {big}) g;
        CREATE TABLE "ünïcode" (id int, note text);
        CREATE TABLE "Order Items" (id int PRIMARY KEY, "Qty" int, label text);
        INSERT INTO "Order Items" VALUES (1, 3, 'a'), (2, 5, NULL), (3, 7, 'ü');
        CREATE INDEX "Items by Qty" ON "Order Items" ("Qty");
        CREATE TABLE orders (id int PRIMARY KEY,
            customer_id int REFERENCES customers (id) ON DELETE CASCADE, total numeric(10,2));
        INSERT INTO orders SELECT g, g % {min(big, 50)} + 1, g * 1.5 FROM generate_series(1, 40) g;
        CREATE VIEW v_customers AS SELECT id FROM customers WHERE id < 10;
        CREATE SEQUENCE order_seq START 100;
        SELECT setval('order_seq', 123);
        """
    )


def _tables(pg: PG, schema: str) -> set[str]:
    rows = pg.query(
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE nspname = %s AND relkind IN ('r', 'v', 'S') AND relname NOT LIKE 'arrowmapper%%'",
        (schema,),
    )
    return {r[0] for r in rows}


def test_schema_copied_with_views_and_sequences_left_alone(pg: PG, dst: str) -> None:
    _source(pg)
    r = am.map_tables(
        pg.uri, pg.uri, f"{pg.schema}.*", schema=dst, chunk_size=1000, workers=2, job_id="s1"
    )
    assert r.success and r.failed == ()
    src = pg.schema
    assert set(r.results) == {
        f"{src}.{t}" for t in ("customers", "ünïcode", "Order Items", "orders")
    }
    # only the base tables: the view and the sequence are not copied
    assert _tables(pg, dst) == {"customers", "ünïcode", "Order Items", "orders"}
    for t in ("customers", '"ünïcode"', '"Order Items"', "orders"):
        pg.assert_same_rows(f'"{src}".{t}', f'"{dst}".{t}')
    # ONE pool ran every table's chunks: at most 2 worker processes between them; a table
    # of one small chunk ran in this process
    pids = {c.pid for x in r.results.values() for c in x.chunk_results if c.pid}
    assert 1 <= len(pids - {os.getpid()}) <= 2 and r.workers == 2
    one = r.results[f"{src}.orders"]
    assert one.chunks == 1 and one.workers == 0 and one.chunk_results[0].pid == os.getpid()
    big = r.results[f"{src}.customers"]
    assert big.chunks >= 3 and big.rows_written == 3000
    assert r.results[f"{src}.ünïcode"].rows_written == 0
    assert r.results[f"{src}.Order Items"].chunks == 1
    assert r.rows_written == 3000 + 3 + 40 and r.chunks == sum(x.chunks for x in r.results.values())
    # one job per table, each with its own ledger rows (so verify works per table)
    jobs = {row[0] for row in pg.query(f'SELECT job_id FROM "{dst}".arrowmapper_jobs')}
    assert jobs == {
        table_job_id("s1", t) for t in ("customers", "ünïcode", "Order Items", "orders")
    }
    assert am.verify(pg.uri, pg.uri, "s1:customers", schema=dst).ok
    # without constraints=True the target tables get no keys
    assert (
        pg.scalar(
            f"SELECT COUNT(*) FROM pg_constraint WHERE connamespace = '\"{dst}\"'::regnamespace "
            "AND conrelid::regclass::text NOT LIKE '%%arrowmapper%%'"
        )
        == 0
    )
    assert "4 tables" in r.summary() and "OK" in r.summary()


def test_constraints_recreated_then_skipped(pg: PG, dst: str) -> None:
    _source(pg, big=200)
    r = am.map_tables(
        pg.uri,
        pg.uri,
        [f"{pg.schema}.customers", f'{pg.schema}."Order Items"', f"{pg.schema}.orders"],
        schema=dst,
        workers=1,
        job_id="c1",
        constraints=True,
        sequences=True,
    )
    assert r.success
    cons = dict(
        pg.query(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            f"WHERE connamespace = '\"{dst}\"'::regnamespace"
        )
    )
    assert cons["customers_pkey"] == "PRIMARY KEY (id)"
    assert cons["customers_email_key"] == "UNIQUE (email)"
    assert cons["Order Items_pkey"] == "PRIMARY KEY (id)"
    fk = cons["orders_customer_id_fkey"]
    # re-qualified: the FK points at the target's customers, not the source's
    assert f"REFERENCES {dst}.customers(id)" in fk and "ON DELETE CASCADE" in fk
    index = pg.scalar(f'SELECT pg_get_indexdef(\'"{dst}"."Items by Qty"\'::regclass)')
    assert f'ON {dst}."Order Items" USING btree ("Qty")' in index
    assert len(r.constraints) == 6 and r.constraints_skipped == ()
    # the sequence (owned by no table) has the source's value on the target
    assert pg.scalar(f'SELECT last_value FROM "{dst}".order_seq') == 123
    pg.execute(f'INSERT INTO "{dst}".orders VALUES (1000, 1, 1)')  # the FK holds
    with pytest.raises(Exception, match="foreign key"):
        pg.execute(f'INSERT INTO "{dst}".orders VALUES (1001, 99999, 1)')
    # resumed: every table finished already; what exists is skipped, nothing created twice
    again = am.map_tables(
        pg.uri,
        pg.uri,
        [f"{pg.schema}.customers", f'{pg.schema}."Order Items"', f"{pg.schema}.orders"],
        schema=dst,
        workers=1,
        job_id="c1",
        resume=True,
        constraints=True,
    )
    assert again.success and again.rows_written == 0 and again.constraints == ()
    assert len(again.constraints_skipped) == 6


def test_pattern_matching_nothing_is_refused(pg: PG, dst: str, tmp_path: Path) -> None:
    _source(pg, big=10)
    with pytest.raises(am.ConfigError, match=r"'sales\.order_\*' matches no table"):
        am.map_tables(pg.uri, pg.uri, [f"{pg.schema}.*", "sales.order_*"], schema=dst)
    # a view alone is not matched unless asked, and the message says so
    with pytest.raises(am.ConfigError, match="include_views=True"):
        am.map_tables(pg.uri, pg.uri, f"{pg.schema}.v_*", schema=dst)
    # case is exact: ORDERS is not orders
    with pytest.raises(am.ConfigError, match="ORDERS"):
        am.map_tables(pg.uri, pg.uri, f"{pg.schema}.ORDERS", schema=dst)
    assert _tables(pg, dst) == set()
    # Orders and orders are two tables here, one in SQLite: refused before anything is made
    pg.execute('CREATE TABLE "Orders" (id int)')
    with pytest.raises(am.ConfigError, match="would both load the target table"):
        am.map_tables(pg.uri, f"sqlite:///{tmp_path}/t.db", f"{pg.schema}.?rders")
    assert not (tmp_path / "t.db").exists() or (tmp_path / "t.db").stat().st_size == 0
    r = am.map_tables(pg.uri, pg.uri, f"{pg.schema}.v_*", schema=dst, include_views=True, workers=1)
    assert r.rows_written == 9 and _tables(pg, dst) == {"v_customers"}


def test_a_pattern_skips_arrowmapper_reserved_tables(pg: PG, dst: str) -> None:
    """A source that was a target before holds arrowmapper_marks: ``*`` loads the user's tables
    and leaves it out; naming it is still refused as reserved."""
    pg.execute("CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2)")
    pg.execute("CREATE TABLE arrowmapper_marks (name text, mark text)")
    r = am.map_tables(pg.uri, pg.uri, f"{pg.schema}.*", schema=dst, workers=1)
    assert list(r.results) == [f"{pg.schema}.items"] and r.rows_written == 2
    with pytest.raises(am.ConfigError, match="reserved"):
        am.map_tables(pg.uri, pg.uri, f"{pg.schema}.arrowmapper_marks", schema=dst, workers=1)


def test_a_refused_table_refuses_the_run_before_rows_move(pg: PG, dst: str) -> None:
    _source(pg, big=10)
    # the target's orders cannot take the source's rows (total is a date there); its
    # customers holds a row that mode='truncate' would empty, were the run not refused first
    pg.execute(f'CREATE TABLE "{dst}".orders (id int, customer_id int, total date)')
    pg.execute(f'CREATE TABLE "{dst}".customers (id int, email text, name text)')
    pg.execute(f"INSERT INTO \"{dst}\".customers VALUES (-1, 'keep', 'me')")
    for mode in ("append", "truncate"):
        with pytest.raises(am.ArrowMapperError, match=rf"table {pg.schema}\.orders"):
            am.map_tables(
                pg.uri, pg.uri, f"{pg.schema}.*", schema=dst, workers=1, job_id="r1", mode=mode
            )
        # nothing was left behind: no table created or emptied, no job registered
        assert _tables(pg, dst) == {"orders", "customers"}
        assert pg.query(f'SELECT id FROM "{dst}".customers') == [(-1,)]
        ledger = pg.scalar(f"SELECT to_regclass('\"{dst}\".arrowmapper_jobs')::text")
        assert ledger is None or not pg.query(f'SELECT job_id FROM "{dst}".arrowmapper_jobs')


def test_resume_after_one_table_failed_loads_only_what_is_missing(
    pg: PG, dst: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _source(pg, big=6000)
    monkeypatch.delenv("ARROWMAPPER_TEST_FIXED", raising=False)
    kw = dict(
        schema=dst,
        chunk_size=2000,
        workers=2,
        job_id="f1",
        transform="tests.helpers:fail_on_id_until_fixed",
        retry=am.RetryConfig(max_retries=0),
    )
    first = am.map_tables(pg.uri, pg.uri, f"{pg.schema}.*", **kw)
    src = pg.schema
    assert first.failed == (f"{src}.customers",) and not first.success
    bad = first.results[f"{src}.customers"]
    assert len(bad.failed_chunks) == 1 and "5777" in bad.errors[0]
    assert "resume=True" in first.summary()
    # the other tables loaded all the same
    pg.assert_same_rows(f'"{src}".orders', f'"{dst}".orders')
    loaded = pg.scalar(f'SELECT COUNT(*) FROM "{dst}".customers')
    assert 0 < loaded < 6000 and loaded == bad.rows_written  # all but the chunk with 5777

    monkeypatch.setenv("ARROWMAPPER_TEST_FIXED", "1")
    second = am.map_tables(pg.uri, pg.uri, f"{pg.schema}.*", resume=True, **kw)
    assert second.success
    assert second.rows_written == 6000 - loaded  # the failed chunk only
    assert second.results[f"{src}.orders"].rows_written == 0
    assert len(second.results[f"{src}.customers"].skipped_chunks) == bad.chunks - 1
    for t in ("customers", '"Order Items"', "orders"):
        pg.assert_same_rows(f'"{src}".{t}', f'"{dst}".{t}')


def test_mariadb_two_tables_to_postgres(mariadb: MariaDB, pg: PG) -> None:
    try:
        mariadb.execute(
            """
            CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20));
            INSERT INTO items SELECT seq, CONCAT('i', seq) FROM seq_1_to_2500;
            CREATE TABLE `Order Items` (id INT, qty INT NULL);
            INSERT INTO `Order Items` VALUES (1, 2), (2, NULL);
            CREATE VIEW v AS SELECT id FROM items;
            """
        )
    except subprocess.CalledProcessError:
        pytest.skip("the server has no seq_1_to_N tables (MariaDB's sequence engine)")
    r = am.map_tables(mariadb.uri, pg.uri, "*", schema=pg.schema, chunk_size=1000, workers=2)
    assert r.success and set(r.results) == {
        f"{mariadb.uri.rsplit('/', 1)[1]}.{t}" for t in ("items", "Order Items")
    }
    assert pg.scalar("SELECT COUNT(DISTINCT id) FROM items") == 2500
    assert pg.query('SELECT id, qty FROM "Order Items" ORDER BY id') == [(1, 2), (2, None)]
    assert r.results[next(k for k in r.results if k.endswith(".items"))].chunks >= 3


def test_cli_run_and_plan_tables(
    pg: PG, dst: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _source(pg, big=30)
    pattern = f'{pg.schema}.customers,{pg.schema}."Order Items"'
    assert main(["plan", "--tables", pattern, "--source", pg.uri]) == 0
    out = capsys.readouterr().out
    assert f"{pg.schema}.customers" in out and f"{pg.schema}.Order Items" in out
    code = main(
        [
            "run",
            "--tables",
            pattern,
            "--source",
            pg.uri,
            "--target",
            pg.uri,
            "--schema",
            dst,
            "--workers",
            "1",
            "--quiet",
        ]
    )
    assert code == 0
    job = tmp_path / "job.toml"
    job.write_text(
        f"[job]\ntables = '{pattern}'\nsource = '{pg.uri}'\ntarget = '{pg.uri}'\n"
        f"schema = '{dst}'\nworkers = 1\njob_id = 'cli1'\n"
    )
    code = main(["run", str(job)])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert any(f"{pg.schema}.customers -> {dst}.customers: 30 rows" in x for x in lines)
    assert any(f"{pg.schema}.Order Items -> {dst}.Order Items: 3 rows" in x for x in lines)
    assert "2 tables, 33 rows" in lines[-1]
    assert pg.scalar(f'SELECT COUNT(*) FROM "{dst}".customers') == 60  # appended twice


def test_cli_run_tables_twice_is_refused_before_any_table_loads(
    pg: PG, dst: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """As for one table: rerunning ``run --tables`` without a job id would append every table
    again; refused for all of them, naming each and its earlier job, nothing loaded."""
    pg.execute("CREATE TABLE a (id int); INSERT INTO a VALUES (1), (2)")
    pg.execute("CREATE TABLE b (id int); INSERT INTO b VALUES (3)")
    run = ["run", "--tables", f"{pg.schema}.*", "--source", pg.uri, "--target", pg.uri]
    run += ["--schema", dst, "--workers", "1", "--quiet"]
    assert main(run) == 0
    jobs = sorted(r[0] for r in pg.query(f'SELECT job_id FROM "{dst}".arrowmapper_jobs'))
    capsys.readouterr()
    assert main(run) == 2
    err = capsys.readouterr().err
    assert f"table {pg.schema}.a" in err and f"table {pg.schema}.b" in err, err
    assert all(j in err for j in jobs) and "--allow-duplicate" in err, err
    assert pg.scalar(f'SELECT count(*) FROM "{dst}".a') == 2
    assert pg.scalar(f'SELECT count(*) FROM "{dst}".b') == 1
    assert pg.scalar(f'SELECT count(*) FROM "{dst}".arrowmapper_jobs') == 2
    assert main([*run, "--allow-duplicate"]) == 0
    assert pg.scalar(f'SELECT count(*) FROM "{dst}".a') == 4


def test_sequences_attached_to_their_column_like_the_source(pg: PG, dst: str) -> None:
    """sequences=True: a serial's sequence is OWNED BY the target column and is its default,
    so an insert without the id continues after the copied rows."""
    pg.execute("CREATE TABLE ser (id serial PRIMARY KEY, s text)")
    pg.execute("INSERT INTO ser (s) VALUES ('a'), ('b'), ('c')")
    r = am.map_tables(pg.uri, pg.uri, f"{pg.schema}.ser", schema=dst, workers=1, sequences=True)
    assert r.success and r.sequences == ("ser_id_seq = 3",), r.sequences
    owned = pg.scalar(f"SELECT pg_get_serial_sequence('\"{dst}\".ser', 'id')")
    assert owned == f"{dst}.ser_id_seq"
    pg.execute(f"INSERT INTO \"{dst}\".ser (s) VALUES ('d')")
    assert pg.scalar(f"SELECT id FROM \"{dst}\".ser WHERE s = 'd'") == 4
