"""The training process of one job: a child of the daemon, so a crash or an out-of-memory kill here
never takes the daemon down.

It receives the job's lock (shared with the daemon, so the job stays owned while either lives)
and a lifeline pipe from the daemon (so it stops, saving first, when the daemon dies),
builds the TrainSpec, trains with `status.json` kept current, and leaves a result file that the
daemon reads when the process ends. SIGTERM or SIGINT stop it cleanly: state and a step-numbered
LoRA are saved, and a later run resumes from there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import replace
from multiprocessing import reduction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorapilot.atomic_files import write_atomic
from lorapilot.engine.save_failure import SaveFailedError
from lorapilot.errors import LoraPilotError
from lorapilot.spec import SpecError, SpecIssue, TrainSpec, load_spec
from lorapilot.spec.loader import spec_from_data
from lorapilot.spool import JobRecord, JobState, RunStatus, Spool, read_status, write_status
from lorapilot.spool.job import read_record
from lorapilot.spool.status import Attempt, utcnow
from lorapilot.trainpilot.handoff import Assignment, Outcome, WorkerResult
from lorapilot.trainpilot.temp_dir import hold
from lorapilot.workspace import Workspace

if TYPE_CHECKING:
    from lorapilot.engine.progress import Progress  # the engine (torch) loads in the process only
    from lorapilot.engine.trainer import RunResult

log = logging.getLogger("lorapilot.trainpilot.worker")
HEARTBEAT_S = 2.0  # status.json's updated_at is refreshed at least this often while training
STATUS_EVERY_S = 0.5  # progress is written at most this often (and at the last step)


class InheritedFd:
    """An open file descriptor handed to a multiprocessing child: the child's copy shares the
    open file, and with it the job's lock."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_fd, (reduction.DupFd(self.fd),))


def _rebuild_fd(dup: Any) -> InheritedFd:
    return InheritedFd(dup.detach())


class Interrupted(BaseException):
    """Stop requested before the training loop started: nothing to save yet."""


class StopRequests:
    """SIGTERM/SIGINT: inside the loop, ask the trainer to stop at its next step (it saves first);
    before it, stop at once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.in_loop = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.reason = f"{signal.Signals(signum).name} received"
        if not self.in_loop:
            raise Interrupted(self.reason)


def run(assignment: Assignment, lock: InheritedFd, lifeline: InheritedFd) -> None:
    """Process entry point: train the job, write the result file, exit 0 (1 when it failed)."""
    del lock  # held open for the life of this process: the job stays owned while training runs
    if assignment.temp_dir is not None:
        hold(assignment.temp_dir)
    stop = StopRequests()
    stop.install()
    threading.Thread(target=_stop_with_daemon, args=(lifeline.fd,), daemon=True).start()
    if assignment.devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = assignment.devices
    _configure_logging(Path(assignment.job_path).stem)
    job = JobProcess(assignment, stop)
    try:
        result = job.run()
    except Interrupted as exc:
        result = job.result(Outcome.INTERRUPTED, error=str(exc))
    try:
        result.write(Path(assignment.result_path))
    except OSError as exc:  # a full disk: the daemon reports a process that left no result
        log.error("could not write the result file (%s): %s", exc, result.error or result.outcome)
    logging.shutdown()
    sys.exit(1 if result.outcome is Outcome.FAILED else 0)


def _stop_with_daemon(lifeline: int) -> None:
    """Stop (saving first) when the daemon is gone, however it went: the daemon holds the only
    write end of this pipe, so reading it returns at the daemon's exit, a SIGKILL included."""
    while True:
        try:
            if not os.read(lifeline, 1):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    log.warning("the daemon is gone; saving and stopping so that the next daemon resumes this job")
    os.kill(os.getpid(), signal.SIGTERM)


