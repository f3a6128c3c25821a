"""`status.json` of a run: what ControlPilot, `trainpilot status` and `run` read while a job trains.

Rewritten atomically (temp file, fsync, rename, fsync of the folder) so a reader never sees a
torn file and a power cut leaves the previous version, never an empty one.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

STATUS_FILE = "status.json"
# A job's state as status.json shows it: the spool states, plus `interrupted` for a job left in
# running/ that no process trains right now (the daemon stopped); it resumes on the next start.
RunState = Literal["queued", "running", "interrupted", "done", "failed", "cancelled"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class RunStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    state: RunState
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
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None  # heartbeat: refreshed every few seconds while training
    finished_at: datetime | None = None
    lora: str | None = None  # the final LoRA, or the last step-numbered save when it stopped early
    error: str | None = None


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old file or the new one, nothing between."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; other services read these files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=1) + "\n").encode())


def write_status(folder: Path, status: RunStatus) -> None:
    write_json(folder / STATUS_FILE, status.model_dump(mode="json"))


def read_status(folder: Path) -> RunStatus | None:
    """The run's status, or None when there is none yet (or it is unreadable, e.g. hand-edited)."""
    try:
        return RunStatus.model_validate_json((folder / STATUS_FILE).read_bytes())
    except (OSError, ValidationError):
        return None
