"""The named ways a spool operation can fail; each message says what to do next."""

from __future__ import annotations

from lorapilot.errors import LoraPilotError
from lorapilot.spec.issues import SpecError


class SpoolError(LoraPilotError):
    """Base of every spool error; the message is meant for the user as is."""


class JobNotFoundError(SpoolError):
    """No job has that id or name."""


class NameTakenError(SpoolError):
    """Another job (or an earlier run folder) already uses the run name."""


class WrongStateError(SpoolError):
    """The job exists but is not in a state the operation applies to (e.g. retrying a done job)."""


class InvalidJobError(SpecError, SpoolError):
    """A job file that cannot be read as a job; its issues name the file and the field."""
