"""What the daemon and a job's training process tell each other: the assignment the process starts
with, and the result it leaves in a file for the daemon to read once it has ended. Both cross a
process boundary, so both are typed here rather than spelt as dicts on either side."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from lorapilot.atomic_files import write_json_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assignment:
    """What the daemon tells a training process (picklable: it crosses the process boundary)."""

    workspace: str
    job_path: str  # the job file in running/
    result_path: str
    devices: str | None = None  # CUDA_VISIBLE_DEVICES for this process; None leaves it as it is
    processes: int = 1  # more than 1: data-parallel over that many processes (one per GPU)
    temp_dir: str | None = None  # the daemon's temp folder (TMPDIR); the process holds it while it lives


class Outcome(StrEnum):
    """How a training process ended; the daemon decides the job's state from it."""

    DONE = "done"  # trained to the end, the LoRA is written
    FAILED = "failed"  # `error` says why
    INTERRUPTED = "interrupted"  # stopped on a signal after saving its state; it can resume


class WorkerResult(BaseModel):
    """The result file a training process leaves; none at all means it was killed."""

    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    error: str | None = None
    folder: Path | None = None  # the run folder, once the spec named one
    step: int | None = None  # the last step trained (saved, for a finished or interrupted run)
    lora: str | None = None  # the LoRA a finished run wrote
    warnings: list[str] = []  # what went wrong without failing the run (a sample render)

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.model_dump(mode="json"))

    @classmethod
    def read(cls, path: Path) -> WorkerResult | None:
        """The result at `path`, or None when the process left none (or one this daemon cannot read)."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as exc:
            log.warning("ignoring the unreadable result file %s: %s", path, exc)
            return None
