"""The base of every web service's named errors: a refused request whose message tells the user the
fix, answered by the web layer as JSON `{"error": message}` with the error's HTTP status."""

from __future__ import annotations

from lorapilot.errors import LoraPilotError


class RefusedRequestError(LoraPilotError):
    """Raise a subclass; `status` is the HTTP status the API answers with."""

    status = 400
