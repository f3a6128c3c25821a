"""Failed-login throttling, so the appliance password cannot be guessed at network speed.

Counts failures per client address in a sliding window, in the state file every web service shares
(`WebStateDb`): a guesser gets the same five tries in TagPilot and ControlPilot together, not five
each, and a restart does not reset the count. Behind a proxy all clients share one address, which
makes it a global limit; still safe.
"""

from __future__ import annotations

import time

from lorapilot.web.state_db import WebStateDb

MAX_ROWS = 100_000  # over all clients; only the newest failures are kept beyond it
PER_CLIENT_ROWS = 100  # more than any limit needs: only the newest `max_failures` ever count


class LoginThrottle:
    """At most `max_failures` failed logins per client within `window_s` seconds."""

    def __init__(self, db: WebStateDb, max_failures: int = 5, window_s: float = 60.0) -> None:
        self.db = db
        self.max_failures = max_failures
        self.window_s = window_s

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        now = time.time()
        with self.db.read() as db:
            recent = db.execute(
                "SELECT at FROM login_failures WHERE client = ? AND at > ? ORDER BY at DESC LIMIT ?",
                (client, now - self.window_s, self.max_failures),
            ).fetchall()
        if len(recent) < self.max_failures:
            return 0.0
        return max(0.0, recent[-1][0] + self.window_s - now)

    def record_failure(self, client: str) -> None:
        """Count one failure; failures out of the window, and a client's beyond the limit, are dropped."""
        now = time.time()
        with self.db.transaction() as db:
            db.execute("INSERT INTO login_failures (client, at) VALUES (?, ?)", (client, now))
            db.execute("DELETE FROM login_failures WHERE at <= ?", (now - self.window_s,))
            db.execute(
                "DELETE FROM login_failures WHERE client = ? AND rowid NOT IN "
                "(SELECT rowid FROM login_failures WHERE client = ? ORDER BY at DESC LIMIT ?)",
                (client, client, PER_CLIENT_ROWS),
            )
            db.execute(
                "DELETE FROM login_failures WHERE rowid IN "
                "(SELECT rowid FROM login_failures ORDER BY at DESC LIMIT -1 OFFSET ?)",
                (MAX_ROWS,),
            )

    def reset(self, client: str) -> None:
        with self.db.transaction() as db:
            db.execute("DELETE FROM login_failures WHERE client = ?", (client,))
