"""ControlPilot's named errors; each maps to one HTTP status, and its message tells the user the fix."""

from __future__ import annotations

from lorapilot.web.errors import RefusedRequestError


class ControlPilotError(RefusedRequestError):
    """Base: a request ControlPilot refuses (answered as JSON with `status` by the web layer)."""


class NotFoundError(ControlPilotError):
    status = 404


class ConflictError(ControlPilotError):
    status = 409


class UnavailableError(ControlPilotError):
    """Something ControlPilot talks to (supervisord) is not there."""

    status = 503
