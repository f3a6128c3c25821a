"""The services API (`/api/services/...`): status, start, stop, restart and log tail of every
supervisord program, over supervisord's XML-RPC on its unix socket (never TCP)."""

from __future__ import annotations

import logging
import xmlrpc.client
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from supervisor import xmlrpc as supervisor_xmlrpc

from lorapilot.appliance.health import supervisor_proxy
from lorapilot.controlpilot.errors import ConflictError, ControlPilotError, NotFoundError, UnavailableError
from lorapilot.controlpilot.pages import service_links

logger = logging.getLogger(__name__)
bp = Blueprint("services", __name__, url_prefix="/api/services")
LOG_TAIL_DEFAULT_BYTES = 16 * 1024
LOG_TAIL_MAX_BYTES = 1024 * 1024
Faults = supervisor_xmlrpc.Faults


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _proxy() -> Any:
    config: Path | None = current_app.config["CONTROLPILOT_SUPERVISOR_CONFIG"]
    if config is None:
        raise UnavailableError(
            "ControlPilot was started without --supervisor-config; services cannot be managed here"
        )
    return supervisor_proxy(config).supervisor


def _call(method: str, *args: Any) -> Any:
    """One XML-RPC call; supervisord's faults become errors the page can show."""
    try:
        return getattr(_proxy(), method)(*args)
    except xmlrpc.client.Fault as fault:
        raise _fault_error(fault, args[0] if args else "") from None
    except OSError as exc:
        logger.warning("supervisord unreachable for %s: %s", method, exc)
        raise UnavailableError(f"supervisord is not reachable over its socket ({exc}); is it up?") from None


def _fault_error(fault: xmlrpc.client.Fault, name: str) -> ControlPilotError:
    code = fault.faultCode
    if code == Faults.BAD_NAME:
        return NotFoundError(f"supervisord has no program {name!r}")
    if code == Faults.ALREADY_STARTED:
        return ConflictError(f"{name} is already running")
    if code == Faults.NOT_RUNNING:
        return ConflictError(f"{name} is not running")
    if code in (Faults.SPAWN_ERROR, Faults.ABNORMAL_TERMINATION):
        return ConflictError(f"{name} did not start; see its log: {fault.faultString}")
    return ControlPilotError(f"supervisord refused: {fault.faultString}")


def program(info: dict[str, Any]) -> dict[str, Any]:
    """One program as the page shows it; a web service's `link` opens it from the user's browser."""
    return {
        "name": info["name"],
        "link": service_links().get(info["name"]),
        "group": info["group"],
        "state": info["statename"],
        "pid": info["pid"] or None,
        "description": info["description"],
        "started_at": info["start"] or None,
        "exit_status": info["exitstatus"],
    }


@bp.get("")
def list_services() -> Response:
    return jsonify(services=[program(info) for info in _call("getAllProcessInfo")])


@bp.get("/<name>")
def service(name: str) -> Response:
    return jsonify(program(_call("getProcessInfo", name)))


@bp.post("/<name>/<action>")
def control(name: str, action: str) -> Response:
    """start, stop or restart one program; waits until supervisord reports the new state."""
    if action not in ("start", "stop", "restart"):
        raise NotFoundError(f"unknown action {action!r}; use start, stop or restart")
    if action in ("stop", "restart"):
        info = _call("getProcessInfo", name)
        if info["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
            _call("stopProcess", name, True)
        elif action == "stop":
            raise ConflictError(f"{name} is not running ({info['statename']})")
    if action in ("start", "restart"):
        _call("startProcess", name, True)
    logger.info("%s %s through ControlPilot", action, name)
    return jsonify(program(_call("getProcessInfo", name)))


@bp.get("/<name>/log")
def log_tail(name: str) -> Response:
    size = max(1, min(request.args.get("bytes", LOG_TAIL_DEFAULT_BYTES, type=int) or 1, LOG_TAIL_MAX_BYTES))
    text, offset, overflow = _call("tailProcessStdoutLog", name, 0, size)
    return jsonify(name=name, log=text, offset=offset, truncated=bool(overflow))
