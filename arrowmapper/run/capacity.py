"""How many workers the servers can take: a PostgreSQL server's free connections, counted
before the job starts, lower the worker count (or refuse a job not even one worker fits)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from ..config import Endpoint
from ..errors import SourceError, error_info, translate

log = logging.getLogger("arrowmapper")

#: the connections one worker holds: its connectorx reads open two on the source, its writes
#: one on the target.
PER_WORKER: dict[str, int] = {"source": 2, "target": 1}

_FREE_SQL = (
    "SELECT current_setting('max_connections')::int, "
    "current_setting('superuser_reserved_connections')::int, "
    "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int, "
    "r.rolsuper, r.rolconnlimit, "
    "(SELECT count(*) FROM pg_stat_activity a WHERE a.usename = current_user)::int "
    "FROM pg_roles r WHERE r.rolname = current_user"
)


def free_connections(endpoint: Endpoint) -> int | None:
    """How many more connections this role may open on a PostgreSQL server (None: a server
    whose connections are not counted, see :attr:`~arrowmapper.config.UriRules.adbc_login`)."""
    if not endpoint.rules.adbc_login:
        return None
    from ..adbc import connect_postgresql

    # ADBC (one connection) rather than connectorx, which opens two: with a role limited to
    # a single connection this probe must still get through and say so clearly
    try:
        with connect_postgresql(endpoint.uri) as conn, conn.cursor() as cur:
            cur.execute(_FREE_SQL)
            max_conn, reserved, used, superuser, role_limit, role_used = cur.fetchall()[0]
    except Exception as exc:
        if error_info(exc).kind == "connection_limit":
            return 0
        raise translate(exc, SourceError, f"cannot connect to {endpoint.redacted}") from exc
    free = int(max_conn) - int(used) + 1  # this probe's own connection is about to close
    if not superuser:
        free -= int(reserved)
        if int(role_limit) >= 0:
            free = min(free, int(role_limit) - int(role_used) + 1)
    return free


def fit_workers(src: Endpoint, dst: Endpoint, workers: int) -> tuple[int, list[str]]:
    """Lower ``workers`` to what the servers' free connections allow; fail when not even one
    worker fits (source and target on one server count together)."""

    def server(ep: Endpoint) -> tuple[Any, ...]:
        parts = urlsplit(ep.uri)
        return (ep.host_port, parts.username, parts.path)

    needs: dict[tuple[Any, ...], tuple[Endpoint, int]] = {}
    for ep, per in ((src, PER_WORKER["source"]), (dst, PER_WORKER["target"])):
        if ep.rules.adbc_login:
            key = server(ep)
            needs[key] = (ep, needs.get(key, (ep, 0))[1] + per)
    fit, notes = workers, []
    for ep, per_worker in needs.values():
        free = free_connections(ep)
        if free is None:
            continue
        if free < per_worker:
            raise SourceError(
                f"not enough free connections on {ep.redacted}: a worker needs {per_worker}, "
                f"{max(free, 0)} are free (max_connections, reserved slots and the role's "
                "connection limit counted); close idle sessions or raise the limit",
                transient=False,
                kind="connection_limit",
            )
        if free // per_worker < fit:
            fit = free // per_worker
            notes.append(
                f"{ep.redacted} has {free} free connections: running {fit} workers "
                f"instead of {workers}"
            )
            log.warning(notes[-1])
    return fit, notes
