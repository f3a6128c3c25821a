"""The app-factory helper: login, CSRF, throttling and the open-route list, on a small demo service."""

from __future__ import annotations

import re

import pytest
from flask import Blueprint, jsonify

from lorapilot.web import OPEN_ENDPOINTS, create_appliance_app
from lorapilot.workspace import Workspace

demo = Blueprint("demo", __name__)


@demo.route("/api/things", methods=["GET", "POST"])
def things():
    return jsonify(ok=True)


@demo.get("/page")
def page():
    return "<p>secret page</p>"


@pytest.fixture
def app(tmp_path):
    app = create_appliance_app(
        __name__,
        workspace=Workspace.from_env(tmp_path / "ws"),
        title="Demo",
        test_config={"LORAPILOT_PASSWORD": "open sesame", "LOGIN_MAX_FAILURES": 3},
    )
    app.register_blueprint(demo)
    return app


def _login_token(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)


def _login(client, password="open sesame"):
    return client.post("/login", json={"password": password}, headers={"X-CSRF-Token": _login_token(client)})


def test_only_healthz_and_login_are_open(app):
    client = app.test_client()
    assert {"healthz", "auth.login"} == OPEN_ENDPOINTS
    for rule in app.url_map.iter_rules():
        url = re.sub(r"<[^>]+>", "x", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            reply = client.open(url, method=method)
            if rule.endpoint in OPEN_ENDPOINTS:
                assert reply.status_code in (200, 403), (method, url)  # login POST without CSRF: 403
            else:
                assert reply.status_code in (302, 401), (method, url, reply.status_code)
    assert client.get("/page").headers["Location"] == "/login?next=/page"
    assert client.get("/no/such/route").status_code == 302  # unknown URLs reveal nothing either


def test_login_then_csrf_is_required_for_changes(app):
    client = app.test_client()
    reply = _login(client)
    assert reply.status_code == 200
    token = reply.json["csrf_token"]
    assert client.get("/api/things").json == {"ok": True}
    assert client.post("/api/things").status_code == 403
    assert client.post("/api/things", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post("/api/things", headers={"X-CSRF-Token": token}).json == {"ok": True}
    assert client.post("/api/things", data={"csrf_token": token}).json == {"ok": True}
    assert client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 302
    assert client.get("/api/things").status_code == 401


def test_the_login_form_needs_its_token_and_redirects_only_within_the_site(app):
    client = app.test_client()
    assert client.post("/login", data={"password": "open sesame"}).status_code == 403
    token = _login_token(client)
    reply = client.post(
        "/login", data={"password": "open sesame", "csrf_token": token, "next": "//evil.example/x"}
    )
    assert reply.status_code == 302 and reply.headers["Location"] == "/"
    client = app.test_client()
    token = _login_token(client)
    reply = client.post("/login", data={"password": "open sesame", "csrf_token": token, "next": "/page"})
    assert reply.headers["Location"] == "/page"


def test_failed_logins_are_throttled_per_client(app):
    client = app.test_client()
    for _ in range(3):
        assert _login(client, "guess").status_code == 401
    reply = _login(client)  # even the right password waits out the window
    assert reply.status_code == 429 and int(reply.headers["Retry-After"]) > 0
    other = app.test_client()
    reply = other.post(
        "/login",
        json={"password": "open sesame"},
        headers={"X-CSRF-Token": _login_token(other)},
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
    )
    assert reply.status_code == 200


def test_a_changed_password_ends_old_sessions(app, tmp_path):
    client = app.test_client()
    _login(client)
    cookie = client.get_cookie("lorapilot_session").value
    changed = create_appliance_app(
        __name__,
        workspace=Workspace.from_env(tmp_path / "ws"),
        title="Demo",
        test_config={"LORAPILOT_PASSWORD": "new password"},
    )
    changed.register_blueprint(demo)
    again = changed.test_client()
    again.set_cookie("lorapilot_session", cookie)
    assert again.get("/api/things").status_code == 401
    same = app.test_client()
    same.set_cookie("lorapilot_session", cookie)
    assert same.get("/api/things").status_code == 200


def test_responses_carry_security_headers(app):
    reply = app.test_client().get("/login")
    assert "frame-ancestors 'self'" in reply.headers["Content-Security-Policy"]
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("next_url", ["/\t/evil.example", "/\n/x", "/\r\nX-Injected: 1", "/ /evil.example"])
def test_login_never_redirects_to_a_path_browsers_read_as_another_site(app, next_url):
    client = app.test_client()
    assert client.get("/login", query_string={"next": next_url}).status_code == 200
    token = _login_token(client)
    reply = client.post("/login", data={"password": "open sesame", "csrf_token": token, "next": next_url})
    assert reply.status_code == 302 and reply.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('" "', 401),
        ("[]", 401),
        ("42", 401),
        ('{"password": ["open sesame"]}', 401),
        ('{"password": "\\ud800"}', 400),
    ],
)
def test_a_login_body_that_is_not_a_password_is_refused_not_a_crash(app, body, status):
    """Found by the API fuzzer (issue 16): a JSON string or a lone surrogate answered 500."""
    client = app.test_client()
    reply = client.post(
        "/login", data=body, content_type="application/json", headers={"X-CSRF-Token": _login_token(client)}
    )
    assert reply.status_code == status
    assert reply.json == {"error": "wrong password"} or "not valid Unicode" in reply.json["error"]


@pytest.mark.parametrize("forged", ["\xe9", "t\xf6ken" * 10])
def test_a_csrf_token_with_non_ascii_characters_is_refused_not_a_crash(app, forged):
    """Found by the API fuzzer (issue 16): hmac.compare_digest raised TypeError on it, a 500."""
    client = app.test_client()
    assert _login(client).status_code == 200
    assert client.post("/api/things", headers={"X-CSRF-Token": forged}).status_code == 403
    assert client.post("/api/things", data={"csrf_token": forged}).status_code == 403
