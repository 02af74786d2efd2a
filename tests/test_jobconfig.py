"""JobConfig: each job option declared once, built and validated once, with one precedence:
argument > job params > MAPPER_* env > defaults (no database needed)."""

from __future__ import annotations

import inspect

import pytest

from arrowmapper import ChunkConfig, ConfigError, ParallelProcessor, RetryConfig, map_query
from arrowmapper.config import OPTIONS, JobConfig, api_options, file_keys, load_job_file
from arrowmapper.config.jobfile import job_keys


def test_precedence_argument_params_env_default() -> None:
    env = {"MAPPER_CHUNK_SIZE": "300", "MAPPER_MAX_WORKERS": "3"}
    c = JobConfig.build({}, {}, env)
    assert (c.chunk_size, c.workers) == (300, 3)
    assert c.sources["chunk_size"] == "env"
    c = JobConfig.build({}, {"chunk_size": 200, "max_workers": "2"}, env)
    assert (c.chunk_size, c.workers) == (200, 2) and c.sources["workers"] == "params"
    c = JobConfig.build({"chunk_size": 100}, {"chunk_size": 200}, env)
    assert c.chunk_size == 100 and c.sources["chunk_size"] == "argument"
    c = JobConfig.build({}, {}, {})
    assert c.chunk_size == 50_000 and c.sources["chunk_size"] == "default"
    # params name the compat layer's keys; a None argument is no argument
    c = JobConfig.build(
        {"strategy": None}, {"strategy": "key", "key": "id", "resume": "yes", "job_id": "j-1"}, {}
    )
    assert (c.strategy, c.key, c.resume, c.job_id) == ("key", "id", True, "j-1")


def test_batch_size_follows_chunk_size_unless_said() -> None:
    assert JobConfig.build({"chunk_size": 1000}, env={}).batch_size == 8_192
    assert JobConfig.build({"chunk_size": 200_000}, env={}).batch_size == 25_000
    assert JobConfig.build({"chunk_size": 10**6}, env={}).batch_size == 65_536
    assert JobConfig.build({"chunk_size": 1000}, env={"MAPPER_BATCH_SIZE": "500"}).batch_size == 500


@pytest.mark.parametrize(
    ("arguments", "params", "env", "message"),
    [
        ({"workers": 0}, {}, {}, "workers must be an integer >= 1, got 0"),
        ({}, {"max_workers": "x"}, {}, r"params\['max_workers'\] must be an integer >= 1"),
        ({}, {}, {"MAPPER_CHUNK_SIZE": "-5"}, "MAPPER_CHUNK_SIZE must be an integer >= 1"),
        ({"mode": "upsert"}, {}, {}, "mode must be one of append, create, replace"),
        ({}, {"strategy": "fast"}, {}, r"params\['strategy'\] must be one of auto"),
        ({"verify": "yes"}, {}, {}, "verify must be True or False, got 'yes'"),
        ({"stall_timeout": float("inf")}, {}, {}, "stall_timeout must be a finite number"),
        ({"max_worker_memory": 10}, {}, {}, "an integer >= 64; got 10"),
        ({"retry": 3}, {}, {}, "retry must be a RetryConfig, got int"),
        ({"resume": True}, {}, {}, "resume=True needs the job_id"),
        ({"cluster": "tcp://h:8786"}, {}, {}, "pass executor='dask' too"),
        ({"executor": "dask", "stall_timeout": 5}, {}, {}, "the Dask nannies own them"),
        ({"chunksize": 5}, {}, {}, "unknown option 'chunksize'; did you mean 'chunk_size'"),
    ],
)
def test_every_bad_value_names_its_setting(
    arguments: dict, params: dict, env: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        JobConfig.build(arguments, params, env)


def test_a_config_is_frozen_and_checked_when_changed() -> None:
    c = JobConfig.build({"table": "t"}, env={})
    with pytest.raises(AttributeError):
        c.table = "u"  # type: ignore[misc]
    assert c.with_(mode="merge").mode == "merge" and c.mode == "append"
    with pytest.raises(ConfigError, match="mode must be one of"):
        c.with_(mode="upsert")
    assert c.retry == RetryConfig()


def test_each_option_is_declared_once() -> None:
    """map_query's keywords, the job file's keys and the CLI's flags all come from JobConfig."""
    keywords = [
        p.name
        for p in inspect.signature(map_query).parameters.values()
        if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    assert sorted(keywords) == sorted([*api_options(), "progress"])
    assert set(job_keys()) == {*file_keys(), "transform_sql"}
    assert file_keys()["max_retries"][0] == "retry"
    assert all(o.help for o in OPTIONS.values())
    from arrowmapper.cli import _parser

    run = _parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    flags = {a.dest for a in run._actions} - {"help", "job_file", "quiet", "json"}
    assert flags == set(job_keys())


def test_job_file_values_are_typed(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "job.toml"  # type: ignore[operator]
    path.write_text("[job]\nworkers = 2\nstall_timeout = 3\nsnapshot = false\n")
    assert load_job_file(str(path)) == {"workers": 2, "stall_timeout": 3.0, "snapshot": False}
    path.write_text("workers = true\n")
    with pytest.raises(ConfigError, match="workers must be a int, got True"):
        load_job_file(str(path))


def test_chunk_config_default_does_not_outrank_params_or_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The precedence bug of issue #14: ChunkConfig's default 50,000 was taken as an explicit
    argument, so job params and MAPPER_CHUNK_SIZE were silently ignored."""
    monkeypatch.delenv("MAPPER_MAX_WORKERS", raising=False)
    processor = ParallelProcessor(chunk_config=ChunkConfig(strategy="key", key_column="id"))
    assert ChunkConfig().chunk_size == 50_000
    assert processor.settings({"chunk_size": 1234}).chunk_size == 1234
    monkeypatch.setenv("MAPPER_CHUNK_SIZE", "777")
    assert processor.settings().chunk_size == 777
    assert processor.config().strategy == "key" and processor.config().key == "id"
    # said explicitly, the ChunkConfig's size is an argument: it outranks params and env
    said = ParallelProcessor(chunk_config=ChunkConfig(chunk_size=50_000))
    assert said.settings({"chunk_size": 1234}).chunk_size == 50_000
    # and the processor's own chunk_size outranks the ChunkConfig's
    both = ParallelProcessor(chunk_size=10, chunk_config=ChunkConfig(chunk_size=20))
    assert both.settings().chunk_size == 10
    # params outrank a ChunkConfig's strategy; rowid on PostgreSQL means ctid
    assert processor.config({"strategy": "offset"}).strategy == "offset"
    rowid = ParallelProcessor(chunk_config=ChunkConfig(strategy="rowid"))
    assert rowid.config(dialect="postgresql").strategy == "ctid"


def test_a_config_never_shows_a_password() -> None:
    c = JobConfig.build(
        {"source": "postgresql://app:s3cret@db/src", "target": "sqlite:///x.db"}, env={}
    )
    assert "s3cret" not in repr(c) and "s3cret" not in str(c) and "***" in repr(c)
    assert c.source == "postgresql://app:s3cret@db/src"  # the value itself is kept
