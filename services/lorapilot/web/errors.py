"""The base of every web service's named errors: a refused request whose message tells the user the
fix, answered by the web layer as JSON `{"error": message}` with the error's HTTP status."""

from __future__ import annotations

from lorapilot.errors import LoraPilotError


class RefusedRequestError(LoraPilotError):
    """Raise a subclass; `status` is the HTTP status the API answers with."""

    status = 400


class InvalidBodyError(RefusedRequestError):
    """A JSON request body that does not fit its model (lorapilot.web.bodies); the message names each
    field that is wrong and what it takes."""
