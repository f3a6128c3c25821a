"""The small SQLite file every web service shares: open login sessions, recent failed logins and
the last user activity (lorapilot.web.activity).

TagPilot and ControlPilot are separate processes (and gunicorn restarts them), so what a logout
revokes or a wrong password counts must live in the workspace, not in one process's memory. The
file sits beside the session key in `<workspace>/config/`, owner-only; every call opens its own
connection, so threads and processes share it through SQLite's own locking.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from lorapilot.web.errors import RefusedRequestError
from lorapilot.workspace import Workspace

logger = logging.getLogger(__name__)

STATE_FILE = "web-state.sqlite3"
_BUSY_TIMEOUT_S = 10.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires);
CREATE TABLE IF NOT EXISTS login_failures (client TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failures_by_client ON login_failures (client, at);
CREATE INDEX IF NOT EXISTS failures_by_time ON login_failures (at);
CREATE TABLE IF NOT EXISTS activity (source TEXT PRIMARY KEY, at REAL NOT NULL, busy_pid INTEGER);
"""


class WebStateError(RefusedRequestError):
    """The shared state file cannot be used (a read-only or full disk): no request can be checked."""

    status = 503


class WebStateDb:
    """`transaction()` gives a connection inside one write transaction, `read()` one for reads."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of(cls, workspace: Workspace) -> WebStateDb:
        return cls(workspace.config / STATE_FILE)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._connection() as connection:
            yield connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT: a read-then-write (count, then trim) sees no other writer between."""
        with self._connection() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.rollback()
                raise
            connection.commit()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise self._unusable(exc) from exc
            # a damaged file: start afresh (everyone logs in again) rather than refuse every request
            logger.warning("%s is damaged (%s); replacing it with an empty one", self.path, exc)
            self.path.unlink(missing_ok=True)
            connection = self._open()
        try:
            with closing(connection):
                yield connection
        except sqlite3.OperationalError as exc:
            raise self._unusable(exc) from exc

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # owner-only from the start
        connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection

    def _unusable(self, exc: Exception) -> WebStateError:
        logger.error("cannot use %s: %s", self.path, exc)
        return WebStateError(
            f"the login state file {self.path} cannot be used ({exc}); free disk space or fix its "
            "permissions, then reload"
        )
