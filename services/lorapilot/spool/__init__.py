"""The job spool shared by the CLI, the daemon and ControlPilot (DESIGN §4)."""

from lorapilot.spool.errors import (
    InvalidJobError,
    JobNotFoundError,
    NameTakenError,
    SpoolError,
    WrongStateError,
)
from lorapilot.spool.job import Job, JobRecord, JobState, read_job
from lorapilot.spool.status import RunStatus, read_status, write_status
from lorapilot.spool.store import Claim, Spool

__all__ = [
    "Claim",
    "InvalidJobError",
    "Job",
    "JobNotFoundError",
    "JobRecord",
    "JobState",
    "NameTakenError",
    "RunStatus",
    "Spool",
    "SpoolError",
    "WrongStateError",
    "read_job",
    "read_status",
    "write_status",
]
