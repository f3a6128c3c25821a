"""Server-side record of open login sessions, so a logout ends a session everywhere at once.

The session cookie is signed, not stored, so on its own a copy taken before a logout would stay
valid for its whole week. Each login therefore gets a random id, recorded in the shared state file
(`WebStateDb`) until it expires or is logged out; a cookie whose id is not recorded is not logged in,
in any service and after any restart. Only a hash of the id is stored.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from lorapilot.web.state_db import WebStateDb

MAX_SESSIONS = 10_000  # beyond this the oldest sessions end (log in again), so the file stays small
_REFRESH_S = 3600.0  # a used session's expiry slides like the cookie's, written at most hourly


class SessionRegistry:
    """Open sessions, each alive for `lifetime_s` after it was last used."""

    def __init__(self, db: WebStateDb, lifetime_s: float, max_sessions: int = MAX_SESSIONS) -> None:
        self.db = db
        self.lifetime_s = lifetime_s
        self.max_sessions = max_sessions

    def open(self) -> str:
        """A new session id, recorded; expired sessions and the oldest beyond the limit are dropped."""
        session_id = secrets.token_urlsafe(24)
        now = time.time()
        with self.db.transaction() as db:
            db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            expires = now + self.lifetime_s
            db.execute("INSERT INTO sessions (id, expires) VALUES (?, ?)", (_key(session_id), expires))
            db.execute(
                "DELETE FROM sessions WHERE id IN "
                "(SELECT id FROM sessions ORDER BY expires DESC LIMIT -1 OFFSET ?)",
                (self.max_sessions,),
            )
        return session_id

    def is_open(self, session_id: object) -> bool:
        """True for a recorded, unexpired id (its expiry then slides forward)."""
        if not isinstance(session_id, str) or not session_id:
            return False
        key, now = _key(session_id), time.time()
        with self.db.read() as db:
            row = db.execute("SELECT expires FROM sessions WHERE id = ?", (key,)).fetchone()
        if row is None or row[0] <= now:
            return False
        if row[0] - now < self.lifetime_s - _REFRESH_S:
            with self.db.transaction() as db:
                db.execute("UPDATE sessions SET expires = ? WHERE id = ?", (now + self.lifetime_s, key))
        return True

    def close(self, session_id: object) -> None:
        """End the session: a copy of its cookie is logged out too."""
        if isinstance(session_id, str) and session_id:
            with self.db.transaction() as db:
                db.execute("DELETE FROM sessions WHERE id = ?", (_key(session_id),))

    def count(self) -> int:
        with self.db.read() as db:
            return db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()
