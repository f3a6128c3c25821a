"""`status.json` of a run: what ControlPilot, `trainpilot status` and `run` read while a job trains.

Rewritten atomically (temp file, fsync, rename, fsync of the folder) so a reader never sees a
torn file and a power cut leaves the previous version, never an empty one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from lorapilot.atomic_files import write_json_atomic
from lorapilot.spool.job import JobState

STATUS_FILE = "status.json"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Attempt(BaseModel):
    """One start of a job's training: where it ran and how it ended (None while it runs)."""

    model_config = ConfigDict(extra="ignore")

    attempt: int
    node: str | None = None  # the cluster node (a Ray node's name), or the host on one machine
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None  # done | failed | interrupted | node lost | cancelled


class RunStatus(BaseModel):
    """One run's status.json. Every change is validated when it is made (`changed`, or assigning a
    field), so a misspelt state is refused by its writer instead of making the file unreadable."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    id: str
    name: str
    state: JobState
    step: int = 0
    total: int | None = None
    loss: float | None = None
    lr: float | None = None
    it_per_s: float | None = None
    eta_s: float | None = None
    epoch: int | None = None
    attempt: int = 0  # processes started for this job so far
    pid: int | None = None  # the training process while one runs
    host: str | None = None
    node: str | None = None  # in cluster mode: the Ray node the job runs on now (or ran on last)
    attempts: list[Attempt] = []  # in cluster mode: each start, so a resume elsewhere is visible
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None  # heartbeat: refreshed every few seconds while training
    finished_at: datetime | None = None
    lora: str | None = None  # the final LoRA, or the last step-numbered save when it stopped early
    error: str | None = None
    warnings: list[str] = []  # what went wrong without failing the run (a sample render)

    def changed(self, **fields: Any) -> RunStatus:
        """A copy with `fields` changed, validated as a whole; an unknown field name is refused too."""
        unknown = sorted(fields.keys() - type(self).model_fields.keys())
        if unknown:
            raise TypeError(f"RunStatus has no field {', '.join(unknown)}")
        return type(self).model_validate(self.model_dump() | fields)


def write_status(folder: Path, status: RunStatus) -> None:
    write_json_atomic(folder / STATUS_FILE, status.model_dump(mode="json"))


def read_status(folder: Path) -> RunStatus | None:
    """The run's status, or None when there is none yet (or it is unreadable, e.g. hand-edited)."""
    try:
        return RunStatus.model_validate_json((folder / STATUS_FILE).read_bytes())
    except (OSError, ValidationError):
        return None


def mark_state(folder: Path | None, state: JobState) -> None:
    """Keep a run's status.json in step with a spool move made without a daemon (cancel, retry)."""
    status = read_status(folder) if folder is not None else None
    if status is not None:
        now = utcnow()
        finished = now if state is JobState.CANCELLED else status.finished_at
        changed = status.changed(state=state, error=None, pid=None, updated_at=now, finished_at=finished)
        write_status(folder, changed)
