"""When a person last did something, and what is busy right now, for the idle-stop watcher.

TagPilot, ControlPilot and the watcher are separate processes, so this lives in the shared state
file (`WebStateDb`): a row per source with the time of its last activity, and, while a background
task runs (TagPilot's captioning), the id of the process running it. A busy row whose process has
died (a crash) is not busy: nothing would ever clear it otherwise.

Page activity means what a person does, not what an open tab does by itself: a page load or any
request that changes something. The dashboard's background polling is not activity, or a tab left
open overnight would keep a rented GPU running until morning.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lorapilot.web.state_db import WebStateDb

PAGES = "pages"  # a logged-in person loaded a page or changed something
CAPTIONING = "captioning"  # TagPilot's auto-captioning
_TOUCH_EVERY_S = 5.0  # one process writes page activity at most this often


@dataclass(frozen=True)
class ActivitySnapshot:
    last_at: dict[str, float]  # source → when it was last active (epoch seconds)
    busy: tuple[str, ...]  # sources busy now

    @property
    def last_page_activity(self) -> float | None:
        return self.last_at.get(PAGES)


class ActivityLog:
    def __init__(self, db: WebStateDb) -> None:
        self.db = db
        self._last_touch: dict[str, float] = {}

    def touch(self, source: str = PAGES) -> None:
        """Record activity now (at most every few seconds per process: a burst of requests is one)."""
        now = time.time()
        if now - self._last_touch.get(source, 0.0) < _TOUCH_EVERY_S:
            return
        self._last_touch[source] = now
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO activity (source, at, busy_pid) VALUES (?, ?, NULL) "
                "ON CONFLICT(source) DO UPDATE SET at = excluded.at",
                (source, now),
            )

    @contextmanager
    def busy(self, source: str) -> Iterator[None]:
        """Mark `source` busy (by this process) while the block runs; its end counts as activity."""
        self._set(source, os.getpid())
        try:
            yield
        finally:
            self._set(source, None)

    def _set(self, source: str, pid: int | None) -> None:
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO activity (source, at, busy_pid) VALUES (?, ?, ?) "
                "ON CONFLICT(source) DO UPDATE SET at = excluded.at, busy_pid = excluded.busy_pid",
                (source, time.time(), pid),
            )

    def snapshot(self) -> ActivitySnapshot:
        with self.db.read() as db:
            rows = db.execute("SELECT source, at, busy_pid FROM activity").fetchall()
        busy = tuple(sorted(source for source, _, pid in rows if pid is not None and _alive(pid)))
        return ActivitySnapshot({source: at for source, at, _ in rows}, busy)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
