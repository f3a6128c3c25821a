"""The Models page (`/models`) and its API: the model inventory with disk usage, registered paths,
hub downloads with progress, the model catalog's pulls, and the LoRA library with each file's
training metadata."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from pydantic import SecretStr

from lorapilot.appliance import model_catalog, model_pull
from lorapilot.controlpilot import lora_library, model_inventory
from lorapilot.controlpilot.errors import ControlPilotError
from lorapilot.controlpilot.hub_download import (
    DownloadBody,
    DownloadRequest,
    Downloads,
    Task,
    resolve_token,
    scrub,
)
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


@bp.get("/api/models/catalog")
def list_catalog() -> Response:
    """The catalog's entries, each with where it goes and whether it is there already."""
    ws = workspace_of(current_app)
    entries = [
        entry.model_dump() | {"target": ws.display(entry.target(ws)), "pulled": entry.target(ws).exists()}
        for entry in model_catalog.load(ws)
    ]
    return jsonify(entries=entries, user_file=ws.display(ws.models_config))


class CatalogPull(RequestBody):
    """The body of `POST /api/models/catalog/pull`: an entry's name, and a token for a gated repo."""

    name: str = ""
    token: SecretStr | None = None  # for this pull only; never kept, never shown


@bp.post("/api/models/catalog/pull")
def pull_catalog_entry() -> tuple[Response, int]:
    """Pull an entry in the background; its progress is listed with the hub downloads."""
    ws = workspace_of(current_app)
    body = CatalogPull.parse(_body())
    entry = model_catalog.find(ws, body.name.strip())
    given = body.token.get_secret_value() if body.token is not None else None
    token, source = resolve_token(ws, given)
    if entry.gated and not token:
        raise ControlPilotError(model_pull.gated_message(entry, ws))
    task = Task(entry.repo, entry.filename, entry.target(ws), source)
    download = _downloads().start_task(
        task,
        lambda progress: model_pull.pull(ws, entry, progress.bytes_seen, token=token),
        lambda exc: scrub(str(exc) if isinstance(exc, model_pull.PullError) else repr(exc), token),
    )
    return jsonify(download=download.to_json()), 202


@bp.get("/api/loras")
def list_loras() -> Response:
    return jsonify(loras=[entry.to_json() for entry in lora_library.library(workspace_of(current_app))])


def _body() -> Any:
    """The JSON body, or a plain form's fields."""
    body = request.get_json(silent=True)
    if body is None and request.form:
        body = {key: value for key, value in request.form.items() if key != "csrf_token"}
    return body
