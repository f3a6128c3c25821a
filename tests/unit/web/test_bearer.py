"""`allow_bearer_token`: one read-only endpoint answers a configured bearer token without a session."""

from __future__ import annotations

from flask import jsonify

from lorapilot.web import create_appliance_app
from lorapilot.web.app import allow_bearer_token
from lorapilot.workspace import Workspace


def _app(tmp_path, token):
    app = create_appliance_app(
        __name__,
        workspace=Workspace.from_env(tmp_path / "ws"),
        title="Demo",
        test_config={"LORAPILOT_PASSWORD": "x"},
    )
    app.add_url_rule("/scrape", "scrape", lambda: jsonify(ok=True), methods=["GET", "POST"])
    app.add_url_rule("/other", "other", lambda: jsonify(ok=True))
    allow_bearer_token(app, "scrape", lambda: token[0])
    return app


def test_only_the_named_endpoint_and_only_reads_accept_the_token(tmp_path):
    token = ["s3cret-token"]
    client = _app(tmp_path, token).test_client()
    auth = {"Authorization": "Bearer s3cret-token", "Accept": "application/json"}
    assert client.get("/scrape", headers=auth).status_code == 200
    assert client.get("/scrape", headers={**auth, "Authorization": "bearer s3cret-token"}).status_code == 200
    assert client.post("/scrape", headers=auth).status_code == 401
    assert client.get("/other", headers=auth).status_code == 401
    assert client.get("/scrape", headers={**auth, "Authorization": "Bearer wrong"}).status_code == 401
    token[0] = None  # no token configured: the endpoint needs a session again
    assert client.get("/scrape", headers=auth).status_code == 401
