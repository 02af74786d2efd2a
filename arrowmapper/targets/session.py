"""One ADBC connection to a target table: run a statement, read and end the transaction, roll
back, close. :class:`~.ledger.Ledger` and :class:`~.base.Target` build on it."""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

from ..config import Endpoint
from ..errors import ConfigError, TargetError, redact
from .dialects import Dialect, TableRef

_JOB_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


def check_job_id(job_id: str) -> str:
    """``job_id`` when it is a valid ledger key (1-128 letters, digits, ``_.:-``)."""
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise ConfigError(
            f"job_id must be 1-128 characters of letters, digits, '_', '.', ':' or '-', got {job_id!r}"
        )
    return job_id


def lit(text: str) -> str:
    """``text`` as a SQL string literal (standard strings: every target runs with them)."""
    return "'" + text.replace("'", "''") + "'"


class Connected(ABC):
    """A connection (autocommit off) to the target that holds ``ref``; a context manager.

    A subclass per system names its :class:`Dialect` row and how it connects."""

    dialect: ClassVar[Dialect]

    def __init__(self, endpoint: Endpoint, ref: TableRef, conn: Any = None) -> None:
        self.endpoint = endpoint
        self.ref = ref
        self.conn = conn if conn is not None else self._connected(endpoint)

    @classmethod
    def _connected(cls, endpoint: Endpoint) -> Any:
        try:
            return cls.connect(endpoint)
        except Exception as exc:
            raise TargetError(
                f"cannot connect to the target {endpoint.redacted}: {redact(str(exc))}"
            ) from exc

    @classmethod
    @abstractmethod
    def connect(cls, endpoint: Endpoint) -> Any:
        """A new ADBC connection (autocommit off) to ``endpoint``."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection (a second call does nothing)."""
        with contextlib.suppress(Exception):
            self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _exec(self, sql: str) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
            try:
                return list(cur.fetchall())
            except Exception:
                return []
        finally:
            cur.close()

    def _read(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a statement and end its transaction (a SQLite reader must not hold a lock)."""
        rows = self._exec(sql)
        self.conn.commit()
        return rows

    def rollback(self) -> None:
        """Roll back the open transaction (errors ignored: the connection may be gone)."""
        with contextlib.suppress(Exception):
            self.conn.rollback()

    def q(self, name: str) -> str:
        """``name`` quoted for this target."""
        return self.dialect.quote(name)
