"""The job spool (DESIGN §4): a folder per state, a rename per transition, a lock per owner.

Every move of a job file happens while holding an exclusive `flock` on that file. A lock belongs
to an open file, not a path, so it follows the file through renames; whoever holds it owns the
job. A daemon claims a queued job by locking it and renaming it into `running/`; the training
process it starts inherits the lock, so the lock lives as long as either of them. A file in
`running/` that nobody holds a lock on was left by a daemon that died: any daemon may adopt it
and resume the run. Several daemons on one volume therefore never run the same job.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from lorapilot.atomic_files import fsync_dir, write_atomic
from lorapilot.spec.issues import did_you_mean
from lorapilot.spool.errors import JobNotFoundError, NameTakenError, WrongStateError
from lorapilot.spool.job import (
    JOB_SUFFIXES,
    MAX_ID_BYTES,
    SPOOL_STATES,
    Job,
    JobRecord,
    JobState,
    job_id_of,
    new_id,
    read_record,
)
from lorapilot.workspace import PathEscapeError, Workspace

log = logging.getLogger(__name__)
ERROR_SUFFIX = ".error"  # failed/<id>.error: why the job failed, for people and ControlPilot
CANCEL_SUFFIX = ".cancel"  # running/<id>.cancel: a cancel request for a job a daemon is running


def try_lock(path: Path) -> int | None:
    """An fd holding the exclusive lock on the file now at `path`, or None if someone else holds
    it or the file moved away meanwhile."""
    try:  # O_NONBLOCK: a FIFO dropped into the spool must not block the daemon in open()
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:  # gone, a folder, a symlink loop, unreadable: not a file anyone can own
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.samestat(os.stat(path), os.fstat(fd)):
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    os.close(fd)
    return None


@dataclass
class Claim:
    """A job this process owns: its file is in `running/` and `fd` holds the lock on it."""

    record: JobRecord
    fd: int

    def release(self) -> None:
        """Give up ownership, leaving the job where it is (it resumes wherever it is adopted)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class DaemonInfo(BaseModel):
    """What a daemon writes into its entry in `jobs/.daemons/`: which process serves the spool."""

    pid: int
    host: str
    devices: list[str]


@dataclass
class Registration:
    """A live daemon's entry in `jobs/.daemons/`; the lock on it says the daemon is alive."""

    path: Path
    fd: int

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)