class JobProcess:
    def __init__(self, assignment: Assignment, stop: StopRequests, node: str | None = None) -> None:
        self.assignment = assignment
        self.node = node  # in cluster mode: the Ray node this attempt runs on (status.json attempts)
        self.stop = stop
        self.ws = Workspace.from_env(assignment.workspace)
        self.spool = Spool(self.ws)
        self.record: JobRecord = read_record(Path(assignment.job_path), JobState.RUNNING)
        self.folder: Path | None = None
        self.status: RunStatus | None = None
        self.status_lock = threading.Lock()
        self.last_write = 0.0

    def result(
        self,
        outcome: Outcome,
        *,
        error: str | None = None,
        lora: str | None = None,
        step: int | None = None,
        warnings: list[str] | None = None,
    ) -> WorkerResult:
        """The result file's content: the outcome, with the run folder, the step reached and warnings."""
        if step is None:
            step = self.status.step if self.status else 0
        if warnings is None:
            warnings = self.status.warnings if self.status else []
        return WorkerResult(
            outcome=outcome, error=error, folder=self.folder, step=step, lora=lora, warnings=warnings
        )

    def run(self) -> WorkerResult:
        try:
            spec = self._spec()
        except LoraPilotError as exc:
            return self.result(Outcome.FAILED, error=f"invalid job: {exc}")
        self.folder = Path(spec.output.folder)
        self._begin()
        beat = threading.Thread(target=self._heartbeat, daemon=True)
        beat.start()
        try:
            return self._train(spec)
        finally:
            self.status_lock.acquire()  # no heartbeat write after this point; the daemon writes next

    def _spec(self) -> TrainSpec:
        return job_spec(self.record, self.ws, self.spool)

    def _begin(self) -> None:
        assert self.folder is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / "job.yaml", self.record.path.read_bytes())  # as submitted (DESIGN §3)
        old = read_status(self.folder)
        now = utcnow()
        attempt = (old.attempt if old else 0) + 1
        attempts = list(old.attempts) if old else []
        if self.node is not None:
            attempts.append(Attempt(attempt=attempt, node=self.node, started_at=now))
        self.status = RunStatus(
            id=self.record.id,
            name=self.record.name,
            state=JobState.RUNNING,
            step=old.step if old else 0,
            total=old.total if old else None,
            attempt=attempt,
            pid=os.getpid(),
            host=socket.gethostname(),
            node=self.node,
            attempts=attempts,
            submitted_at=self.record.submitted_at,
            started_at=old.started_at if old and old.started_at else now,
            updated_at=now,
        )
        write_status(self.folder, self.status)

    def _train(self, spec: TrainSpec) -> WorkerResult:
        """Train; an error the user can fix is reported as its message, anything else is a bug and
        goes to the log with its traceback."""
        try:
            result = self._run_training(spec)
        except SaveFailedError as exc:
            then = "resumes from it" if exc.previous else "runs it again"
            retry = f"`trainpilot retry {self.record.name}` {then} once there is room"
            return self.result(Outcome.FAILED, error=f"{exc}; {retry}")
        except LoraPilotError as exc:
            return self.result(Outcome.FAILED, error=str(exc))
        except Interrupted:
            raise
        except Exception as exc:
            log.error("training raised:\n%s", traceback.format_exc())
            return self.result(Outcome.FAILED, error=_describe(exc))
        outcome = Outcome.INTERRUPTED if result.interrupted else Outcome.DONE
        return self.result(outcome, lora=str(result.lora), step=result.steps, warnings=result.warnings)

    def _run_training(self, spec: TrainSpec) -> RunResult:
        """The engine's run: one process, or data-parallel over this machine's assigned devices."""
        from lorapilot.engine import train  # noqa: PLC0415 - torch only in the training process

        if self.assignment.processes > 1:
            from lorapilot.engine.distributed import train_distributed  # noqa: PLC0415

            gpus = self.assignment.devices.split(",") if self.assignment.devices else None
            return train_distributed(
                spec, self.ws, self.assignment.processes, self._progress, devices=gpus, show_progress=False
            )
        return train(spec, self.ws, self._progress, resume=True, show_progress=False)

    def _progress(self, progress: Progress) -> None:
        from lorapilot.engine import StopTraining  # noqa: PLC0415

        self.stop.in_loop = True
        with self.status_lock:
            assert self.status is not None
            self.status = self.status.changed(
                step=progress.step,
                total=progress.total,
                loss=progress.loss,
                lr=progress.lr,
                it_per_s=progress.it_per_s,
                eta_s=progress.eta_s,
                epoch=progress.epoch,
                warnings=list(progress.warnings),
            )
            now = time.monotonic()
            if now - self.last_write >= STATUS_EVERY_S or progress.step == progress.total:
                self._write_status()
        if self.stop.reason is not None:
            raise StopTraining(self.stop.reason)

    def _write_status(self) -> None:
        assert self.status is not None and self.folder is not None
        self.status = self.status.changed(updated_at=utcnow())
        write_status(self.folder, self.status)
        self.last_write = time.monotonic()

    def _heartbeat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            with self.status_lock:
                if time.monotonic() - self.last_write >= HEARTBEAT_S:
                    with contextlib.suppress(OSError):
                        self._write_status()


