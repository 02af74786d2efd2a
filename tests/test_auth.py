"""A wrong password: a clear error before anything is written, and the password nowhere in it.

The machine's servers trust every local connection, so this uses a throwaway pgserver switched
to password authentication."""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import arrowmapper as am


@pytest.fixture
def password_server() -> Iterator[Any]:
    pgserver = pytest.importorskip("pgserver")
    from pgserver._commands import pg_ctl

    server = pgserver.get_server(tempfile.mkdtemp(prefix="am-auth-"), cleanup_mode="delete")
    try:
        server.psql("ALTER ROLE postgres PASSWORD 'right-pw';")
        server.psql("CREATE TABLE src AS SELECT g AS id FROM generate_series(1, 100) g;")
        hba = Path(server.pgdata) / "pg_hba.conf"
        hba.write_text("local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n")
        pg_ctl(["reload"], pgdata=server.pgdata, user=server.system_user)
        yield server
    finally:
        server.cleanup()


def _with_password(uri: str, password: str) -> str:
    return uri.replace("postgres:@", f"postgres:{quote(password)}@", 1)


def test_wrong_password_is_a_clear_error_without_the_password(
    password_server: Any, tmp_path: Path
) -> None:
    uri = password_server.get_uri()
    target = f"sqlite://{tmp_path / 'out.db'}"
    good = _with_password(uri, "right-pw")
    r = am.map_query(good, "src", target, "dst", key="id", workers=1)
    assert r.rows_written == 100  # the right password works, so the failure below is the password

    bad = _with_password(uri, "Wr0ng-Secret")
    with pytest.raises(am.ArrowMapperError) as info:
        am.map_query(bad, "src", target, "dst2", key="id", workers=1)
    text = "".join(traceback.format_exception(info.value))
    assert "password authentication failed" in str(info.value)
    assert "Wr0ng-Secret" not in text
    assert not (tmp_path / "out.db").exists() or "dst2" not in (
        tmp_path / "out.db"
    ).read_bytes().decode("latin-1")
