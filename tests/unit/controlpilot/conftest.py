"""A ControlPilot app on a temporary workspace, and a logged-in Flask test client for it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from lorapilot.controlpilot import create_app
from lorapilot.testing.datasets import write_demo_images
from lorapilot.workspace import Workspace

PASSWORD = "controlpilot-unit-password"


@dataclass
class Session:
    """A logged-in test client that sends the CSRF token, like the page does."""

    http: FlaskClient
    csrf: str

    def call(self, method: str, path: str, **kwargs: Any):
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return self.http.open(path, method=method, headers=headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.call(method, path, **kwargs)
        assert reply.status_code < 300, (method, path, reply.status_code, reply.get_data(as_text=True))
        return reply.get_json()


@pytest.fixture
def ws(tmp_path) -> Workspace:
    workspace = Workspace.from_env(tmp_path / "ws").ensure()
    write_demo_images(workspace.images / "2_demo", 2)
    return workspace


@pytest.fixture
def app(ws) -> Flask:
    return create_app({"LORAPILOT_PASSWORD": PASSWORD, "LOGIN_MAX_FAILURES": 3}, workspace=ws)


def login_token(client: FlaskClient) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)


def log_in(client: FlaskClient, password: str = PASSWORD):
    return client.post("/login", json={"password": password}, headers={"X-CSRF-Token": login_token(client)})


def open_session(app: Flask) -> Session:
    client = app.test_client()
    reply = log_in(client)
    assert reply.status_code == 200, reply.text
    return Session(client, reply.get_json()["csrf_token"])


@pytest.fixture
def login():
    """`login(app)`: a logged-in Session on any ControlPilot app; `login.attempt(client, password)`."""
    open_session.attempt = log_in
    return open_session


@pytest.fixture
def session(app) -> Session:
    return open_session(app)