class Spool:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def folder(self, state: JobState) -> Path:
        return self.ws.job_dir(state.folder)

    # -- reading ----------------------------------------------------------------------------------
    def records(self, states: Iterable[JobState] = SPOOL_STATES) -> list[JobRecord]:
        """Every job file in the given states, in no particular order."""
        found = []
        for state in states:
            folder = self.folder(state)
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if job_id_of(path) is None:
                    continue
                try:
                    record = read_record(path, state)
                except OSError:  # moved away while we looked
                    continue
                if record.problem is None or path.exists():
                    found.append(record)
        return found

    def queued(self) -> list[JobRecord]:
        """Queued jobs in the order they will run."""
        return sorted(self.records([JobState.QUEUED]), key=JobRecord.queue_key)

    def find(self, ref: str) -> JobRecord:
        """The job with id `ref`, else the job named `ref`."""
        records = self.records()
        for record in records:
            if record.id == ref:
                return record
        named = [r for r in records if r.name == ref]
        if named:
            return max(named, key=lambda r: r.submitted_at)
        hint = did_you_mean(ref, [r.name for r in records] + [r.id for r in records])
        raise JobNotFoundError(
            f"no job has the id or name {ref!r}" + (f"; {hint}" if hint else "; `trainpilot list` shows them")
        )

    def locate(self, job_id: str) -> JobRecord | None:
        """The job with this id wherever it is now, or None."""
        for state in SPOOL_STATES:
            folder = self.folder(state)
            for suffix in JOB_SUFFIXES:
                path = folder / f"{job_id}{suffix}"
                if path.exists():
                    try:
                        return read_record(path, state)
                    except OSError:
                        break  # moved meanwhile: look in the next state
        return None

    def error_of(self, record: JobRecord) -> str | None:
        """Why a failed job failed (or why its file could not be read)."""
        sidecar = record.path.with_suffix(ERROR_SUFFIX)
        with contextlib.suppress(OSError):
            return sidecar.read_text(encoding="utf-8").strip() or None
        return record.problem

    def run_folder(self, record: JobRecord) -> Path | None:
        """The run folder of the job (inside outputs/), or None when the job names none usable."""
        job = record.job
        if job is None:
            return None
        output = (job.spec or {}).get("output")
        folder = output.get("folder") if isinstance(output, dict) else None
        try:
            path = self.ws.resolve(folder) if isinstance(folder, str) else self.ws.output_dir(job.name)
        except (PathEscapeError, OSError):  # outside the workspace, or not a usable path at all
            return None
        return path if self.ws.outputs in path.parents else None

    # -- submitting -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _names_locked(self) -> Iterator[None]:
        """Serialises name checks with submits, across processes."""
        self.ws.jobs.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.ws.jobs / ".names.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def check_name_free(self, name: str, folder: Path | None = None, *, except_id: str | None = None) -> None:
        for record in self.records():
            if record.name == name and record.id != except_id:
                again = (
                    f", or `trainpilot retry {name}` to run it again"
                    if record.state in (JobState.FAILED, JobState.CANCELLED)
                    else ""
                )
                raise NameTakenError(
                    f"a job named {name!r} already exists ({record.state}, id {record.id}); "
                    f"choose another --name{again}"
                )
        folder = folder or self.ws.outputs / name
        if except_id is None and folder.is_dir() and any(folder.iterdir()):
            raise NameTakenError(
                f"{self.ws.display(folder)} already holds a run named {name!r}; choose another --name, "
                "or remove that folder first"
            )

    def submit(self, job: Job, folder: Path | None = None) -> JobRecord:
        """Queue `job`: written under a temporary name, then renamed into `incoming/` (atomic)."""
        incoming = self.folder(JobState.QUEUED)
        incoming.mkdir(parents=True, exist_ok=True)
        job_id = new_id(job.submitted_at)
        text = "# trainpilot job (docs/architecture.md), written by `trainpilot submit`\n" + yaml.safe_dump(
            job.document(), sort_keys=False, allow_unicode=True
        )
        with self._names_locked():
            self.check_name_free(job.name, folder)
            tmp = incoming / f".{job_id}.tmp"
            write_atomic(tmp, text.encode())
            path = incoming / f"{job_id}.yaml"
            os.rename(tmp, path)
            fsync_dir(incoming)
        log.debug("queued job %s (%s)", job_id, job.name)
        return JobRecord(job_id, JobState.QUEUED, path, job)

    # -- owning -----------------------------------------------------------------------------------
    def claim(self, record: JobRecord) -> Claim | None:
        """Take a queued job: lock it, then rename it into `running/`. None if another got it."""
        fd = try_lock(record.path)
        if fd is None:
            return None
        try:
            path = self._move(record.path, JobState.RUNNING)
        except OSError:
            os.close(fd)
            return None
        return Claim(replace(record, id=path.stem, state=JobState.RUNNING, path=path), fd)

    def owned(self, record: JobRecord) -> bool:
        """Whether a process holds the job (a job in running/ that nobody holds waits to resume)."""
        fd = try_lock(record.path)
        if fd is None:
            return record.path.exists()
        os.close(fd)
        return False

    def adopt(self, record: JobRecord) -> Claim | None:
        """Own a job where it is, if no one else does: one left in `running/` by a process that is
        gone (to resume it), or one to cancel. None if it is owned."""
        fd = try_lock(record.path)
        return Claim(record, fd) if fd is not None else None

    def finish(self, claim: Claim, state: JobState, error: str | None = None) -> JobRecord:
        """Move an owned job to a terminal state (with the error for `failed/`) and release it."""
        record = claim.record
        target = self._target(record.path, state)
        if error is not None:  # first, so whoever sees the job in failed/ finds its reason too
            text = error.rstrip() + "\n"
            write_atomic(target.with_suffix(ERROR_SUFFIX), text.encode("utf-8", "backslashreplace"))
        path = self._move(record.path, state, target)
        with contextlib.suppress(OSError):  # an id too long for a marker never had one
            self.cancel_marker(record.id).unlink(missing_ok=True)
        claim.release()
        return replace(record, id=path.stem, state=state, path=path)

    def _target(self, path: Path, state: JobState) -> Path:
        """Where a job file goes in another state's folder: its own name, unless that is taken (only
        hand-made files can clash; a job is never overwritten) or too long to have an error file."""
        folder = self.folder(state)
        stem = path.stem
        while len(os.fsencode(stem)) > MAX_ID_BYTES:
            stem = stem[:-1]
        target = folder / f"{stem}{path.suffix}"
        if stem != path.stem or target.exists():
            target = folder / f"{stem}-{new_id()[-6:]}{path.suffix}"
        return target

    def _move(self, path: Path, state: JobState, target: Path | None = None) -> Path:
        """Rename a job file (whose lock the caller holds) into another state's folder."""
        target = target or self._target(path, state)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)
        fsync_dir(target.parent)
        fsync_dir(path.parent)
        return target

    # -- requests ---------------------------------------------------------------------------------
    def cancel_marker(self, job_id: str) -> Path:
        return self.folder(JobState.RUNNING) / f"{job_id}{CANCEL_SUFFIX}"

    def cancel(self, ref: str) -> tuple[JobRecord, bool]:
        """Cancel a job. True: it is in `cancelled/` now; False: a daemon runs it and has been asked
        to stop it (it saves its state and moves it within seconds)."""
        record = self.find(ref)
        if record.state.terminal:
            raise WrongStateError(
                f"job {record.name} ({record.id}) is already {record.state}; nothing to cancel"
            )
        claim = self.adopt(record)
        if claim is not None:
            return self.finish(claim, JobState.CANCELLED), True
        write_atomic(self.cancel_marker(record.id), b"")
        return record, False

    def retry(self, ref: str) -> JobRecord:
        """Queue a failed or cancelled job again; it resumes from its run's saved state."""
        record = self.find(ref)
        if record.state not in (JobState.FAILED, JobState.CANCELLED):
            raise WrongStateError(
                f"job {record.name} ({record.id}) is {record.state}; "
                "only failed or cancelled jobs can be retried"
            )
        fd = try_lock(record.path)
        if fd is None:
            raise WrongStateError(f"job {record.name} is being changed by another process; try again")
        try:
            path = self._move(record.path, JobState.QUEUED)
            (self.folder(record.state) / f"{record.id}{ERROR_SUFFIX}").unlink(missing_ok=True)
        finally:
            os.close(fd)
        self.cancel_marker(record.id).unlink(missing_ok=True)
        return replace(record, state=JobState.QUEUED, path=path)

    # -- daemons ----------------------------------------------------------------------------------
    @property
    def _daemons(self) -> Path:
        return self.ws.jobs / ".daemons"

    def register_daemon(self, info: DaemonInfo) -> Registration:
        self._daemons.mkdir(parents=True, exist_ok=True)
        path = self._daemons / f"{socket.gethostname()}-{os.getpid()}.json"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, info.model_dump_json().encode())
        return Registration(path, fd)

    def live_daemons(self) -> list[DaemonInfo]:
        """Daemons serving this spool now (a daemon that died leaves an unlocked entry, removed here)."""
        alive = []
        if not self._daemons.is_dir():
            return alive
        for path in self._daemons.glob("*.json"):
            fd = try_lock(path)
            if fd is not None:
                path.unlink(missing_ok=True)
                os.close(fd)
                continue
            with contextlib.suppress(OSError, ValidationError):
                alive.append(DaemonInfo.model_validate_json(path.read_bytes()))
        return alive
