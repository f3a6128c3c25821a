"""A page's own scripts and stylesheets, served from the service's package: no CDN, nothing fetched
from elsewhere, and only the names a service lists (so no path ever reaches the file system)."""

from __future__ import annotations

from importlib import resources

from flask import Response, abort

MIME_TYPES = {".js": "text/javascript", ".css": "text/css"}


def asset_response(package: str, name: str, names: frozenset[str]) -> Response:
    """`package`'s assets/<name> when `name` is one of `names`; 404 otherwise."""
    if name not in names:
        abort(404)
    text = (resources.files(package) / "assets" / name).read_text(encoding="utf-8")
    mimetype = MIME_TYPES[name[name.rindex(".") :]]
    return Response(text, mimetype=mimetype, headers={"Cache-Control": "no-cache"})
