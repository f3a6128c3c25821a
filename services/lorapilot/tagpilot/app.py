"""The TagPilot app factory: the appliance web layer plus TagPilot's API and page."""

from __future__ import annotations

from typing import Any

from flask import Flask

from lorapilot.tagpilot import api, pages
from lorapilot.web import create_appliance_app
from lorapilot.workspace import Workspace

MB = 1024 * 1024
DEFAULTS: dict[str, Any] = {
    "MAX_CONTENT_LENGTH": 2048 * MB,  # one request; the page sends big selections in batches
    "MAX_FORM_PARTS": 2000,
    "TAGPILOT_MAX_IMAGE_BYTES": 100 * MB,
    "TAGPILOT_MAX_ZIP_TOTAL_BYTES": 4096 * MB,
    "TAGPILOT_CAPTIONER_IDLE_S": 300.0,
}


def create_app(test_config: dict[str, Any] | None = None, workspace: Workspace | None = None) -> Flask:
    """`test_config` overrides any setting above or of the web layer (e.g. LORAPILOT_PASSWORD)."""
    workspace = workspace or Workspace.from_env()
    app = create_appliance_app(
        __name__, workspace=workspace, title="TagPilot", test_config=DEFAULTS | (test_config or {})
    )
    api.init_app(app)
    pages.init_app(app)
    return app
