"""TagPilot's named errors; each maps to one HTTP status, and its message tells the user the fix."""

from __future__ import annotations

from lorapilot.web.errors import RefusedRequestError


class TagPilotError(RefusedRequestError):
    """Base: a request TagPilot refuses (answered as JSON with `status` by the web layer)."""


class NotFoundError(TagPilotError):
    status = 404


class ConflictError(TagPilotError):
    status = 409


class BusyError(TagPilotError):
    """The dataset is being captioned; edits would race the captioner."""

    status = 409


class InvalidNameError(TagPilotError):
    """A dataset or file name that cannot be used; the message says what is allowed."""
