"""Acceptance 2: every route refuses a request without a session (but /healthz and the login form),
a state-changing request without the CSRF token is refused, and wrong passwords are rate-limited."""

from __future__ import annotations

import re

PASSWORD = "controlpilot-unit-password"  # the app fixture's (conftest.py)

OPEN = {"healthz", "auth.login"}


def _routes(app):
    found = []
    for rule in app.url_map.iter_rules():
        url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", "x", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, url, rule.endpoint))
    return found


def test_every_route_but_healthz_and_login_refuses_without_a_session(app):
    client = app.test_client()
    routes = _routes(app)
    endpoints = {endpoint for _, _, endpoint in routes}
    assert {
        "jobs.submit_job",
        "jobs.job_lora",
        "monitor.metrics",
        "services.control",
        "pages.index",
    } <= endpoints
    for method, url, endpoint in routes:
        if endpoint in OPEN or endpoint == "static":
            continue
        reply = client.open(url, method=method, json={})
        assert reply.status_code in (302, 401), (method, url, reply.status_code)
        if reply.status_code == 302:
            assert reply.headers["Location"].startswith("/login?next=")
        else:
            assert reply.get_json() == {"error": "login required"}
    assert client.get("/healthz").get_json() == {"ok": True, "service": "ControlPilot"}
    login = client.get("/login")
    assert login.status_code == 200 and "ControlPilot" in login.text and "jobs-table" not in login.text


def test_a_session_without_the_csrf_token_cannot_change_anything(app, session, ws):
    for method, url, endpoint in _routes(app):
        if method == "GET" or endpoint in OPEN:
            continue
        reply = session.http.open(
            url, method=method, json={"profile": "quick_test", "dataset": "demo", "name": "x"}
        )
        assert reply.status_code == 403, (method, url, reply.status_code)
    assert not list(ws.job_dir("incoming").iterdir())
    assert session.call("POST", "/api/jobs/validate", json={"profile": "quick_test"}).status_code != 403


def test_repeated_wrong_passwords_are_rate_limited(app, login):
    client = app.test_client()
    for _ in range(3):
        assert login.attempt(client, "wrong password").status_code == 401
    throttled = login.attempt(client, PASSWORD)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert "too many failed logins" in throttled.get_json()["error"]


def test_pages_render_for_a_logged_in_user(session):
    page = session.call("GET", "/")
    assert page.status_code == 200 and 'id="jobs-table"' in page.text and "csrf-token" in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert 'data-job="abc"' in session.call("GET", "/jobs/abc").text
    assert session.call("GET", "/assets/controlpilot.js").status_code == 200
    assert session.call("GET", "/assets/other.js").status_code == 404
    assert "http" not in session.call("GET", "/").text.split("<body")[0].replace("http-equiv", "")


def test_a_request_name_is_a_run_name_never_a_path(session, ws, tmp_path):
    outside = tmp_path / "outside-the-workspace"
    profile = ws.config / "profiles" / "quick_test.yaml"
    before = profile.read_bytes() if profile.exists() else None
    config = "model:\n  pretrained_model_name_or_path: runwayml/stable-diffusion-v1-5\n"
    for path in ("/api/jobs/validate", "/api/jobs"):
        for name in (str(outside), "../../../config/profiles/quick_test", "../missing/folder/x"):
            reply = session.call("POST", path, json={"config": config, "dataset": "demo", "name": name})
            assert reply.status_code == 400, (path, name, reply.status_code)
            assert "name" in reply.get_data(as_text=True)
    assert not outside.exists()
    assert (profile.read_bytes() if profile.exists() else None) == before
    assert not list(ws.job_dir("incoming").iterdir())


def test_an_infinite_priority_or_gpu_count_is_a_bad_request(session):
    for field in ("priority", "gpus"):
        body = f'{{"profile": "quick_test", "dataset": "demo", "{field}": 1e309}}'
        reply = session.call("POST", "/api/jobs/validate", data=body, content_type="application/json")
        assert reply.status_code == 400 and field in reply.get_data(as_text=True)