def job_spec(record: JobRecord, ws: Workspace, spool: Spool) -> TrainSpec:
    """The TrainSpec a job file asks for, validated against `ws` (a plain config, an envelope's spec,
    or a profile with a dataset), its run folder inside `outputs/` and its name free."""
    job = record.job
    if job is None:
        raise SpecError([SpecIssue("(file)", record.problem or "unreadable job file", file=str(record.path))])
    if record.plain:
        spec = load_spec(record.path, name=record.id, workspace=ws).spec
    elif job.spec is not None:
        spec = envelope_spec(job.spec, job.name, ws, record.path)
    else:
        spec = load_spec(
            None,
            profile=job.profile,
            dataset=job.dataset,
            name=job.name,
            overrides=job.overrides,
            workspace=ws,
        ).spec
    folder = Path(spec.output.folder)  # resolved in the workspace by the spec's validation
    if ws.outputs not in folder.parents:
        where = ws.display(ws.outputs)
        issue = SpecIssue("output.folder", f"must be a folder inside {where}/", str(folder))
        raise SpecError([replace(issue, file=str(record.path))])
    if record.plain:  # an envelope's name was checked when it was submitted
        spool.check_name_free(spec.output.name, except_id=record.id)
    return spec


def envelope_spec(data: dict[str, Any], name: str, workspace: Workspace, path: Path) -> TrainSpec:
    """The spec a job envelope carries, validated by the same code as a config file (every dataset,
    model and output path is checked against the workspace), its fields named as the file has them."""
    try:
        spec = spec_from_data(data, workspace, file=str(path))
    except SpecError as exc:
        raise SpecError([replace(issue, field=_in_spec(issue.field)) for issue in exc.issues]) from None
    if spec.output.name != name:
        issue = SpecIssue("spec.output.name", f"must be the job's name {name!r}", spec.output.name)
        raise SpecError([replace(issue, file=str(path))])
    return spec


def _in_spec(field: str) -> str:
    """A field of the spec as the job file spells it: under `spec:`."""
    return "spec" if field.startswith("(") else f"spec.{field}"


def _describe(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "OutOfMemoryError" in type(exc).__name__:
        text += (
            "\n    hint: lower training.batch_size or the resolution, or turn on "
            "training.gradient_checkpointing; `trainpilot retry NAME` resumes from the last save"
        )
    return text


def _configure_logging(job_id: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(levelname)s job {job_id}: %(name)s: %(message)s"))
    handler.addFilter(lambda record: not record.name.startswith("lorapilot.train.steps"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for library in ("diffusers", "transformers"):  # loading bars belong in a terminal, not a daemon log
        with contextlib.suppress(Exception):
            __import__(f"{library}.utils.logging", fromlist=["disable_progress_bar"]).disable_progress_bar()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
