"""Failed-login throttling, so the appliance password cannot be guessed at network speed.

Counts failures per client address in a sliding window. It lives in the process: gunicorn runs the
web services with one worker (see `lorapilot.tagpilot.serve`), so every request sees the same
counts. Behind a proxy all clients share one address, which makes it a global limit; still safe.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class LoginThrottle:
    """At most `max_failures` failed logins per client within `window_s` seconds."""

    def __init__(self, max_failures: int = 5, window_s: float = 60.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        with self._lock:
            recent = self._recent(client, time.monotonic())
            if len(recent) < self.max_failures:
                return 0.0
            return max(0.0, recent[0] + self.window_s - time.monotonic())

    def record_failure(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(client, now).append(now)

    def reset(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str, now: float) -> deque[float]:
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        if len(self._failures) > 10_000:  # forget idle clients so the table cannot grow without bound
            for key in [k for k, v in self._failures.items() if not v and k != client]:
                del self._failures[key]
        return recent
