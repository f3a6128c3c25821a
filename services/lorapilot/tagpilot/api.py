"""TagPilot's JSON API (`/api/...`); the page and any script use the same routes.

Login and CSRF are enforced for every route by the appliance web layer, not here. Errors are
`TagPilotError`s turned into `{"error": message}` with their status.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_file

from lorapilot.tagpilot import caption_edits, checks, export
from lorapilot.tagpilot.autocaption import AutoCaptioner, CaptionerCache
from lorapilot.tagpilot.captioners import choice_from_json, discover
from lorapilot.tagpilot.errors import BusyError, NotFoundError, TagPilotError
from lorapilot.tagpilot.intake import Intake, UploadLimits, iter_upload_files
from lorapilot.tagpilot.names import check_dataset_name
from lorapilot.tagpilot.store import Dataset, DatasetStore, check_settings
from lorapilot.tagpilot.stored_image import describe_stored_image
from lorapilot.tagpilot.trash import Trash
from lorapilot.web.app import tmp_dir, workspace_of

bp = Blueprint("api", __name__, url_prefix="/api")


@dataclass
class Services:
    """Everything the routes share, built once per app."""

    store: DatasetStore
    trash: Trash
    captions: AutoCaptioner
    limits: UploadLimits


def init_app(app: Flask) -> None:
    workspace = workspace_of(app)
    store = DatasetStore(workspace)
    cache = CaptionerCache(workspace, idle_s=float(app.config["TAGPILOT_CAPTIONER_IDLE_S"]))
    limits = UploadLimits(
        max_image_bytes=int(app.config["TAGPILOT_MAX_IMAGE_BYTES"]),
        max_zip_total_bytes=int(app.config["TAGPILOT_MAX_ZIP_TOTAL_BYTES"]),
    )
    app.extensions["tagpilot"] = Services(store, Trash(store), AutoCaptioner(store, cache), limits)
    app.register_blueprint(bp)


def services() -> Services:
    return current_app.extensions["tagpilot"]


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise TagPilotError("send a JSON object body (Content-Type: application/json)")
    return body


def _dataset(name: str) -> Dataset:
    return services().store.get(name)


def _not_busy(name: str) -> None:
    if services().captions.busy(name):
        raise BusyError(f"dataset {name!r} is being auto-captioned; wait for the job or cancel it")


def _summary(dataset: Dataset) -> dict[str, Any]:
    records = dataset.records()
    captioned = sum(1 for record in records if dataset.caption(record.name))
    return {
        "name": dataset.name,
        "settings": dataset.settings(),
        "images": len(records),
        "captioned": captioned,
        "suggested_repeats": export.suggest_repeats(len(records)),
        "busy": services().captions.busy(dataset.name),
    }


# -- datasets -------------------------------------------------------------------------------------
@bp.get("/datasets")
def list_datasets() -> Response:
    store = services().store
    return jsonify(datasets=[_summary(store.get(name)) for name in store.names()])


@bp.post("/datasets")
def create_dataset() -> tuple[Response, int]:
    body = _body()
    settings = {key: body[key] for key in ("family", "caption_style", "trigger_word") if key in body}
    dataset = services().store.create(check_dataset_name(body.get("name")), settings)
    return jsonify(_summary(dataset)), 201


@bp.get("/datasets/<name>")
def get_dataset(name: str) -> Response:
    dataset = _dataset(name)
    images = [{**asdict(record), "caption": dataset.caption(record.name)} for record in dataset.records()]
    return jsonify({**_summary(dataset), "image_list": images})


@bp.patch("/datasets/<name>")
def update_dataset(name: str) -> Response:
    body = _body()
    _not_busy(name)
    dataset = _dataset(name)
    new_name = body.pop("name", None)
    check_settings(body)  # all checks before any change, so a refused request changes nothing
    if new_name is not None and new_name != name:
        dataset = services().store.rename(name, check_dataset_name(new_name))
    if body:
        dataset.update_settings(body)
    return jsonify(_summary(dataset))


@bp.delete("/datasets/<name>")
def delete_dataset(name: str) -> Response:
    _not_busy(name)
    return jsonify(trash_id=services().trash.delete_dataset(name))


@bp.post("/datasets/<name>/upload")
def upload(name: str) -> Response:
    dataset = _dataset(name)
    files = list(iter_upload_files(request.files))
    if not files:
        raise TagPilotError("no files in the upload; send them as multipart field 'files'")
    with dataset.lock:
        result = Intake(dataset, services().limits, tmp_dir(current_app)).receive(files)
    return jsonify(accepted=result.accepted, rejected=result.rejected, summary=_summary(dataset))


@bp.get("/datasets/<name>/report")
def report(name: str) -> Response:
    return jsonify(checks.dataset_report(_dataset(name)))


# -- images and captions --------------------------------------------------------------------------
@bp.get("/datasets/<name>/images/<image>")
def image_file(name: str, image: str) -> Response:
    dataset = _dataset(name)
    dataset.record(image)
    return send_file(dataset.path_of(image), max_age=0)


@bp.get("/datasets/<name>/images/<image>/thumb")
def image_thumb(name: str, image: str) -> Response:
    dataset = _dataset(name)
    record = dataset.record(image)
    thumb = dataset.thumbs / f"{record.name.rsplit('.', 1)[0]}.jpg"
    if not thumb.is_file():
        describe_stored_image(dataset.path_of(image))
    return send_file(thumb, mimetype="image/jpeg", max_age=0)


@bp.delete("/datasets/<name>/images/<image>")
def delete_image(name: str, image: str) -> Response:
    _not_busy(name)
    return jsonify(trash_id=services().trash.delete_image(name, image))


@bp.get("/datasets/<name>/images/<image>/caption")
def get_caption(name: str, image: str) -> Response:
    dataset = _dataset(name)
    dataset.record(image)
    return jsonify(image=image, caption=dataset.caption(image))


@bp.put("/datasets/<name>/images/<image>/caption")
def put_caption(name: str, image: str) -> Response:
    caption = _body().get("caption")
    if not isinstance(caption, str) or len(caption) > 10_000:
        raise TagPilotError("'caption' must be text of at most 10000 characters")
    dataset = _dataset(name)
    dataset.record(image)
    return jsonify(image=image, caption=dataset.set_caption(image, caption))


@bp.post("/datasets/<name>/captions/bulk")
def bulk_captions(name: str) -> Response:
    _not_busy(name)
    return jsonify(caption_edits.bulk_edit(_dataset(name), _body()))


@bp.get("/datasets/<name>/tags")
def tags(name: str) -> Response:
    return jsonify(tags=caption_edits.frequency_table(_dataset(name)))


# -- auto-captioning ------------------------------------------------------------------------------
@bp.get("/captioners")
def captioners() -> Response:
    from lorapilot.tagpilot.captioners import BACKENDS  # noqa: PLC0415

    captions = services().captions
    active = captions.active()
    return jsonify(
        models=discover(workspace_of(current_app)),
        backends=sorted(BACKENDS),
        cache=captions.cache.status(),
        active_job=active.to_json() if active else None,
    )


@bp.post("/datasets/<name>/autocaption")
def autocaption(name: str) -> tuple[Response, int]:
    body = _body()
    images = body.get("images")
    if images is not None and not (isinstance(images, list) and all(isinstance(i, str) for i in images)):
        raise TagPilotError("'images' must be a list of image names")
    choice = choice_from_json(body.get("captioner"))
    job = services().captions.start(name, choice, str(body.get("mode", "ignore-existing")), images)
    return jsonify(job.to_json()), 202


@bp.get("/jobs/<job_id>")
def job_status(job_id: str) -> Response:
    return jsonify(services().captions.get(job_id).to_json())


@bp.post("/jobs/<job_id>/cancel")
def job_cancel(job_id: str) -> Response:
    return jsonify(services().captions.cancel(job_id).to_json())


# -- export ---------------------------------------------------------------------------------------
@bp.post("/datasets/<name>/export")
def export_dataset(name: str) -> Response:
    _not_busy(name)
    body = _body()
    dataset = _dataset(name)
    repeats = body.get("repeats", export.suggest_repeats(len(dataset.records())))
    result = export.export_folder(
        dataset,
        workspace_of(current_app),
        services().trash,
        repeats=repeats,
        name=body.get("name"),
        replace=bool(body.get("replace", False)),
    )
    return jsonify(result)


@bp.get("/datasets/<name>/export.zip")
def export_zip(name: str) -> Response:
    dataset = _dataset(name)
    try:
        repeats = int(request.args.get("repeats", export.suggest_repeats(len(dataset.records()))))
    except ValueError as exc:
        raise TagPilotError("repeats must be a whole number") from exc
    handle = export.write_zip(dataset, repeats, tmp_dir(current_app))
    return send_file(
        handle, mimetype="application/zip", as_attachment=True, download_name=f"{repeats}_{dataset.name}.zip"
    )


# -- trash ----------------------------------------------------------------------------------------
@bp.get("/trash")
def trash_list() -> Response:
    return jsonify(entries=services().trash.entries())


@bp.post("/trash/<entry_id>/restore")
def trash_restore(entry_id: str) -> Response:
    body = request.get_json(silent=True) or {}
    new_name = body.get("name") if isinstance(body, dict) else None
    if new_name is not None:
        check_dataset_name(new_name)
    return jsonify(services().trash.restore(entry_id, new_name))


@bp.delete("/trash/<entry_id>")
def trash_purge(entry_id: str) -> Response:
    services().trash.purge(entry_id)
    return jsonify(purged=entry_id)


__all__ = ["NotFoundError", "bp", "init_app"]
