"""A job as the CLI's `list`/`status --json` and ControlPilot's jobs API show it: its spool facts
joined with its run's status.json, as one JSON-ready dict."""

from __future__ import annotations

from typing import Any

from lorapilot.spool.job import JobRecord, JobState
from lorapilot.spool.status import RunStatus, read_status
from lorapilot.spool.store import Spool


def job_view(spool: Spool, record: JobRecord, position: int | None = None) -> dict[str, Any]:
    """A job's spool facts joined with its run's status.json (the JSON of `list` and `status`)."""
    folder = spool.run_folder(record)
    status = read_status(folder) if folder is not None else None
    error = spool.error_of(record) if record.state is JobState.FAILED or record.problem else None
    if error is None and status is not None and record.state is JobState.FAILED:
        error = status.error
    job = record.job
    return {
        "id": record.id,
        "name": record.name,
        "state": job_state(spool, record, status),
        "priority": record.priority,
        "gpus": job.gpus if job is not None else 1,
        "position": position,
        "submitted_at": record.submitted_at.isoformat(),
        "file": str(record.path),
        "folder": str(folder) if folder is not None else None,
        "error": error,
        "status": status.model_dump(mode="json") if status is not None else None,
    }


def job_state(spool: Spool, record: JobRecord, status: RunStatus | None) -> JobState:
    """The spool folder decides; `interrupted` tells a job in running/ that no process trains (its
    daemon stopped or died; it resumes on the next start) from one that trains."""
    if record.state is JobState.RUNNING:
        paused = status is not None and status.state is JobState.INTERRUPTED
        if paused or not spool.owned(record):
            return JobState.INTERRUPTED
    return record.state


def all_views(spool: Spool) -> list[dict[str, Any]]:
    """Every job, oldest submission first; queued jobs carry their place in the queue (1 = next)."""
    positions = {r.id: i for i, r in enumerate(spool.queued(), start=1)}
    records = sorted(spool.records(), key=lambda r: (r.submitted_at, r.id))
    return [job_view(spool, r, positions.get(r.id)) for r in records]


def queue_position(spool: Spool, record: JobRecord) -> int | None:
    """The job's place in the queue (1 = next), or None when it is not queued."""
    return next((i for i, r in enumerate(spool.queued(), start=1) if r.id == record.id), None)
