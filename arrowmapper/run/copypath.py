"""Which path a job's chunks take (the ``path`` option): the Arrow pipeline, or the COPY fast
path that relays the source's binary COPY stream into the target's COPY undecoded.

The fast path is exact only when the bytes mean the same on both sides, so it is taken only
when:

* source and target speak the same binary COPY format (``copy_format`` of their dialect rows:
  PostgreSQL to PostgreSQL);
* there is no transform, and the mode writes rows as they come (``merge`` upserts through a
  staging table: it takes the Arrow path);
* every column of the query exists in the target table with the identical type: the same type
  oid and typmod (``numeric(12,2)`` is not ``numeric(14,2)``, ``varchar(10)`` not ``text``);
* every such type is built in (oid below 16384, the first oid a database hands out): an
  enum, a domain, a composite, a range or an array of one is a user type whose oid differs
  between databases, and binary COPY embeds element and field type oids in arrays and
  composites. Such a column makes the job take the Arrow path, which carries them as text.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from ..config import Endpoint
from ..errors import ConfigError, redact
from ..sources import copy_connect, source_dialect, source_sql
from ..targets import Target
from ..targets.session import lit
from ..transform import TransformSpec

#: the first oid a database hands out to objects it did not ship with (FirstNormalObjectId)
FIRST_USER_OID = 16384

_COLUMNS = (
    "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, format_type(a.atttypid, a.atttypmod) "
    "FROM pg_attribute a WHERE a.attrelid = {rel} AND a.attnum > 0 AND NOT a.attisdropped "
    "AND a.attgenerated = '' ORDER BY a.attnum"
)

Column = tuple[str, int, int, str]  # name, type oid, typmod, format_type


@dataclass(frozen=True)
class PathChoice:
    """The path a job's chunks take and why; ``columns``: the relayed columns, in the
    query's order (the target's COPY names them explicitly)."""

    path: str  # "copy" or "arrow"
    reason: str
    columns: tuple[str, ...] = ()


def _source_columns(src: Endpoint, query: str) -> list[Column]:
    conn = copy_connect(src.uri, autocommit=False)
    try:
        conn.execute(
            f"CREATE TEMP VIEW _am_copy_describe AS SELECT * FROM {source_sql(query, src.dialect)}"
        )
        rows = conn.execute(_COLUMNS.format(rel="'pg_temp._am_copy_describe'::regclass")).fetchall()
        conn.rollback()
        return [(str(n), int(o), int(m), str(t)) for n, o, m, t in rows]
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _target_columns(load: Target) -> list[Column]:
    rows = load._read(_COLUMNS.format(rel=f"to_regclass({lit(load.ref.qualified())})"))
    return [(str(n), int(o), int(m), str(t)) for n, o, m, t in rows]


def differences(source: list[Column], target: list[Column]) -> list[str]:
    """Why each column cannot be relayed (empty: all can)."""
    have = {c[0]: c for c in target}
    out = []
    for name, oid, mod, shown in source:
        there = have.get(name)
        if there is None:
            out.append(f"{name!r} is not a column of the target")
        elif (there[1], there[2]) != (oid, mod):
            out.append(f"{name!r} is {shown} in the source but {there[3]} in the target")
        elif oid >= FIRST_USER_OID:
            out.append(
                f"{name!r} is of the user-defined type {shown}, whose binary form depends on "
                "oids that differ between databases"
            )
    return out


def choose_path(
    asked: str,
    src: Endpoint,
    load: Target,
    transform: TransformSpec,
    upserts: bool,
    query: str,
) -> PathChoice:
    """The path the job takes, as asked (``auto``, ``arrow``, ``copy``); ``copy`` asked for a
    job that is not eligible raises a :class:`ConfigError` naming why, before any row moves."""
    if asked == "arrow":
        return PathChoice("arrow", "path='arrow' was asked")
    why: list[str] = []
    fmt = source_dialect(src.dialect).copy_format
    if fmt is None or fmt != load.dialect.copy_format:
        why.append(
            f"the source ({src.dialect}) and the target ({load.dialect.label}) do not share a "
            "binary COPY format (PostgreSQL to PostgreSQL only)"
        )
    if transform.kind != "identity":
        why.append(f"the job has a transform ({transform.label})")
    if upserts:
        why.append("mode='merge' upserts through a staging table")
    columns: list[Column] = []
    if not why:
        try:
            columns = _source_columns(src, query)
        except Exception as exc:
            why.append(f"the source's column types could not be read ({redact(str(exc)).strip()})")
        else:
            why.extend(differences(columns, _target_columns(load)))
    if why:
        reason = "; ".join(why)
        if asked == "copy":
            raise ConfigError(
                f"path='copy' cannot be taken: {reason}; use path='auto' (the Arrow path "
                "where copy cannot go) or path='arrow'"
            )
        return PathChoice("arrow", f"not eligible for copy: {reason}")
    return PathChoice(
        "copy",
        "PostgreSQL to PostgreSQL, no transform, identical built-in column types: each "
        "chunk's binary COPY stream is relayed undecoded",
        tuple(c[0] for c in columns),
    )
