"""TagPilot's named errors; each maps to one HTTP status, and its message tells the user the fix."""

from __future__ import annotations


class TagPilotError(Exception):
    """Base: a request TagPilot refuses; `status` is the HTTP status the API answers with."""

    status = 400


class NotFoundError(TagPilotError):
    status = 404


class ConflictError(TagPilotError):
    status = 409


class BusyError(TagPilotError):
    """The dataset is being captioned; edits would race the captioner."""

    status = 409


class InvalidNameError(TagPilotError):
    """A dataset or file name that cannot be used; the message says what is allowed."""
