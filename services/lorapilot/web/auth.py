"""Login and logout against the appliance password; the session remembers a login for a week.

The session stores a keyed fingerprint of the password, not a bare "logged in" flag, so changing
the password (and restarting) logs every browser out; and the id of a session recorded server-side
(`SessionRegistry`), so a logout ends it in every service, copies of the cookie included.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template_string,
    request,
    session,
    url_for,
)

from lorapilot.web.csrf import csrf_ok, csrf_token, rotate_csrf_token
from lorapilot.web.sessions import SessionRegistry
from lorapilot.web.throttle import LoginThrottle

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
_SESSION_KEY = "auth"
_SESSION_ID = "sid"

_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ service }} · LoRA Pilot login</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{{ csrf_token() }}">
<style>
body{font-family:system-ui,sans-serif;background:#16181d;color:#e8e8e8;display:grid;place-items:center;
height:100vh;margin:0}form{background:#22252d;padding:2rem;border-radius:8px;min-width:18rem}
label{display:block;margin-bottom:.5rem}input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
button{margin-top:1rem;padding:.5rem 1rem;font-size:1rem}.error{color:#ff8080}
</style></head><body>
<form method="post" action="{{ url_for('auth.login') }}">
<h1>{{ service }}</h1>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<input type="hidden" name="next" value="{{ next_url }}">
<label for="password">Appliance password</label>
<input id="password" name="password" type="password" autocomplete="current-password" autofocus required>
<button type="submit">Log in</button>
</form></body></html>
"""


def password_fingerprint(password: str) -> str:
    """What a session stores: the password keyed with the session key, never the password itself."""
    key = str(current_app.secret_key).encode()
    return hmac.new(key, password.encode(), hashlib.sha256).hexdigest()


def is_logged_in() -> bool:
    stored = session.get(_SESSION_KEY)
    expected = current_app.extensions["lorapilot.auth_fingerprint"]
    if not (isinstance(stored, str) and hmac.compare_digest(stored, expected)):
        return False
    return sessions().is_open(session.get(_SESSION_ID))


def throttle() -> LoginThrottle:
    return current_app.extensions["lorapilot.login_throttle"]


def sessions() -> SessionRegistry:
    return current_app.extensions["lorapilot.sessions"]


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple:
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return _page(next_url)
    client = request.remote_addr or "unknown"
    wait = throttle().retry_after(client)
    if wait > 0:
        logger.warning("login throttled for %s (%.0f s left)", client, wait)
        return _refuse(429, f"too many failed logins; try again in {math.ceil(wait)} s", next_url, wait)
    if not csrf_ok():
        return _refuse(403, "the form expired; reload the page and log in again", next_url)
    given = _given_password()
    expected = current_app.config["LORAPILOT_PASSWORD"]
    if not hmac.compare_digest(given.encode(), expected.encode()):
        throttle().record_failure(client)
        logger.info("failed login from %s", client)
        return _refuse(401, "wrong password", next_url)
    throttle().reset(client)
    session.clear()
    session[_SESSION_KEY] = current_app.extensions["lorapilot.auth_fingerprint"]
    session[_SESSION_ID] = sessions().open()
    session.permanent = True
    token = rotate_csrf_token()
    if request.is_json:
        return jsonify(ok=True, csrf_token=token)
    return redirect(next_url)


@bp.post("/logout")
def logout() -> Response:
    sessions().close(session.get(_SESSION_ID))
    session.clear()
    if request.is_json:
        return jsonify(ok=True)
    return redirect(url_for("auth.login"))


@bp.get("/api/session")
def session_info() -> Response:
    """The CSRF token for scripts and API clients that did not get it from a page."""
    return jsonify(authenticated=True, csrf_token=csrf_token())


def _given_password() -> str:
    if request.is_json:
        body = request.get_json(silent=True)
        value = body.get("password", "") if isinstance(body, dict) else ""  # `[]` or `"pw"`: no password
    else:
        value = request.form.get("password", "")
    return value if isinstance(value, str) else ""


def _page(next_url: str, error: str | None = None) -> str:
    service = current_app.config.get("LORAPILOT_SERVICE_TITLE", "LoRA Pilot")
    return render_template_string(_LOGIN_PAGE, service=service, next_url=next_url, error=error)


def _refuse(status: int, message: str, next_url: str, retry_after: float | None = None) -> tuple:
    headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after else {}
    if request.is_json or request.accept_mimetypes.best == "application/json":
        return jsonify(error=message), status, headers
    return _page(next_url, message), status, headers


def _safe_next(value: str | None) -> str:
    """Only same-site paths: `//evil.example` or `https://…` would make the login an open redirect.
    Browsers drop tabs and newlines (`/<tab>/evil.example` becomes `//evil.example`), and in a
    Location header they would split it, so no whitespace or control characters either."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "/"
    return value
