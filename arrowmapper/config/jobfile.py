"""The CLI's TOML job files: a ``[job]`` table (or top-level keys) of :class:`JobConfig`'s
options, spelled as their flags are (``max_retries``, ``transform_sql`` ...)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .job import file_keys

#: keys a job file (and ``arrowmapper run``) has besides JobConfig's options.
EXTRA_KEYS: dict[str, type] = {"transform_sql": str}


def job_keys() -> dict[str, type]:
    """Every key a job file may hold, with the type of its value."""
    keys = {key: option.file_type for key, (_, option) in file_keys().items()}
    return {**keys, **EXTRA_KEYS}


def _env_value(value: Any, key: str) -> Any:
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(f"{key} = {value!r}: environment variable {name} is not set")
        return os.environ[name]
    return value


def load_job_file(path: str) -> dict[str, Any]:
    """Read a TOML job file (a ``[job]`` table or top-level keys); ``"env:NAME"`` values are read
    from the environment."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"job file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"job file {path} is a directory; pass a TOML file") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"job file {path} is not text (not UTF-8); pass a TOML file such as job.toml"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read job file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"job file {path} is not valid TOML: {exc}") from None
    job = data.get("job", data)
    if not isinstance(job, dict):
        raise ConfigError(f"job file {path}: 'job' must be a table ([job]), got {job!r}")
    keys = job_keys()
    unknown = sorted(set(job) - set(keys))
    if unknown:
        raise ConfigError(
            f"job file {path}: unknown keys {', '.join(unknown)}; allowed: {', '.join(keys)}"
        )
    out = {}
    for key, value in job.items():
        value = _env_value(value, key)
        want = keys[key]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"job file {path}: {key} must be a {want.__name__}, got {value!r}")
        out[key] = value
    return out
