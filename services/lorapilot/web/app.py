"""The app-factory helper: a Flask app whose every route is behind the appliance password.

Protection is one `before_request` hook over the whole app, not a decorator per view, so a route
added later cannot forget it. Open without a session: `/healthz` and the login form only.
"""

from __future__ import annotations

import hmac
import logging
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from flask import Flask, Request, current_app, jsonify, redirect, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from lorapilot.errors import LoraPilotError
from lorapilot.web import auth
from lorapilot.web.activity import ActivityLog
from lorapilot.web.bodies import TextOnlyJSON
from lorapilot.web.credentials import appliance_password, session_key
from lorapilot.web.csrf import csrf_ok, csrf_token
from lorapilot.web.errors import RefusedRequestError
from lorapilot.web.sessions import SessionRegistry
from lorapilot.web.state_db import WebStateDb
from lorapilot.web.throttle import LoginThrottle
from lorapilot.workspace import Workspace

logger = logging.getLogger(__name__)

OPEN_ENDPOINTS = frozenset({"healthz", "auth.login"})
COOKIE_NAME = "lorapilot_session"
_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'"
)


class WorkspaceRequest(Request):
    """Spools large uploads into the workspace's temp folder instead of the system /tmp."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        folder = current_app.config["LORAPILOT_TMP"]
        return tempfile.SpooledTemporaryFile(max_size=512 * 1024, mode="rb+", dir=folder)


def create_appliance_app(
    import_name: str,
    *,
    workspace: Workspace,
    title: str,
    test_config: dict[str, Any] | None = None,
) -> Flask:
    """A Flask app with login, CSRF, throttling and `/healthz`; the service adds its blueprints."""
    workspace.ensure()
    workspace.tmp.mkdir(parents=True, exist_ok=True)
    app = Flask(import_name, static_folder=None)
    app.request_class = WorkspaceRequest
    app.json = TextOnlyJSON(app)
    app.config.update(
        SECRET_KEY=session_key(workspace),
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(days=7),
        LORAPILOT_SERVICE_TITLE=title,
        LORAPILOT_TMP=str(workspace.tmp),
        LOGIN_MAX_FAILURES=5,
        LOGIN_WINDOW_S=60.0,
    )
    app.config.from_mapping(test_config or {})
    if "LORAPILOT_PASSWORD" not in app.config:
        app.config["LORAPILOT_PASSWORD"] = appliance_password(workspace)
    app.extensions["lorapilot.workspace"] = workspace
    state = WebStateDb.of(workspace)  # shared with the other services: one logout, one throttle
    app.extensions["lorapilot.login_throttle"] = LoginThrottle(
        state, app.config["LOGIN_MAX_FAILURES"], app.config["LOGIN_WINDOW_S"]
    )
    app.extensions["lorapilot.sessions"] = SessionRegistry(
        state, app.config["PERMANENT_SESSION_LIFETIME"].total_seconds()
    )
    app.extensions["lorapilot.activity"] = ActivityLog(state)  # what idle stop counts as someone here
    with app.app_context():
        app.extensions["lorapilot.auth_fingerprint"] = auth.password_fingerprint(
            app.config["LORAPILOT_PASSWORD"]
        )
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.register_blueprint(auth.bp)
    app.add_url_rule("/healthz", "healthz", _healthz)
    app.before_request(_guard)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(LoraPilotError, _refused)
    return app


def _refused(exc: LoraPilotError) -> tuple[WerkzeugResponse, int]:
    """An error the user can fix, answered with its message: a refused request with its own status,
    any other (a bad path, image or dataset) with 400. Services may register narrower handlers."""
    return jsonify(error=str(exc)), exc.status if isinstance(exc, RefusedRequestError) else 400


def _healthz() -> WerkzeugResponse:
    return jsonify(ok=True, service=current_app.config["LORAPILOT_SERVICE_TITLE"])


def _guard() -> WerkzeugResponse | tuple | None:
    """Refuse anything but the open endpoints without a session, and unsafe methods without CSRF."""
    if request.endpoint in OPEN_ENDPOINTS or _bearer_ok():
        return None
    if not auth.is_logged_in():
        if _wants_json():
            return jsonify(error="login required"), 401
        return redirect(f"/login?next={quote(request.full_path.rstrip('?'), safe='/?=&')}")
    if not csrf_ok():
        return jsonify(error="missing or wrong CSRF token; reload the page"), 403
    if _is_person_acting():
        current_app.extensions["lorapilot.activity"].touch()
    return None


def _is_person_acting() -> bool:
    """A page load or a change, not a page's background polling (see lorapilot.web.activity)."""
    if request.method not in ("GET", "HEAD"):
        return True
    return not _wants_json() and "/assets/" not in request.path


def allow_bearer_token(app: Flask, endpoint: str, token: Callable[[], str | None]) -> None:
    """Let a read-only `endpoint` also answer `Authorization: Bearer <token>` without a session
    (for scrapers such as Prometheus). `token()` is read per request; None or "" disables it."""
    app.extensions.setdefault("lorapilot.bearer_endpoints", {})[endpoint] = token


def _bearer_ok() -> bool:
    source = current_app.extensions.get("lorapilot.bearer_endpoints", {}).get(request.endpoint)
    if source is None or request.method not in ("GET", "HEAD"):
        return False
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    expected = source()
    if scheme.lower() != "bearer" or not sent or not expected:
        return False
    return hmac.compare_digest(sent.strip().encode(), expected.encode())


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _security_headers(response: WerkzeugResponse) -> WerkzeugResponse:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html" or request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _http_error(exc: HTTPException) -> WerkzeugResponse | HTTPException:
    """JSON errors for API routes; HTML pages keep werkzeug's own error pages."""
    if not _wants_json():
        return exc
    message = exc.description or exc.name
    if exc.code == 413 and current_app.config.get("MAX_CONTENT_LENGTH"):
        limit = current_app.config["MAX_CONTENT_LENGTH"] / 2**20
        message = f"the request is larger than the {limit:.0f} MB limit; send fewer or smaller files at once"
    response = jsonify(error=message)
    response.status_code = exc.code or 500
    return response


def workspace_of(app: Flask) -> Workspace:
    return app.extensions["lorapilot.workspace"]


def tmp_dir(app: Flask) -> Path:
    return Path(app.config["LORAPILOT_TMP"])
