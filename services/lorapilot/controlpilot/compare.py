"""The A/B view of two runs: where their normalised configs differ, their loss and learning-rate
curves on one chart, and their samples side by side."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from lorapilot.controlpilot import jobs, runs
from lorapilot.controlpilot.errors import ControlPilotError
from lorapilot.spool import JobRecord, Spool
from lorapilot.spool.views import job_view

bp = Blueprint("compare", __name__, url_prefix="/api")
_MISSING = "(not set)"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": [1, {"c": 2}]}}` → `{"a.b[0]": 1, "a.b[1].c": 2}` (the field paths of the CLI)."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat or {prefix: {}}
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Every field whose value differs, in field order; a field only one side has shows `(not set)`."""
    left, right = flatten(a), flatten(b)
    keys = sorted(set(left) | set(right))
    return [
        {"field": key, "a": left.get(key, _MISSING), "b": right.get(key, _MISSING)}
        for key in keys
        if left.get(key, _MISSING) != right.get(key, _MISSING)
    ]


def _side(spool: Spool, record: JobRecord) -> dict[str, Any]:
    view = jobs.summary(job_view(spool, record))
    folder = spool.run_folder(record)
    return {
        "id": record.id,
        "name": record.name,
        "state": view["state"],
        "progress": view["progress"],
        "status": view["status"],
        "samples": runs.samples(folder) if folder is not None else [],
        "metrics": runs.metrics(folder) if folder is not None else {key: [] for key in runs.METRIC_KEYS},
        "sample_prompts": runs.sample_prompts(folder, record.job.spec if record.job is not None else None),
    }


@bp.get("/compare")
def compare() -> Response:
    refs = request.args.get("a"), request.args.get("b")
    if not all(refs):
        raise ControlPilotError("name two runs: /api/compare?a=NAME|ID&b=NAME|ID")
    spool = jobs.spool()
    a, b = (spool.find(ref) for ref in refs)
    specs = [(r.job.spec if r.job is not None else None) or {} for r in (a, b)]
    return jsonify(a=_side(spool, a), b=_side(spool, b), differences=differences(*specs))
