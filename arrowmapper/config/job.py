"""One job's options, declared once: :class:`JobConfig`.

Each option is a field of :class:`JobConfig`; its :class:`Option` metadata says how it is
spelled everywhere else (the compat layer's ``params`` key, the ``MAPPER_*`` variable, the job
file's key and the CLI flag, the help text). :meth:`JobConfig.build` merges the layers ONCE,
highest first: explicit arguments > job ``params`` > ``MAPPER_*`` environment variables >
defaults, and validates every value: a bad one raises :class:`ConfigError` naming where it
came from (``workers``, ``params['max_workers']``, ``MAPPER_MAX_WORKERS``), the value received
and what is allowed.

>>> JobConfig.build({"chunk_size": 1000}, env={}).batch_size
8192
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any, Literal, get_args

from ..errors import ConfigError, redact
from .files import BAD_ROWS
from .retry import RetryConfig

Strategy = Literal[
    "auto", "offset", "key", "quantile", "ctid", "rowid", "none", "rowgroup", "byterange", "file"
]
Mode = Literal["append", "create", "replace", "merge", "truncate"]
Executor = Literal["local", "dask"]
Swap = Literal["truncate", "delete"]
CopyPath = Literal["auto", "arrow", "copy"]

STRATEGIES: tuple[str, ...] = get_args(Strategy)
MODES: tuple[str, ...] = get_args(Mode)
EXECUTORS: tuple[str, ...] = get_args(Executor)
#: How ``mode="replace"`` empties an existing target in its swap: TRUNCATE (fast; a REPEATABLE
#: READ reader whose snapshot predates the swap then sees an empty table) or DELETE (slower;
#: such a reader keeps seeing the old rows).
SWAPS: tuple[str, ...] = get_args(Swap)
#: How chunks travel: ``copy`` relays the source's binary COPY stream into the target's COPY
#: undecoded (PostgreSQL -> PostgreSQL, no transform, identical built-in column types),
#: ``arrow`` reads, transforms and writes Arrow batches, ``auto`` takes copy where it can.
PATHS: tuple[str, ...] = get_args(CopyPath)
DEFAULT_CHUNK_SIZE = 50_000
DEFAULT_MIN_ROWS_FOR_PARALLEL = 100_000
DEFAULT_BATCH_SIZE = 65_536

Kind = Literal["text", "choice", "int", "bool", "seconds", "mib", "retry", "any"]


@dataclass(frozen=True)
class Option:
    """How one job option is spelled and checked outside :class:`JobConfig`."""

    help: str
    kind: Kind = "text"
    param: str | None = None  # the compat layer's params key
    env: str | None = None  # the MAPPER_* variable
    minimum: int = 0  # kind "int"
    key: str | None = None  # the job file's key and CLI flag when not the field's name
    cli: bool = True  # a job-file key and a CLI flag of ``arrowmapper run``
    api: bool = True  # a keyword of :func:`arrowmapper.map_query`
    choices: tuple[str, ...] = ()

    @property
    def file_type(self) -> type:
        """The type a job file gives this option's value in."""
        by_kind: dict[str, type] = {"int": int, "bool": bool, "seconds": float, "mib": int}
        return int if self.kind == "retry" else by_kind.get(self.kind, str)


def _opt(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"option": Option(help, **kw)})


def _sizing(default: Any, help: str, param: str | None = None) -> Any:
    """A size, an integer >= 1, that job params (``param``, the field's name by default) and
    ``MAPPER_<PARAM>`` may give; a callable ``default`` is called for each JobConfig."""
    option = Option(help, kind="int", param=param, env=None, minimum=1)
    given = {"default_factory" if callable(default) else "default": default}
    return field(**given, metadata={"option": option, "sizing": True})


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity; all of them off Linux)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """Usable CPUs (affinity-aware), at most 8."""
    return max(1, min(usable_cpus(), 8))


