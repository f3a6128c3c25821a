"""The dashboard (`/`) and a page per job (`/jobs/<ref>`), with their script and stylesheet.

One template: the script reads `data-job` on <body> and shows the dashboard or the job. No CDN,
nothing fetched from elsewhere; the charts are inline SVG drawn from metrics.json (charts.js).
"""

from __future__ import annotations

import os

from flask import Blueprint, Flask, Response, render_template

from lorapilot.web.assets import asset_response

bp = Blueprint("pages", __name__, template_folder="templates")
_ASSETS = frozenset(
    {
        "page_common.js",
        "charts.js",
        "controlpilot.js",
        "controlpilot.css",
        "models.js",
        "models.css",
        "cluster.js",
    }
)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/")
def index() -> str:
    return render_template("controlpilot.html", job="", tagpilot_port=tagpilot_port())


@bp.get("/jobs/<ref>")
def job_page(ref: str) -> str:
    return render_template("controlpilot.html", job=ref, tagpilot_port=tagpilot_port())


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    return asset_response("lorapilot.controlpilot", name, _ASSETS)


def tagpilot_port() -> str:
    """TagPilot's port, for the link in the header (same host, its own port)."""
    return os.environ.get("LORAPILOT_TAGPILOT_PORT", "7861")
