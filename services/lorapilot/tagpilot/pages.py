"""The one page (`/`) and its script and stylesheet; no CDN, nothing fetched from elsewhere."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, render_template

from lorapilot import families
from lorapilot.web.assets import asset_response

bp = Blueprint("pages", __name__, template_folder="templates")
_ASSETS = frozenset({"tagpilot.js", "tagpilot.css"})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/")
def index() -> str:
    return render_template("tagpilot.html", families=families.all_families())


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    return asset_response("lorapilot.tagpilot", name, _ASSETS)
