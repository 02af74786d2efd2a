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

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError, redact
from ..sources import Source
from ..targets import Target
from ..transform import TransformSpec

#: the first oid a database hands out to objects it did not ship with (FirstNormalObjectId)
FIRST_USER_OID = 16384

Column = tuple[str, int, int, str]  # name, type oid, typmod, declared type


@dataclass(frozen=True)
class PathChoice:
    """The path a job's chunks take and why; ``columns``: the relayed columns, in the
    query's order (the target's COPY names them explicitly)."""

    path: str  # "copy" or "arrow"
    reason: str
    columns: tuple[str, ...] = ()


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


def created_columns(source: list[Column], created: list[tuple[str, str]]) -> list[Column]:
    """The columns a table not yet created will have (``created``: name, declared type, as
    prepare would create it), as :func:`differences` compares them: a column created with the
    source's declared type has the source's type."""
    by_name = {c[0]: c for c in source}
    out = []
    for name, sql_type in created:
        same = by_name.get(name)
        out.append(same if same is not None and same[3] == sql_type else (name, -1, -1, sql_type))
    return out


def choose_path(
    asked: str,
    source: Source,
    load: Target,
    transform: TransformSpec,
    upserts: bool,
    query: str,
    target_columns: Callable[[list[Column]], list[Column]] | None = None,
) -> PathChoice:
    """The path the job takes, as asked (``auto``, ``arrow``, ``copy``); ``copy`` asked for a
    job that is not eligible raises a :class:`ConfigError` naming why, before any row moves.
    ``target_columns``: the target's columns given the source's (default: ``load``'s
    catalog; a plan of a table still to be created passes :func:`created_columns`)."""
    if asked == "arrow":
        return PathChoice("arrow", "path='arrow' was asked")
    why: list[str] = []
    fmt = source.copy_format
    if fmt is None or fmt != load.dialect.copy_format:
        why.append(
            f"the source ({source.dialect}) and the target ({load.dialect.label}) do not share a "
            "binary COPY format (PostgreSQL to PostgreSQL only)"
        )
    if transform.kind != "identity":
        why.append(f"the job has a transform ({transform.label})")
    if upserts:
        why.append("mode='merge' upserts through a staging table")
    columns: list[Column] = []
    if not why:
        try:
            columns = source.copy_columns(query)
        except Exception as exc:
            why.append(f"the source's column types could not be read ({redact(str(exc)).strip()})")
        else:
            have = target_columns(columns) if target_columns else load.copy_columns()
            why.extend(differences(columns, have))
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
