"""ControlPilot's named errors; each maps to one HTTP status, and its message tells the user the fix."""

from __future__ import annotations


class ControlPilotError(Exception):
    """Base: a request ControlPilot refuses; `status` is the HTTP status the API answers with."""

    status = 400


class NotFoundError(ControlPilotError):
    status = 404


class ConflictError(ControlPilotError):
    status = 409


class UnavailableError(ControlPilotError):
    """Something ControlPilot talks to (supervisord) is not there."""

    status = 503
