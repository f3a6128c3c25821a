"""The one base of every error a user can cause (a bad config, image, dataset, request or path).

Its message is meant for the user as it is: it names what is wrong and the fix, so an entry point
(a command line, the training process, a web service) shows it without a traceback. Any other
exception is a bug, and keeps its traceback for the log.
"""

from __future__ import annotations


class LoraPilotError(Exception):
    """Base: `str(error)` is the whole message for the user."""
