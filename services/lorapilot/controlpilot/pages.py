"""The dashboard (`/`) and a page per job (`/jobs/<ref>`), with their script and stylesheet.

One template: the script reads `data-job` on <body> and shows the dashboard or the job. No CDN,
nothing fetched from elsewhere; the charts are inline SVG drawn from metrics.json (charts.js).
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, render_template, request

from lorapilot.web.assets import asset_response
from lorapilot.web.public_links import PublicLinks

bp = Blueprint("pages", __name__, template_folder="templates")
_ASSETS = frozenset(
    {
        "page_common.js",
        "charts.js",
        "controlpilot.js",
        "controlpilot.css",
        "models.js",
        "models.css",
        "idle_stop.js",
        "cluster.js",
    }
)
_LINKS = "lorapilot.public_links"


def init_app(app: Flask) -> None:
    """Reads the public-address settings once: a bad one stops the start with a message naming it."""
    app.extensions[_LINKS] = PublicLinks.from_env()
    app.context_processor(lambda: {"service_links": service_links()})
    app.register_blueprint(bp)


def service_links() -> dict[str, str]:
    """Each web service's address as the user's browser opens it (lorapilot.web.public_links)."""
    links: PublicLinks = current_app.extensions[_LINKS]
    return links.services(request.host_url)


@bp.get("/")
def index() -> str:
    return render_template("controlpilot.html", job="")


@bp.get("/jobs/<ref>")
def job_page(ref: str) -> str:
    return render_template("controlpilot.html", job=ref)


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    return asset_response("lorapilot.controlpilot", name, _ASSETS)
