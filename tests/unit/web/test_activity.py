"""Page activity for idle stop: a page load or a change counts, a page's background polling and its
assets do not; a busy mark ends with its block, and one left by a dead process is not busy."""

from __future__ import annotations

import subprocess
import sys

from lorapilot.web import create_appliance_app
from lorapilot.web.activity import CAPTIONING, ActivityLog
from lorapilot.web.state_db import WebStateDb
from lorapilot.workspace import Workspace
from tests.unit.web.test_guard import _login_token, demo  # its /api/things and /page


def test_page_loads_and_changes_count_polling_does_not(tmp_path):
    ws = Workspace.from_env(tmp_path / "ws")
    app = create_appliance_app(__name__, workspace=ws, title="Demo", test_config={"LORAPILOT_PASSWORD": "pw"})
    app.register_blueprint(demo)
    client = app.test_client()
    token = _login_token(client)
    client.post("/login", json={"password": "pw"}, headers={"X-CSRF-Token": token})
    log = ActivityLog(WebStateDb.of(ws))
    assert log.snapshot().last_page_activity is None  # logging in is not using a page
    client.get("/api/things", headers={"Accept": "application/json"})
    assert log.snapshot().last_page_activity is None
    client.get("/page", headers={"Accept": "text/html"})
    assert log.snapshot().last_page_activity is not None


def test_busy_ends_with_its_block_and_a_dead_process_is_not_busy(tmp_path):
    db = WebStateDb(tmp_path / "state.sqlite3")
    log = ActivityLog(db)
    with log.busy(CAPTIONING):
        assert log.snapshot().busy == (CAPTIONING,)
    assert log.snapshot().busy == ()
    finished = subprocess.Popen([sys.executable, "-c", "pass"])  # a process that has ended: a crash
    finished.wait()
    with db.transaction() as conn:
        conn.execute("UPDATE activity SET busy_pid = ? WHERE source = ?", (finished.pid, CAPTIONING))
    assert log.snapshot().busy == ()