@dataclass(frozen=True, repr=False)
class JobConfig:
    """A job's options after precedence, every value checked. Build it with :meth:`build`.

    >>> c = JobConfig.build({"workers": 2}, {"max_workers": 4, "chunk_size": "500"}, env={})
    >>> c.workers, c.chunk_size, c.sources["chunk_size"]
    (2, 500, 'params')
    """

    source: str = _opt(
        "",
        "source: a database URI, or files -- a path, glob, folder or file:// URI with "
        "options (default: $ARROWMAPPER_SOURCE)",
    )
    query: str = _opt(
        "", "SQL query or table name (files: optional Polars SQL over 'self', default all rows)"
    )
    target: str = _opt("", "target URI (default: $ARROWMAPPER_TARGET)")
    table: str = _opt("", "target table")
    schema: str | None = _opt(None, "target schema (PostgreSQL)")
    transform: Any = _opt(
        None, "'package.module:function' taking and returning a DataFrame", kind="any"
    )
    strategy: Strategy = _opt(
        "auto",
        "auto|offset|key|quantile|ctid|rowid|none (default auto); files: "
        "auto|rowgroup|byterange|file|none",
        kind="choice",
        param="strategy",
        choices=STRATEGIES,
    )
    key: str | None = _opt(None, "key column for offset/key/quantile", param="key")
    merge_key: tuple[str, ...] | None = _opt(
        None,
        "mode merge: the column(s) rows are upserted on, 'a,b' (default: --key where the "
        "table has a unique index on it, else its primary key, else --key); --key then only "
        "splits the work",
        param="merge_key",
        env="MAPPER_MERGE_KEY",
    )
    workers: int = _sizing(
        default_workers, "worker processes (default: usable CPUs, at most 8)", "max_workers"
    )
    chunk_size: int = _sizing(DEFAULT_CHUNK_SIZE, "rows per chunk (default 50000)")
    batch_size: int = _sizing(
        DEFAULT_BATCH_SIZE, "rows per Arrow batch (default chunk-size / 8, between 8192 and 65536)"
    )
    mode: Mode = _opt(
        "append",
        "append (default; creates a missing table), create (refuses an existing one), "
        "replace (load a staging table, swap it in atomically), truncate (empty, then load), "
        "merge (upsert on --key or the primary key)",
        kind="choice",
        choices=MODES,
    )
    swap: Swap = _opt(
        "truncate",
        "how --mode replace empties an existing table in its swap: truncate (default, "
        "fast; an older REPEATABLE READ snapshot then sees it empty) or delete (slower; such "
        "a snapshot keeps seeing the old rows)",
        kind="choice",
        choices=SWAPS,
    )
    retry: RetryConfig = field(
        default_factory=RetryConfig,
        metadata={
            "option": Option("retries per chunk (default 3)", kind="retry", key="max_retries")
        },
    )
    job_id: str | None = _opt(None, "ledger key; needed to resume", param="job_id")
    resume: bool = _opt(
        False, "skip the chunks this job already committed", kind="bool", param="resume"
    )
    allow_duplicate: bool | None = _opt(
        None,
        "append even when a finished append job with the same source, query, transform and "
        "columns already loaded this table (the CLI refuses that rerun without a --job-id; "
        "the API notes it)",
        kind="bool",
    )
    verify: bool = _opt(
        False, "check each chunk's count and checksum inside its transaction", kind="bool"
    )
    incremental: bool = _opt(
        False,
        "files: load only the files earlier jobs did not load into the table (a new job_id "
        "each run; a loaded file that changed is refused)",
        kind="bool",
        param="incremental",
        env="MAPPER_INCREMENTAL",
    )
    name: str | None = _opt(
        None,
        "a recurring job's name: each run gets a job id made of it and the time; with "
        "--cursor it owns a high-water mark, and a second run while one is unfinished is "
        "refused",
        param="name",
        env="MAPPER_NAME",
    )
    cursor: str | None = _opt(
        None,
        "with --name: load only rows whose value in this column (integer, numeric, date, "
        "timestamp or text) is above the mark the name's last successful run stored; NULLs "
        "are never loaded",
        param="cursor",
        env="MAPPER_CURSOR",
    )
    reset: bool = _opt(
        False,
        "with --name and --cursor: forget the name's mark and its definition, and start over "
        "with a full load",
        kind="bool",
        param="reset_mark",
        key="reset_mark",
    )
    cursor_lag: float | None = _opt(
        None,
        "with --cursor: the new mark is at most the source's highest cursor minus this much "
        "(an amount for integer and numeric cursors, seconds for timestamps, whole days of "
        "them for dates), so a row whose transaction commits late below the highest value "
        "is still loaded by the next run; rows above the new mark wait for the next run",
        kind="seconds",
        param="cursor_lag",
        env="MAPPER_CURSOR_LAG",
    )
    snapshot: bool | None = _opt(
        None,
        "read every chunk from one PostgreSQL snapshot (default: on for ctid and offset "
        "plans of a PostgreSQL source, off otherwise)",
        kind="bool",
    )
    path: CopyPath = _opt(
        "auto",
        "auto (default: copy where eligible, else arrow), arrow (read, transform and write "
        "Arrow batches), copy (relay PostgreSQL's binary COPY stream undecoded: PostgreSQL to "
        "PostgreSQL, no transform, identical built-in column types; refused otherwise)",
        kind="choice",
        param="path",
        env="MAPPER_PATH",
        choices=PATHS,
    )
    statement_timeout: float | None = _opt(None, "seconds per source query", kind="seconds")
    stall_timeout: float | None = _opt(
        None, "kill and retry a chunk that makes no progress this many seconds", kind="seconds"
    )
    max_worker_memory: int | None = _opt(
        None, "MiB of RSS per worker; over it the worker is killed, its chunk split", kind="mib"
    )
    executor: Executor = _opt(
        "local",
        "local (default): a process pool on this machine; dask: a Dask cluster",
        kind="choice",
        choices=EXECUTORS,
    )
    cluster: str | None = _opt(
        None,
        "with --executor dask: the scheduler's address (tcp://host:8786); "
        "without it, a LocalCluster of --workers processes",
    )
    parallel_enabled: bool = _opt(
        True,
        "run in parallel chunks (else one chunk in this process)",
        kind="bool",
        param="enable_parallel",
        env="MAPPER_PARALLEL_ENABLED",
        cli=False,
        api=False,
    )
    min_rows_for_parallel: int = _opt(
        0,
        "below this many rows the job runs as one chunk in this process",
        kind="int",
        param="min_rows_for_parallel",
        env="MAPPER_MIN_ROWS_FOR_PARALLEL",
        cli=False,
        api=False,
    )
    bad_rows: str | None = _opt(
        None,
        "file sources (CSV, JSON lines): skip a row that does not parse (wrong number of "
        "fields, a value not of its column's type, broken JSON) instead of failing its chunk, "
        "and count it in the result; file also writes it with the reason to "
        "<rejects>/<job id>/chunk-<n>.csv (rejects= in the source URI, default "
        "./arrowmapper-rejects)",
        kind="choice",
        param="bad_rows",
        env="MAPPER_BAD_ROWS",
        choices=BAD_ROWS,
    )
    tables: str | None = _opt(
        None,
        "copy several tables (map_tables): names or patterns, comma-separated, matched as "
        "the source spells them (public.*, sales.order_*, '\"Order Items\"'); each loads the "
        "table of its name in --schema, their chunks sharing the workers",
        api=False,
    )
    include_views: bool = _opt(
        False, "with --tables: copy the rows of matching views too", kind="bool", api=False
    )
    constraints: bool = _opt(
        False,
        "with --tables, PostgreSQL to PostgreSQL: once loaded, create the source's primary "
        "keys, unique constraints, indexes and foreign keys on the target tables",
        kind="bool",
        api=False,
    )
    sequences: bool = _opt(
        False,
        "with --tables, PostgreSQL to PostgreSQL: set the target's sequences to the source's "
        "values after the load",
        kind="bool",
        api=False,
    )
    metrics_file: str | None = _opt(
        None,
        "write Prometheus metrics (rows, bytes, phase seconds, chunk durations, retries, "
        "chunks by state) to this textfile, atomically, every 2 s and at the end "
        "(node-exporter textfile collector: name it *.prom)",
        param="metrics_file",
        env="MAPPER_METRICS_FILE",
    )
    metrics_port: int | None = _opt(
        None,
        "serve the same Prometheus metrics over HTTP on this port while the job runs",
        kind="int",
        minimum=1,
        param="metrics_port",
        env="MAPPER_METRICS_PORT",
    )
    log_file: str | None = _opt(
        None,
        "append the job's log records (INFO and up) to this file, redacted",
        env="MAPPER_LOG_FILE",
        api=False,
    )
    log_json: bool = _opt(
        False,
        "log records as JSON lines (time, level, logger, message, job_id, chunk_id); to "
        "--log-file, or stderr without it",
        kind="bool",
        env="MAPPER_LOG_JSON",
        api=False,
    )
    #: where each option's value came from: argument, params, env or default
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name, option in OPTIONS.items():
            _check(name, option, getattr(self, name), "argument")
        _check_together(self)

    @classmethod
    def build(
        cls,
        arguments: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> JobConfig:
        """The options after precedence (arguments that are None count as not given), each
        value parsed from the layer it came from and checked."""
        given = {k: v for k, v in (arguments or {}).items() if v is not None}
        refuse_unknown(given, "JobConfig")
        params = params or {}
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, option in OPTIONS.items():
            if name in given:
                label, raw, src = name, given[name], "argument"
            elif option.param and params.get(option.param) is not None:
                label, raw, src = f"params[{option.param!r}]", params[option.param], "params"
            elif option.env and env.get(option.env, "").strip():
                label, raw, src = option.env, env[option.env], "env"
            elif defaults and defaults.get(name) is not None:
                label, raw, src = name, defaults[name], "default"
            else:
                continue
            values[name] = _check(name, option, raw, src, label)
            sources[name] = src
        for name in OPTIONS:
            sources.setdefault(name, "default")
        if sources["batch_size"] == "default":
            # at most an eighth of a chunk (and at least 8,192 rows): a chunk that arrives as
            # one batch cannot overlap connectorx's decoding with ADBC's COPY (1M rows in
            # 62,500-row chunks, one process: 8.5 s with 65,536-row batches, 5.9 s with 8,192)
            size = values.get("batch_size", DEFAULT_BATCH_SIZE)
            chunk = values.get("chunk_size", DEFAULT_CHUNK_SIZE)
            values["batch_size"] = min(size, max(8_192, chunk // 8))
        return cls(**values, sources=sources)

    def __repr__(self) -> str:
        """Every option, passwords in the URIs (and anywhere else) replaced by ``***``."""
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in OPTIONS)
        return redact(f"JobConfig({shown})")

    __str__ = __repr__

    def with_(self, **changes: Any) -> JobConfig:
        """A copy with ``changes`` (checked like arguments); ``sources`` says "argument"."""
        return replace(
            self, **changes, sources={**self.sources, **dict.fromkeys(changes, "argument")}
        )


#: every job option by field name (JobConfig's fields with Option metadata, in order).
def _option(f: Field[Any]) -> Option:
    option: Option = f.metadata["option"]
    if f.metadata.get("sizing"):  # params and MAPPER_* spell it as the field (or its param)
        param = option.param or f.name
        option = replace(option, param=param, env=f"MAPPER_{param.upper()}")
    return option


OPTIONS: dict[str, Option] = {
    f.name: _option(f) for f in fields(JobConfig) if "option" in f.metadata
}


def file_keys() -> dict[str, tuple[str, Option]]:
    """Job-file key (and CLI flag, ``-`` for ``_``) -> (field name, option)."""
    return {(o.key or n): (n, o) for n, o in OPTIONS.items() if o.cli}


def api_options() -> list[str]:
    """The options :func:`arrowmapper.map_query` takes as keywords, in order."""
    return [n for n, o in OPTIONS.items() if o.api]


def refuse_unknown(given: Iterable[str], what: str, known: Iterable[str] | None = None) -> None:
    """A misspelt option is an error that names the options there are (``known``; every
    JobConfig option by default), not a silent default."""
    known = list(OPTIONS if known is None else known)
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return
    name = unknown[0]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"{what} got an unknown option {name!r}; {hint}options: {', '.join(known)}")


def _parse_int(name: str, raw: Any, minimum: int) -> int:
    try:
        value = int(str(raw).strip()) if not isinstance(raw, int) or isinstance(raw, bool) else raw
    except ValueError:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {raw!r}") from None
    if isinstance(raw, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {raw!r}")
    return value


def parse_bool(name: str, raw: Any) -> bool:
    """``raw`` (a bool, or 1/0, true/false, yes/no, on/off as text) as a bool; ConfigError
    naming ``name`` otherwise."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _check(name: str, option: Option, raw: Any, src: str, label: str | None = None) -> Any:
    """``raw`` parsed (text from params and env) and checked; returns the value."""
    label = label or name
    kind = option.kind
    if raw is None or kind == "any":
        return raw
    if kind == "int":
        return _parse_int(label, raw, option.minimum)
    if kind == "bool":
        if src == "argument" and not isinstance(raw, bool):
            raise ConfigError(f"{label} must be True or False, got {raw!r}")
        return parse_bool(label, raw)
    if kind == "choice":
        if raw not in option.choices:
            raise ConfigError(f"{label} must be one of {', '.join(option.choices)}; got {raw!r}")
        return raw
    if kind == "seconds":
        if isinstance(raw, str) and src != "argument":  # params and MAPPER_* give text
            with contextlib.suppress(ValueError):
                raw = float(raw.strip())
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raw_ok = False
        else:
            raw_ok = raw > 0
        if not raw_ok:
            raise ConfigError(
                f"{label} must be a finite number of seconds > 0 or None, got {raw!r}"
            )
        return raw
    if kind == "mib":
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 64:
            raise ConfigError(f"{label} is MiB of RSS per worker, an integer >= 64; got {raw!r}")
        return raw
    if kind == "retry":
        if not isinstance(raw, RetryConfig):
            raise ConfigError(f"{label} must be a RetryConfig, got {type(raw).__name__}")
        return raw
    if name == "source" and not isinstance(raw, str):
        from .files import file_spec  # a path object, a list, an upload: the files' URI

        return file_spec(raw).uri
    if name == "query" and raw is None:
        return ""
    if name == "key" and (not isinstance(raw, str) or not raw):
        raise ConfigError(f"key must be a column name (a non-empty string) or None, got {raw!r}")
    if name in ("name", "cursor") and (not isinstance(raw, str) or not raw.strip()):
        raise ConfigError(f"{label} must be a non-empty string or None, got {raw!r}")
    if name == "merge_key":
        return _parse_columns(label, raw)
    if name in (
        "schema", "job_id", "cluster", "tables", "metrics_file", "log_file"
    ) and not isinstance(raw, str):
        raise ConfigError(f"{label} must be a string or None, got {raw!r}")
    return raw


def _parse_columns(label: str, raw: Any) -> tuple[str, ...]:
    """Column names given as ``"a,b"`` or a sequence of names, as a tuple (no repeats)."""
    if isinstance(raw, str):
        names = [part.strip() for part in raw.split(",")]
    elif isinstance(raw, list | tuple):
        names = list(raw)
    else:
        names = [raw]
    if not names or any(not isinstance(n, str) or not n for n in names):
        raise ConfigError(
            f"{label} must be column names, 'a,b' or a list of non-empty strings; got {raw!r}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"{label} names a column twice: {raw!r}")
    return tuple(names)


def _check_together(c: JobConfig) -> None:
    """The rules between options."""
    if c.resume and not c.job_id:
        raise ConfigError("resume=True needs the job_id of the job to resume")
    if c.executor == "dask" and (c.stall_timeout or c.max_worker_memory):
        raise ConfigError(
            "stall_timeout and max_worker_memory watch local worker processes; with "
            "executor='dask' the Dask nannies own them: set the workers' --memory-limit instead"
        )
    if c.incremental and c.mode not in ("append", "merge"):
        raise ConfigError(
            f"incremental=True adds what is new to the table: use mode='append' or 'merge', "
            f"not {c.mode!r}"
        )
    if c.incremental and c.resume:
        raise ConfigError(
            "incremental=True starts a new job that skips what earlier jobs loaded; to finish "
            "an interrupted one, resume it (resume=True and its job_id) without incremental"
        )
    if c.merge_key is not None and c.mode != "merge":
        raise ConfigError(
            f"merge_key= names the columns mode='merge' upserts on; this job's mode is "
            f"{c.mode!r}: drop merge_key or use mode='merge'"
        )
    _check_cursor(c)
    if c.cluster is not None and c.executor != "dask":
        raise ConfigError("cluster= is the Dask scheduler's address: pass executor='dask' too")
    _fold_bad_rows(c)


def _check_cursor(c: JobConfig) -> None:
    """The rules of a recurring job (``name``, ``cursor``, ``reset``)."""
    if c.cursor and not c.name:
        raise ConfigError(
            f"cursor={c.cursor!r} needs a job name (name='orders-sync', --name): the mark "
            "each run moves belongs to the name"
        )
    if c.cursor_lag is not None and not c.cursor:
        raise ConfigError(
            "cursor_lag= holds back the newest rows of a run with a cursor: pass name and cursor"
        )
    if c.reset and not c.cursor:
        raise ConfigError("reset=True forgets a name's mark: pass name and cursor")
    if c.reset and c.resume:
        raise ConfigError(
            "reset=True starts a name over with a full load; resume=True finishes a run as it "
            "was claimed: pass one of them"
        )
    if c.cursor and c.mode not in ("append", "merge"):
        raise ConfigError(
            f"cursor={c.cursor!r} adds what is new to the table: use mode='append' or 'merge', "
            f"not {c.mode!r}"
        )
    if c.cursor and c.incremental:
        raise ConfigError(
            "cursor= makes runs of a database query incremental; incremental=True is for file "
            "sources: pass one of them"
        )
    if c.name and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}", c.name):
        raise ConfigError(
            f"name must be 1-100 letters, digits, '_', '.', ':' or '-' (each run's job id "
            f"starts with it), got {c.name!r}"
        )


def _fold_bad_rows(c: JobConfig) -> None:
    """``bad_rows`` is an option of a file source: folded into its URI (what the workers
    open), over the URI's own ``bad_rows=``. A database source refuses it, unless it came
    from ``MAPPER_BAD_ROWS`` (a default for the file jobs of an environment): then it is off.

    It is not part of the job's identity (the fingerprint names the files, not how their bad
    rows are handled): a job that failed on a bad row resumes with ``bad_rows="skip"``."""
    if c.bad_rows is None or not c.source:
        return
    from .files import file_spec, is_file_source

    if not is_file_source(c.source):
        if c.sources.get("bad_rows") == "env":  # a default for file jobs: not this one's
            object.__setattr__(c, "bad_rows", None)
            return
        raise ConfigError(
            f"bad_rows={c.bad_rows!r} skips rows of files that do not parse (CSV, JSON lines); "
            "the source is a database, whose rows are typed by its server: drop bad_rows (or "
            "filter the bad rows out in the query)"
        )
    object.__setattr__(c, "source", file_spec(c.source).with_options(bad_rows=c.bad_rows).uri)


@dataclass(frozen=True)
class Settings:
    """Sizing settings after precedence: explicit > params > MAPPER_* env > defaults (the
    sizing options of a :class:`JobConfig`, kept for callers of :func:`resolve_settings`)."""

    workers: int
    chunk_size: int
    parallel_enabled: bool = True
    min_rows_for_parallel: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE
    sources: Mapping[str, str] = field(default_factory=dict)


def resolve_settings(
    explicit: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Settings:
    """The sizing options of :meth:`JobConfig.build` (same layers, same checks)."""
    return settings_of(JobConfig.build(explicit, params, env, defaults))


def settings_of(c: JobConfig) -> Settings:
    """A JobConfig's sizing options, with the layer each came from."""
    names = ("workers", "chunk_size", "parallel_enabled", "min_rows_for_parallel", "batch_size")
    return Settings(
        c.workers,
        c.chunk_size,
        c.parallel_enabled,
        c.min_rows_for_parallel,
        c.batch_size,
        {n: c.sources[n] for n in names},
    )
