"""Configuration: frozen value objects and their validation.

Precedence, highest first: explicit arguments > job ``params`` > ``MAPPER_*`` environment
variables > defaults. Every invalid value raises :class:`ConfigError` naming the setting, the
value received and what is allowed.

* :mod:`.job` -- :class:`JobConfig`, every job option declared once (with how the compat
  layer's params, ``MAPPER_*``, job files and CLI flags spell it), and :class:`RetryConfig`;
* :mod:`.retry` -- :class:`RetryConfig`;
* :mod:`.endpoint` -- database URIs (:class:`Endpoint`, :func:`parse_uri`), reachability;
* :mod:`.jobfile` -- the CLI's TOML job files.
"""

from __future__ import annotations

from ..sql import quote_ident as quote_ident  # names live in sql.py; re-exported for callers
from ..sql import validate_identifier as validate_identifier
from .endpoint import (
    RESERVED_TABLES,
    URI_RULES,
    Dialect,
    Endpoint,
    UriRules,
    check_reachable,
    check_table_name,
    expand_env,
    parse_uri,
    scheme_dialect,
    uri_rules,
)
from .job import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MIN_ROWS_FOR_PARALLEL,
    EXECUTORS,
    MODES,
    OPTIONS,
    STRATEGIES,
    SWAPS,
    Executor,
    JobConfig,
    Mode,
    Option,
    Settings,
    Strategy,
    Swap,
    api_options,
    default_workers,
    file_keys,
    parse_bool,
    refuse_unknown,
    resolve_settings,
    settings_of,
    usable_cpus,
)
from .jobfile import load_job_file
from .retry import RetryConfig

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MIN_ROWS_FOR_PARALLEL",
    "EXECUTORS",
    "MODES",
    "OPTIONS",
    "RESERVED_TABLES",
    "STRATEGIES",
    "SWAPS",
    "URI_RULES",
    "Dialect",
    "Endpoint",
    "Executor",
    "JobConfig",
    "Mode",
    "Option",
    "RetryConfig",
    "Settings",
    "Strategy",
    "Swap",
    "UriRules",
    "api_options",
    "check_reachable",
    "check_table_name",
    "default_workers",
    "expand_env",
    "file_keys",
    "load_job_file",
    "parse_bool",
    "parse_uri",
    "quote_ident",
    "refuse_unknown",
    "resolve_settings",
    "settings_of",
    "scheme_dialect",
    "uri_rules",
    "usable_cpus",
    "validate_identifier",
]
