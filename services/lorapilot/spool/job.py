"""What a job is: its states, the job file (DESIGN §4) and how one is read back.

A job file is either a job envelope that `trainpilot submit`/`run` (or ControlPilot) writes —
a mapping marked `trainpilot_job: 1` holding the run name, queue options and the normalised
TrainSpec — or a plain training config in any dialect dropped into `jobs/incoming/` by hand,
which runs under its file name with default queue options.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from lorapilot.spec import document
from lorapilot.spec.issues import SpecError, SpecIssue, validation_issues
from lorapilot.spec.model import RUN_NAME, check_run_name
from lorapilot.spool.errors import InvalidJobError

if TYPE_CHECKING:
    from lorapilot.spec import TrainSpec

ENVELOPE_KEY = "trainpilot_job"
JOB_SUFFIXES = (".yaml", ".yml", ".toml")
# A job id (its file name's stem) must leave room for `<id>.error`, `<id>.cancel` and the daemon's
# `.<id>.result.json` in a file name (255 bytes); a longer one is shortened when the file moves.
MAX_ID_BYTES = 200


class JobState(StrEnum):
    """A job's state, the one name for it in the spool, status.json, the CLI, ControlPilot and the
    bridge (rq's JobStatus: stored as these strings). The spool folder a job file is in decides its
    state; `interrupted` is a job in running/ that no process trains now (its daemon stopped or
    died): it resumes on the next daemon start."""

    QUEUED = "queued"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def folder(self) -> str:
        """The spool folder of a job in this state (an interrupted job waits in running/)."""
        if self is JobState.QUEUED:
            return "incoming"
        return JobState.RUNNING.value if self is JobState.INTERRUPTED else self.value

    @property
    def terminal(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


# The states with a spool folder of their own: the state a job file's folder gives it.
SPOOL_STATES = (JobState.QUEUED, JobState.RUNNING, JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class Job(BaseModel):
    """The job envelope; unknown keys are errors, like everywhere else in a config."""

    model_config = ConfigDict(extra="forbid")

    trainpilot_job: Literal[1] = Field(1, description="marks the file as a job envelope (version 1)")
    name: str = Field(description="run name: the LoRA is outputs/<name>/<name>.safetensors; unique")
    priority: int = Field(0, ge=-1000, le=1000, description="higher runs first; ties by submit time")
    gpus: int | Literal["all"] = Field(1, description="GPUs for the job; more than 1 trains data-parallel")
    submitted_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # JSON values only: a YAML date, set or !!binary in a spec is refused here, not by the JSON of an API
    spec: dict[str, JsonValue] | None = Field(
        None, description="the normalised TrainSpec (trainpilot validate)"
    )
    profile: str | None = Field(None, description="without `spec`: profile to build the spec from")
    dataset: str | None = Field(None, description="without `spec`: dataset folder or name")
    overrides: list[str] = Field(default_factory=list, description="without `spec`: key=value overrides")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_run_name(value)

    @field_validator("gpus")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be 1 or more, or 'all'")
        return value

    @field_validator("submitted_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        """In UTC, so every reader can show it in its local time (9999-12-31T23:59-12:00 cannot be)."""
        try:
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except OverflowError:
            raise ValueError("is out of the range of dates") from None

    @classmethod
    def for_spec(
        cls,
        spec: TrainSpec,
        *,
        priority: int = 0,
        gpus: int | str = 1,
        profile: str | None = None,
        dataset: str | None = None,
        overrides: list[str] | None = None,
    ) -> Job:
        """The envelope of a validated spec, named after its run; profile, dataset and overrides are
        kept to show how it was asked for."""
        return cls(
            name=spec.output.name,
            priority=priority,
            gpus=gpus,
            spec=spec.model_dump(mode="json"),
            profile=profile,
            dataset=dataset,
            overrides=overrides or [],
        )

    def document(self) -> dict[str, Any]:
        """The envelope as the YAML file holds it (no empty optional keys)."""
        data = self.model_dump(mode="json", exclude_none=True)
        if not data["overrides"]:
            del data["overrides"]
        return data


@dataclass(frozen=True)
class JobRecord:
    """One job file as found in the spool. `job` is None when the file cannot be read (`problem`)."""

    id: str
    state: JobState
    path: Path
    job: Job | None
    plain: bool = False  # a training config dropped in by hand, not an envelope
    problem: str | None = None
    mtime: float = 0.0  # when the file was written: the submit time of a file that says none

    @property
    def name(self) -> str:
        return self.job.name if self.job is not None else self.id

    @property
    def priority(self) -> int:
        return self.job.priority if self.job is not None else 0

    @property
    def submitted_at(self) -> datetime:
        if self.job is not None:
            return self.job.submitted_at
        return datetime.fromtimestamp(self.mtime, UTC)

    def queue_key(self) -> tuple[int, datetime, str]:
        """Run order: priority (higher first), then submit time, then id."""
        return (-self.priority, self.submitted_at, self.id)


def new_id(now: datetime | None = None) -> str:
    """A job id that sorts by submit time and never repeats: `20250211-153000-1a2b3c`."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def job_id_of(path: Path) -> str | None:
    """The id a file in a spool folder stands for, or None for what is not a job file."""
    if path.name.startswith(".") or path.suffix.lower() not in JOB_SUFFIXES:
        return None
    return path.stem


def read_record(path: Path, state: JobState) -> JobRecord:
    """Read one job file; one that cannot be read as a job becomes a record with `problem` set, whatever
    went wrong (one bad file must never hold the queue). OSError: the file is gone (moved meanwhile)."""
    job_id = path.stem
    try:
        if len(os.fsencode(job_id)) > MAX_ID_BYTES:
            issue = SpecIssue(
                "(file name)", f"longer than {MAX_ID_BYTES} bytes", path.name, hint="give it a shorter name"
            )
            raise InvalidJobError([issue])
        job, plain = read_job(path)
    except InvalidJobError as exc:
        problem = exc.render()
    except Exception as exc:  # a parser's own error: a YAML date that does not exist, a huge integer
        why = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        issue = SpecIssue("(file)", f"cannot be read as a job: {why}", file=str(path))
        problem = InvalidJobError([issue]).render()
    else:
        return JobRecord(job_id, state, path, job, plain=plain)
    return JobRecord(job_id, state, path, None, problem=problem, mtime=path.stat().st_mtime)


def read_job(path: Path) -> tuple[Job, bool]:
    """The job a file holds, and whether it is a plain training config rather than an envelope."""
    try:
        data = document.load(path)
    except SpecError as exc:
        raise InvalidJobError(exc.issues) from None
    if ENVELOPE_KEY not in data:
        if not RUN_NAME.fullmatch(path.stem):
            issue = SpecIssue(
                "(file name)",
                "a config run as a job is named by its file name",
                path.name,
                file=str(path),
                hint="rename it with letters, digits, '.', '_' and '-' only (no spaces), at most 128",
            )
            raise InvalidJobError([issue])
        return Job(name=path.stem, submitted_at=datetime.fromtimestamp(path.stat().st_mtime, UTC)), True
    try:
        job = Job.model_validate(data)
    except ValidationError as exc:
        raise InvalidJobError(validation_issues(exc, file=str(path))) from None
    if job.spec is None and not job.profile:
        raise InvalidJobError(
            [
                SpecIssue(
                    "spec",
                    "a job needs the training spec, or a profile to build one from",
                    file=str(path),
                    hint="write the output of `trainpilot validate --json`, or set profile: and dataset:",
                )
            ]
        )
    return job, False
