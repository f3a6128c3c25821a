"""The ControlPilot app factory: the appliance web layer plus the jobs, monitor and services APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify

from lorapilot.controlpilot import (
    cluster,
    comfy_actions,
    comfy_settings,
    compare,
    docs,
    idle_stop,
    jobs,
    models,
    monitor,
    pages,
    services,
)
from lorapilot.spec import SpecError
from lorapilot.spool import SpoolError
from lorapilot.web import create_appliance_app
from lorapilot.workspace import Workspace

MB = 1024 * 1024
DEFAULTS: dict[str, Any] = {
    "MAX_CONTENT_LENGTH": 4 * MB,  # pasted or uploaded configs only; nothing big comes in here
    "CONTROLPILOT_SUPERVISOR_CONFIG": None,  # supervisord.conf whose socket the services API uses
    "CONTROLPILOT_METRICS_TOKEN": None,  # overrides config/metrics-token (tests)
}


def create_app(test_config: dict[str, Any] | None = None, workspace: Workspace | None = None) -> Flask:
    """`test_config` overrides any setting above or of the web layer (e.g. LORAPILOT_PASSWORD)."""
    workspace = workspace or Workspace.from_env()
    app = create_appliance_app(
        __name__, workspace=workspace, title="ControlPilot", test_config=DEFAULTS | (test_config or {})
    )
    config = app.config["CONTROLPILOT_SUPERVISOR_CONFIG"]
    app.config["CONTROLPILOT_SUPERVISOR_CONFIG"] = Path(config) if config else None
    jobs.init_app(app)
    compare.init_app(app)
    comfy_actions.init_app(app)
    comfy_settings.init_app(app)
    monitor.init_app(app)
    services.init_app(app)
    models.init_app(app)
    pages.init_app(app)
    docs.init_app(app)
    idle_stop.init_app(app)
    cluster.init_app(app)
    app.register_error_handler(SpoolError, _spool_error)
    app.register_error_handler(SpecError, _spec_error)
    return app


def _spool_error(exc: SpoolError) -> tuple[Response, int]:
    return jsonify(error=str(exc)), jobs.spool_status(exc)


def _spec_error(exc: SpecError) -> tuple[Response, int]:
    return jsonify(jobs.spec_error_body(exc)), 400
