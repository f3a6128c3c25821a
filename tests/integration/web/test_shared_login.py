"""TagPilot and ControlPilot share one login: a logout ends a session in both (copies of the cookie
included, restarts too), and failed logins in either count against one limit (issue 16, finding 9)."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from lorapilot import controlpilot, tagpilot
from lorapilot.workspace import Workspace

PASSWORD = "shared-login-password"
COOKIE = "lorapilot_session"


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace.from_env(tmp_path / "ws").ensure()


def start_tagpilot(ws: Workspace) -> Flask:
    """A TagPilot process on the workspace; calling it again is what a restart gives."""
    return tagpilot.create_app({"LORAPILOT_PASSWORD": PASSWORD}, workspace=ws)


def start_controlpilot(ws: Workspace) -> Flask:
    return controlpilot.create_app({"LORAPILOT_PASSWORD": PASSWORD}, workspace=ws)


def attempt(client: FlaskClient, password: str):
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", json={"password": password}, headers={"X-CSRF-Token": token})


def with_cookie(app: Flask, cookie: str) -> FlaskClient:
    """A browser that only has a copy of someone's session cookie."""
    client = app.test_client()
    client.set_cookie(COOKIE, cookie)
    return client


def test_a_cookie_copied_before_logout_is_logged_out_in_both_services_and_after_a_restart(ws):
    tags, control = start_tagpilot(ws), start_controlpilot(ws)
    browser = tags.test_client()
    csrf = attempt(browser, PASSWORD).get_json()["csrf_token"]
    copied = browser.get_cookie(COOKIE).value
    assert with_cookie(tags, copied).get("/api/datasets").status_code == 200
    assert with_cookie(control, copied).get("/api/jobs").status_code == 200  # one login serves both

    assert browser.post("/logout", json={}, headers={"X-CSRF-Token": csrf}).get_json() == {"ok": True}

    assert with_cookie(tags, copied).get("/api/datasets").status_code == 401
    assert with_cookie(control, copied).get("/api/jobs").status_code == 401
    page = with_cookie(control, copied).get("/")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    assert with_cookie(start_controlpilot(ws), copied).get("/api/jobs").status_code == 401


def test_a_session_outlives_a_restart_of_both_services_until_it_logs_out(ws):
    browser = start_controlpilot(ws).test_client()
    csrf = attempt(browser, PASSWORD).get_json()["csrf_token"]
    cookie = browser.get_cookie(COOKIE).value
    tags = start_tagpilot(ws)
    assert with_cookie(tags, cookie).get("/api/datasets").status_code == 200
    restarted = with_cookie(start_controlpilot(ws), cookie)
    assert restarted.get("/api/jobs").status_code == 200
    assert restarted.post("/logout", headers={"X-CSRF-Token": csrf}).status_code == 302
    assert with_cookie(tags, cookie).get("/api/datasets").status_code == 401


def test_logging_in_again_does_not_revive_a_logged_out_cookie(ws):
    tags = start_tagpilot(ws)
    first = tags.test_client()
    csrf = attempt(first, PASSWORD).get_json()["csrf_token"]
    old = first.get_cookie(COOKIE).value
    first.post("/logout", headers={"X-CSRF-Token": csrf})
    second = tags.test_client()
    assert attempt(second, PASSWORD).status_code == 200
    assert with_cookie(tags, old).get("/api/datasets").status_code == 401
    assert second.get("/api/datasets").status_code == 200


@pytest.mark.parametrize("sixth_try_on", ["tagpilot", "controlpilot"])
def test_failed_logins_in_both_services_count_together(ws, sixth_try_on):
    tags, control = start_tagpilot(ws), start_controlpilot(ws)
    for app in (tags, control, tags, control, tags):  # five wrong passwords, split between the two
        assert attempt(app.test_client(), "a wrong guess").status_code == 401
    sixth = {"tagpilot": tags, "controlpilot": control}[sixth_try_on]
    refused = attempt(sixth.test_client(), PASSWORD)
    assert refused.status_code == 429, refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) > 0
    assert "too many failed logins" in refused.get_json()["error"]
    restarted = start_tagpilot(ws) if sixth_try_on == "controlpilot" else start_controlpilot(ws)
    assert attempt(restarted.test_client(), PASSWORD).status_code == 429  # a restart does not reset it


def test_another_client_address_is_not_held_back_by_a_guesser(ws):
    tags, control = start_tagpilot(ws), start_controlpilot(ws)
    for app in (tags, control) * 3:
        attempt(app.test_client(), "a wrong guess")
    other = control.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.9.8.7"
    assert attempt(other, PASSWORD).status_code == 200
