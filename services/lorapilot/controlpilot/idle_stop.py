"""Idle stop in ControlPilot (`/api/idle-stop`): the watcher's countdown for the dashboard's banner,
its cancel and postpone, and the settings form (config/idle.yaml).

The watcher (lorapilot.appliance.idle_stop) is a separate program; this side only reads its state
file and writes the user's cancel or postpone into the control file it reads on its next check.
The answer already shows the cancel or postponement, so the banner does not wait for that check.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, ClassVar

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import Field

from lorapilot.appliance.idle_settings import (
    API_KEY_ENV,
    POD_ID_ENV,
    IdleSettings,
    IdleSettingsError,
    load_idle_settings,
    parse_idle_settings,
    save_idle_settings,
)
from lorapilot.appliance.idle_state import IdleControl, read_control, read_state, write_control
from lorapilot.controlpilot.errors import ConflictError
from lorapilot.web.app import workspace_of
from lorapilot.web.bodies import RequestBody
from lorapilot.workspace import Workspace

log = logging.getLogger(__name__)
bp = Blueprint("idle_stop", __name__, url_prefix="/api/idle-stop")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


class PostponeBody(RequestBody):
    not_an_object: ClassVar[str] = 'send a JSON object, e.g. {"minutes": 30}'

    minutes: float = Field(30.0, gt=0, le=24 * 60)


@bp.get("")
def show() -> Response:
    return jsonify(_view(workspace_of(current_app)))


@bp.put("/settings")
def change() -> Response:
    ws = workspace_of(current_app)
    # the body is the whole of config/idle.yaml, checked by the file's own model (fields left out:
    # their defaults), so the form and the file get the same messages
    settings = parse_idle_settings(request.get_json(silent=True), "idle stop settings")
    path = save_idle_settings(ws, settings)
    write_control(ws, IdleControl())  # a fresh start: an old cancel or postponement does not carry over
    log.info("idle stop settings saved to %s (mode %s)", path, settings.mode)
    return jsonify(_view(ws) | {"saved": ws.display(path)})


@bp.post("/cancel")
def cancel() -> Response:
    """Cancel this countdown: the next one starts after new activity (or, in mode at, tomorrow)."""
    ws = workspace_of(current_app)
    _countdown_or_conflict(ws)
    write_control(ws, IdleControl(cancelled_at=time.time()))
    log.info("idle stop countdown cancelled from ControlPilot")
    return jsonify(_view(ws))


@bp.post("/postpone")
def postpone() -> Response:
    """Push the stop back by `minutes` from its current deadline."""
    ws = workspace_of(current_app)
    body = PostponeBody.parse(request.get_json(silent=True) or {})
    state = _countdown_or_conflict(ws)
    base = max(time.time(), state.deadline or 0.0)
    write_control(ws, IdleControl(postponed_until=base + body.minutes * 60))
    log.info("idle stop postponed by %.0f minutes from ControlPilot", body.minutes)
    return jsonify(_view(ws))


@bp.errorhandler(IdleSettingsError)
def _settings_error(exc: IdleSettingsError) -> tuple[Response, int]:
    return jsonify(error=str(exc)), 400


def _countdown_or_conflict(ws: Workspace) -> Any:
    state = read_state(ws)
    if state is None or state.phase not in ("countdown", "cancelled"):
        raise ConflictError("no idle-stop countdown is running")
    return state


def _view(ws: Workspace) -> dict[str, Any]:
    """Settings, the watcher's state with the user's cancel or postponement applied, and whether the
    watcher is alive (a countdown nobody acts on must not look real)."""
    try:
        settings, settings_error = load_idle_settings(ws), None
    except IdleSettingsError as exc:
        settings, settings_error = IdleSettings(), str(exc)
    state = read_state(ws)
    control = read_control(ws)
    view: dict[str, Any] = {
        "settings": settings.model_dump(),
        "settings_error": settings_error,
        "on_runpod": bool(os.environ.get(POD_ID_ENV) and os.environ.get(API_KEY_ENV)),
        "pod_id": os.environ.get(POD_ID_ENV) or None,
        "watcher_running": state is not None and not state.stale(),
        "state": None,
    }
    if state is None:
        return view
    if state.phase == "countdown" and state.episode is not None:
        if control.cancelled_at is not None and control.cancelled_at >= state.episode:
            state = state.model_copy(update={"phase": "cancelled", "deadline": None})
        elif control.postponed_until and state.deadline is not None:
            state = state.model_copy(update={"deadline": max(state.deadline, control.postponed_until)})
    view["state"] = state.model_dump(
        include={"phase", "mode", "checked_at", "busy", "deadline", "action", "fired_at", "error"}
    ) | {"seconds_left": state.seconds_left()}
    return view
