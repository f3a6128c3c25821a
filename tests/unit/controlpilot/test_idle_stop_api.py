"""`/api/idle-stop`: the settings form's checks, and cancel / postpone of the watcher's countdown
(written for the watcher and shown in the answer at once)."""

from __future__ import annotations

import time

from lorapilot.appliance.idle_settings import load_idle_settings
from lorapilot.appliance.idle_state import IdleState, read_control, write_state


def countdown(ws, seconds: float = 300.0) -> IdleState:
    now = time.time()
    state = IdleState(
        phase="countdown", mode="idle", checked_at=now, episode=now - 60, deadline=now + seconds
    )
    write_state(ws, state)
    return state


def test_settings_without_an_action_are_refused_with_the_fix(session, ws, monkeypatch):
    monkeypatch.delenv("RUNPOD_POD_ID", raising=False)
    reply = session.call("PUT", "/api/idle-stop/settings", json={"mode": "idle"})
    assert reply.status_code == 400
    assert "idle stop has no action" in reply.json["error"]
    reply = session.call("PUT", "/api/idle-stop/settings", json={"mode": "idle", "idle_minutes": "soon"})
    assert "idle_minutes: Input should be a valid number" in reply.json["error"]
    assert not ws.idle_config.exists()


def test_saved_settings_land_in_config_idle_yaml(session, ws):
    body = {"mode": "after_queue", "grace_minutes": 2, "command": "poweroff"}
    view = session.ok("PUT", "/api/idle-stop/settings", json=body)
    assert view["saved"] == "/workspace/config/idle.yaml"
    assert view["settings"]["mode"] == "after_queue"
    assert load_idle_settings(ws).grace_minutes == 2
    assert view["watcher_running"] is False  # no watcher in this test: the page says so


def test_cancel_and_postpone_need_a_countdown(session):
    assert session.call("POST", "/api/idle-stop/cancel").status_code == 409
    assert "no idle-stop countdown" in session.call("POST", "/api/idle-stop/postpone", json={}).json["error"]


def test_cancel_shows_at_once_and_tells_the_watcher(session, ws):
    countdown(ws)
    assert session.ok("GET", "/api/idle-stop")["state"]["seconds_left"] > 290
    view = session.ok("POST", "/api/idle-stop/cancel")
    assert view["state"]["phase"] == "cancelled"
    assert read_control(ws).cancelled_at is not None


def test_postpone_moves_the_deadline(session, ws):
    state = countdown(ws)
    view = session.ok("POST", "/api/idle-stop/postpone", json={"minutes": 30})
    assert abs(view["state"]["deadline"] - (state.deadline + 1800)) < 5
    assert session.call("POST", "/api/idle-stop/postpone", json={"minutes": 0}).status_code == 400
