"""Retry policy, error classification and configuration precedence (pure, no database)."""

from __future__ import annotations

import random

import pytest

from arrowmapper.config import RetryConfig, parse_uri, resolve_settings
from arrowmapper.errors import ConfigError, TargetError, classify, redact
from arrowmapper.run.retry import backoff_delay, should_retry


class _DriverError(Exception):
    def __init__(self, msg: str, sqlstate: str | None = None) -> None:
        super().__init__(msg)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "state", ["08006", "08001", "40001", "40P01", "53300", "57P01", "57P03", "55P03"]
)
def test_transient_sqlstates(state: str) -> None:
    assert classify(_DriverError("boom", state)) == (True, state)


@pytest.mark.parametrize("state", ["22003", "23505", "28P01", "42P01", "42601"])
def test_terminal_sqlstates(state: str) -> None:
    assert classify(_DriverError("boom", state)) == (False, state)


def test_classification_from_text_and_kind() -> None:
    assert classify(RuntimeError('db error: ERROR: relation "x" does not exist'))[0] is False
    assert classify(RuntimeError("server closed the connection unexpectedly"))[0] is True
    assert classify(ConnectionResetError("reset"))[0] is True
    assert classify(ValueError("bad row"))[0] is False
    assert classify(ConfigError("bad"))[0] is False
    assert classify(TargetError("cannot store", transient=False))[0] is False
    wrapped = TargetError("wrapped")
    wrapped.__cause__ = _DriverError("x", "57P01")
    assert classify(wrapped) == (True, "57P01")

    class PanicException(BaseException):
        pass

    assert classify(PanicException("not implemented: interval"))[0] is False


def test_backoff_grows_is_capped_and_jittered() -> None:
    cfg = RetryConfig(base_delay=1.0, max_delay=5.0, backoff_factor=2.0, jitter=0.0)
    assert [backoff_delay(cfg, n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittered = RetryConfig(base_delay=1.0, jitter=0.5)
    rng = random.Random(7)
    delays = {round(backoff_delay(jittered, 1, rng), 6) for _ in range(50)}
    assert len(delays) > 40 and all(0.5 <= d <= 1.5 for d in delays)


def test_should_retry_counts_attempts_and_respects_terminal() -> None:
    cfg = RetryConfig(max_retries=2)
    assert should_retry(cfg, 1, True) and should_retry(cfg, 2, True)
    assert not should_retry(cfg, 3, True)
    assert not should_retry(cfg, 1, False)


def test_retry_config_validation() -> None:
    with pytest.raises(ConfigError, match="max_retries must be an integer >= 0"):
        RetryConfig(max_retries=-1)
    with pytest.raises(ConfigError, match="jitter must be between 0 and 1"):
        RetryConfig(jitter=2)


def test_settings_precedence_explicit_params_env_defaults() -> None:
    env = {"MAPPER_MAX_WORKERS": "3", "MAPPER_CHUNK_SIZE": "1000"}
    s = resolve_settings({}, {}, env)
    assert (s.workers, s.chunk_size, s.sources["workers"]) == (3, 1000, "env")
    s = resolve_settings({}, {"max_workers": 5}, env)
    assert (s.workers, s.chunk_size) == (5, 1000)
    s = resolve_settings({"workers": 2}, {"max_workers": 5}, env)
    assert s.workers == 2 and s.sources["workers"] == "argument"
    s = resolve_settings({}, {}, {})
    assert s.chunk_size == 50_000 and s.sources["chunk_size"] == "default"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAPPER_MAX_WORKERS": "abc"}, "MAPPER_MAX_WORKERS must be an integer >= 1, got 'abc'"),
        ({"MAPPER_CHUNK_SIZE": "-5"}, "MAPPER_CHUNK_SIZE must be an integer >= 1"),
        ({"MAPPER_PARALLEL_ENABLED": "maybe"}, "MAPPER_PARALLEL_ENABLED must be true or false"),
    ],
)
def test_bad_env_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_settings({}, {}, env)


def test_uri_parsing_and_redaction() -> None:
    ep = parse_uri("postgres://bob:s3cret@db.example:6543/prod")
    assert ep.dialect == "postgresql" and ep.host_port == ("db.example", 6543)
    assert "s3cret" not in repr(ep) and "s3cret" not in str(ep) and "***" in ep.redacted
    assert parse_uri("sqlite:///tmp/x.db").path == "/tmp/x.db"
    with pytest.raises(ConfigError, match="unknown scheme 'foo'"):
        parse_uri("foo://x/y")
    with pytest.raises(ConfigError, match="names no database"):
        parse_uri("postgresql://u:pw@host:5432")
    with pytest.raises(ConfigError) as info:
        parse_uri("nosuch://u:topsecret@h/db")
    assert "topsecret" not in str(info.value)
    assert redact("password=abc host=x") == "password=*** host=x"


def test_connectorx_panics_are_classified_by_their_text() -> None:
    class PanicException(BaseException):
        pass

    timeout = PanicException(
        "cx writer failed: Source(PostgresError(Error { kind: Db, cause: "
        'Some(DbError { code: SqlState(E57014), message: "canceling statement'
        ' due to statement timeout" }) }))'
    )
    assert classify(timeout) == (True, "57014")
    closed = PanicException(
        "cx writer failed: Source(PostgresError(Error { kind: Closed, cause: None }))"
    )
    assert classify(closed)[0] is True
    assert classify(PanicException("not implemented: interval"))[0] is False
