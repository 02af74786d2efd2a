"""What a job *is*: the fingerprint stored with it, compared when it is resumed.

A job id names a job; its fingerprint says what the job was: where it reads (the source server
and database, never the password), what it reads (the query), where it writes (the table and,
on PostgreSQL, that table's identity), how (transform, key, strategy, mode) and the columns it
writes. ``resume=True`` continues only a job whose fingerprint is the same, and the refusal
names every part that differs.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import pyarrow as pa

from .config import Endpoint, JobConfig
from .sql import bare_table
from .transform import TransformSpec

#: The parts in the order a refusal names them, with the words used for each.
PARTS: dict[str, str] = {
    "source": "source",
    "query": "query",
    "target_table": "target table",
    "table_identity": "target table's identity (it was dropped and created again)",
    "transform": "transform",
    "key": "key",
    "strategy": "strategy",
    "mode": "mode",
    "merge_key": "merge key",
    "columns": "columns written",
}


def source_identity(endpoint: Endpoint) -> str:
    """The source's server and database without credentials (``postgresql://u@h:5432/db``);
    for files, every path and parsing option (what to do with bad rows is not part of what
    a job reads: a job that failed on a bad row may be resumed with ``bad_rows=``)."""
    if not endpoint.rules.sql:
        from dataclasses import replace

        from .config.files import FileSpec

        return replace(FileSpec.parse(endpoint.uri), bad_rows=None, rejects=None).uri
    if endpoint.rules.file:
        return f"{endpoint.dialect}://{endpoint.path}"
    parts = urlsplit(endpoint.uri)  # normalised (the template may hold raw characters)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{endpoint.dialect}://{user}{parts.hostname or ''}{port}{parts.path}"


def transform_identity(spec: TransformSpec) -> str:
    payload = spec.payload
    if payload is None:
        return spec.kind
    data = payload if isinstance(payload, bytes) else payload.encode()
    return f"{spec.kind}:{hashlib.sha256(data).hexdigest()[:16]}"


def fingerprint(
    source: Endpoint,
    query: str,
    target_table: str,
    transform: TransformSpec,
    key: str | None,
    strategy: str,
    mode: str,
    columns: pa.Schema,
    table_identity: str | None = None,
) -> dict[str, str]:
    """The parts that define a job, as strings (stored as JSON in the jobs table)."""
    parts = {
        "source": source_identity(source),
        "query": query.strip(),
        "target_table": target_table,
        "transform": transform_identity(transform),
        "key": key or "",
        "strategy": strategy,
        "mode": mode,
        "columns": ", ".join(f"{f.name} {f.type}" for f in columns),
    }
    if table_identity is not None:
        parts["table_identity"] = table_identity
    return parts


def job_fingerprint(
    config: JobConfig,
    source: Endpoint,
    target_table: str,
    transform: TransformSpec,
    columns: pa.Schema,
) -> dict[str, str]:
    """The fingerprint of the job ``config`` describes: what it reads (``source``, its query),
    the table it loads (``target_table``, as shown), how (``transform`` as normalised, key,
    strategy, mode) and the ``columns`` it writes."""
    parts = fingerprint(
        source,
        config.query,
        target_table,
        transform,
        config.key,
        config.strategy,
        config.mode,
        columns,
    )
    if config.merge_key:  # only when given: the fingerprints of earlier jobs stay as they were
        parts["merge_key"] = ",".join(config.merge_key)
    return parts


#: The parts that decide WHICH rows a job loads and how they are written: two finished appends
#: alike in these loaded the same rows. Key, strategy (and chunk size, workers, batch size, which
#: the fingerprint does not hold) only split the same work differently.
ROW_PARTS = ("source", "query", "target_table", "transform", "mode", "columns")


def rows_identity(parts: dict[str, str], dialect: str) -> dict[str, str]:
    """The :data:`ROW_PARTS` of a fingerprint, its query normalised as the ``dialect`` server
    resolves it: a bare table name and ``SELECT * FROM`` that table are the same query."""
    out = {name: parts[name] for name in ROW_PARTS if name in parts}
    table = bare_table(out["query"], dialect) if "query" in out else None
    if table is not None:
        schema, name = table
        out["query"] = f"table {schema!r}.{name!r}" if schema else f"table {name!r}"
    return out


def differences(stored: dict[str, str], now: dict[str, str]) -> list[str]:
    """One line per part that differs between a stored fingerprint and this run's (parts one
    side lacks, e.g. from an older arrowmapper, are not compared)."""
    out = []
    for name, words in PARTS.items():
        if name in stored and name in now and stored[name] != now[name]:
            if name == "table_identity":
                out.append(words)
            else:
                out.append(f"{words}: was {stored[name]!r}, now {now[name]!r}")
    return out
