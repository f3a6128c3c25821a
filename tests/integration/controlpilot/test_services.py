"""Acceptance 4: stopping and starting `tagpilot` through ControlPilot's API changes its state in the
real supervisord running the repo's supervisord.conf."""

from __future__ import annotations

import requests


def _tagpilot_answers(stack) -> bool:
    try:
        port = stack.env["LORAPILOT_TAGPILOT_PORT"]
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok
    except requests.ConnectionError:
        return False


def test_stop_and_start_tagpilot_through_the_api(stack):
    client = stack.client()
    listed = {s["name"]: s["state"] for s in client.ok("GET", "/api/services")["services"]}
    assert listed["tagpilot"] == "RUNNING" and listed["trainpilot"] == "RUNNING"

    stopped = client.ok("POST", "/api/services/tagpilot/stop")
    assert stopped["state"] == "STOPPED" and stopped["pid"] is None
    assert stack.states()["tagpilot"] == "STOPPED"
    assert not _tagpilot_answers(stack)

    started = client.ok("POST", "/api/services/tagpilot/start")
    assert started["state"] == "RUNNING" and started["pid"]
    assert stack.states()["tagpilot"] == "RUNNING"
    log = client.ok("GET", "/api/services/tagpilot/log?bytes=20000")["log"]
    assert "Listening at" in log or "Booting worker" in log

    client.csrf = "forged"  # a request without this session's CSRF token changes nothing
    assert client.call("POST", "/api/services/tagpilot/stop").status_code == 403
    assert stack.states()["tagpilot"] == "RUNNING"
