"""A TagPilot app (Flask test client, logged in) and a dataset store on a throwaway workspace."""

from __future__ import annotations

import re

import pytest

from lorapilot.tagpilot import create_app
from lorapilot.tagpilot.store import DatasetStore
from lorapilot.workspace import Workspace


@pytest.fixture
def workspace(tmp_path):
    return Workspace.from_env(tmp_path / "ws").ensure()


@pytest.fixture
def store(workspace):
    return DatasetStore(workspace)


@pytest.fixture
def app(workspace):
    return create_app({"LORAPILOT_PASSWORD": "pw", "TAGPILOT_CAPTIONER_IDLE_S": 0.5}, workspace=workspace)


@pytest.fixture
def api(app):
    """A logged-in test client whose every request carries the CSRF header."""
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    token = client.post("/login", json={"password": "pw"}, headers={"X-CSRF-Token": token}).json["csrf_token"]
    client.environ_base["HTTP_X_CSRF_TOKEN"] = token
    return client
