"""The one page (`/`) and its script and stylesheet; no CDN, nothing fetched from elsewhere."""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Flask, Response, abort, render_template

bp = Blueprint("pages", __name__, template_folder="templates")
_ASSETS = {"tagpilot.js": "text/javascript", "tagpilot.css": "text/css"}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/")
def index() -> str:
    return render_template("tagpilot.html")


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    if name not in _ASSETS:
        abort(404)
    text = (resources.files("lorapilot.tagpilot") / "assets" / name).read_text(encoding="utf-8")
    return Response(text, mimetype=_ASSETS[name], headers={"Cache-Control": "no-cache"})
