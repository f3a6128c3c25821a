"""The jobs API (`/api/jobs/...`): the queue, one job's progress and files, submit, cancel, retry.

Reads and moves go through the spool and the same views as `trainpilot list/status`; cancel and
retry call the spool like `trainpilot cancel/retry` do and keep status.json in step the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_file

from lorapilot.controlpilot import runs, submission
from lorapilot.controlpilot.errors import NotFoundError
from lorapilot.spec import SpecError, SpecIssue
from lorapilot.spec.issues import UNSET
from lorapilot.spool import JobNotFoundError, JobRecord, JobState, NameTakenError, Spool, WrongStateError
from lorapilot.spool.status import mark_state
from lorapilot.spool.views import all_views, job_view, queue_position
from lorapilot.web.app import workspace_of

bp = Blueprint("jobs", __name__, url_prefix="/api/jobs")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def spool() -> Spool:
    return Spool(workspace_of(current_app))


def spool_status(exc: Exception) -> int:
    if isinstance(exc, JobNotFoundError):
        return 404
    if isinstance(exc, NameTakenError | WrongStateError):
        return 409
    return 400


def spec_error_body(exc: SpecError) -> dict[str, Any]:
    """Every problem as `trainpilot validate` prints it (`text`), and field by field (`issues`)."""
    return {
        "error": exc.render().splitlines()[0],
        "text": exc.render(),
        "issues": [_issue(issue) for issue in exc.issues],
    }


def _issue(issue: SpecIssue) -> dict[str, Any]:
    found = None if issue.value is UNSET else repr(issue.value)
    return {
        "field": issue.field,
        "message": issue.message,
        "found": found,
        "accepted": issue.accepted,
        "hint": issue.hint,
        "text": issue.render(),
    }


def summary(view: dict[str, Any]) -> dict[str, Any]:
    """A job view with its progress as a fraction (0..1), for the table and the gauges."""
    status = view["status"] or {}
    total = status.get("total")
    progress = min(1.0, status.get("step", 0) / total) if total else 0.0
    if view["state"] == JobState.DONE:
        progress = 1.0
    return {**view, "progress": progress}


def _record(ref: str) -> tuple[Spool, JobRecord]:
    found = spool()
    return found, found.find(ref)


def _folder(the_spool: Spool, record: JobRecord) -> Path:
    folder = the_spool.run_folder(record)
    if folder is None:
        raise NotFoundError(f"job {record.name} has no run folder (its file could not be read)")
    return folder


@bp.get("")
def list_jobs() -> Response:
    return jsonify(jobs=[summary(view) for view in all_views(spool())])


@bp.post("")
def submit_job() -> tuple[Response, int]:
    record, loaded = submission.submit(spool(), submission.Request.parse(_body()))
    return jsonify(
        id=record.id,
        name=record.name,
        state=record.state.value,
        dialect=loaded.dialect,
        notices=[n.render() for n in loaded.notices],
    ), 201


@bp.post("/validate")
def validate_job() -> Response:
    loaded = submission.validate(workspace_of(current_app), submission.Request.parse(_body()))
    return jsonify(
        ok=True,
        dialect=loaded.dialect,
        spec=loaded.spec.model_dump(mode="json"),
        notices=[n.render() for n in loaded.notices],
    )


@bp.get("/<ref>")
def job_detail(ref: str) -> Response:
    the_spool, record = _record(ref)
    view = summary(job_view(the_spool, record, queue_position(the_spool, record)))
    folder = the_spool.run_folder(record)
    files: dict[str, Any] = {"metrics": {key: [] for key in runs.METRIC_KEYS}, "samples": [], "loras": []}
    if folder is not None:
        files = {
            "metrics": runs.metrics(folder),
            "samples": runs.samples(folder),
            "loras": runs.lora_files(folder),
        }
    prompts = runs.sample_prompts(folder, record.job.spec if record.job is not None else None)
    return jsonify(**view, **files, sample_prompts=prompts)


@bp.get("/<ref>/metrics")
def job_metrics(ref: str) -> Response:
    the_spool, record = _record(ref)
    return jsonify(runs.metrics(_folder(the_spool, record)))


@bp.get("/<ref>/log")
def job_log(ref: str) -> Response:
    the_spool, record = _record(ref)
    lines = max(1, min(request.args.get("lines", 200, type=int) or 200, 5000))
    view = job_view(the_spool, record)
    return jsonify(log=runs.log_tail(_folder(the_spool, record), lines), state=view["state"])


@bp.get("/<ref>/samples/<name>")
def job_sample(ref: str, name: str) -> Response:
    the_spool, record = _record(ref)
    path = runs.sample_path(_folder(the_spool, record), name)
    if path is None:
        raise NotFoundError(f"job {record.name} has no sample {name!r}")
    return send_file(path, max_age=0)


@bp.get("/<ref>/lora")
def job_lora(ref: str) -> Response:
    """The final LoRA (or the last save of a run that stopped early) as a download."""
    the_spool, record = _record(ref)
    folder = _folder(the_spool, record)
    status = job_view(the_spool, record)["status"] or {}
    path = runs.final_lora(folder, record.name, status.get("lora"))
    if path is None:
        raise NotFoundError(f"job {record.name} has no LoRA file yet; it is written when the run ends")
    return send_file(path, as_attachment=True, download_name=path.name, mimetype="application/octet-stream")


@bp.post("/<ref>/cancel")
def cancel_job(ref: str) -> Response:
    the_spool = spool()
    record, now = the_spool.cancel(ref)
    if now:
        mark_state(the_spool.run_folder(record), JobState.CANCELLED)
    return jsonify(id=record.id, name=record.name, cancelled=now, stopping=not now)


@bp.post("/<ref>/retry")
def retry_job(ref: str) -> Response:
    the_spool = spool()
    record = the_spool.retry(ref)
    mark_state(the_spool.run_folder(record), JobState.QUEUED)
    return jsonify(id=record.id, name=record.name, state=record.state.value)


def _body() -> Any:
    """The JSON body, or a plain form's fields with its uploaded config file as `config`."""
    body = request.get_json(silent=True)
    if body is None and (request.form or request.files):
        body = dict(request.form)
        body.pop("csrf_token", None)
        upload = request.files.get("file")
        if upload is not None:
            body["config"] = upload.read().decode("utf-8", errors="replace")
    return body
