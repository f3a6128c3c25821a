"""The Models page (`/models`) and its API: the model inventory with disk usage, registered paths,
hub downloads with progress, and the LoRA library with each file's training metadata."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request

from lorapilot.controlpilot import lora_library, model_inventory
from lorapilot.controlpilot.hub_download import DownloadBody, DownloadRequest, Downloads
from lorapilot.web.app import workspace_of
from lorapilot.web.bodies import RequestBody

bp = Blueprint("models", __name__, template_folder="templates")
_DOWNLOADS = "lorapilot.hub_downloads"


def init_app(app: Flask) -> None:
    app.extensions[_DOWNLOADS] = Downloads(workspace_of(app))
    app.register_blueprint(bp)


def _downloads() -> Downloads:
    return current_app.extensions[_DOWNLOADS]


@bp.get("/models")
def models_page() -> str:
    return render_template("models.html")


@bp.get("/api/models")
def list_models() -> Response:
    ws = workspace_of(current_app)
    entries = model_inventory.inventory(ws)
    return jsonify(
        models=[entry.to_json() for entry in entries],
        disk=model_inventory.disk_usage(ws, entries).to_json(),
        registered=model_inventory.registered_paths(ws),
        family_labels=model_inventory.FAMILY_LABELS,
    )


class ModelPath(RequestBody):
    """The body of register and unregister: a model's path inside the workspace."""

    path: str | None = None  # the inventory says what to send when it is missing


@bp.post("/api/models/register")
def register_model() -> tuple[Response, int]:
    entry = model_inventory.register(workspace_of(current_app), ModelPath.parse(_body()).path)
    return jsonify(model=entry.to_json()), 201


@bp.route("/api/models/unregister", methods=["POST", "DELETE"])
def unregister_model() -> Response:
    path = model_inventory.unregister(workspace_of(current_app), ModelPath.parse(_body()).path)
    return jsonify(unregistered=path)


@bp.post("/api/models/download")
def start_download() -> tuple[Response, int]:
    body = DownloadBody.parse(_body())
    download = _downloads().start(DownloadRequest.from_body(body), body.token_value())
    return jsonify(download=download.to_json()), 202


@bp.get("/api/models/downloads")
def list_downloads() -> Response:
    return jsonify(downloads=[download.to_json() for download in _downloads().history()])


@bp.get("/api/loras")
def list_loras() -> Response:
    return jsonify(loras=[entry.to_json() for entry in lora_library.library(workspace_of(current_app))])


def _body() -> Any:
    """The JSON body, or a plain form's fields."""
    body = request.get_json(silent=True)
    if body is None and request.form:
        body = {key: value for key, value in request.form.items() if key != "csrf_token"}
    return body
