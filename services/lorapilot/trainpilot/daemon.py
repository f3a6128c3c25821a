"""`trainpilot daemon`: claims jobs from the spool and runs each in its own training process.

One job per GPU (each process sees only its GPU through CUDA_VISIBLE_DEVICES), one at a time on
a CPU-only machine. Jobs left in `running/` by a daemon that died are adopted and resumed from
their saved state before new jobs start. A cancel request stops the job's process within seconds
(it saves first). SIGTERM or SIGINT stop the daemon the way supervisord expects: the training
processes save their state and exit, and their jobs stay in `running/` to resume on the next start.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorapilot.cluster.settings import load_cluster_settings
from lorapilot.engine.run_folder import RunFolder
from lorapilot.spool import Claim, JobRecord, JobState, Spool, read_status, write_status
from lorapilot.spool.status import utcnow
from lorapilot.spool.store import DaemonInfo
from lorapilot.trainpilot import worker
from lorapilot.trainpilot.handoff import Assignment, Outcome, WorkerResult
from lorapilot.trainpilot.temp_dir import trainer_temp_dir
from lorapilot.workspace import Workspace

if TYPE_CHECKING:
    from lorapilot.trainpilot.cluster.backend import RayBackend, RemoteJob

log = logging.getLogger("lorapilot.trainpilot.daemon")
FINISH_RETRY_S = 10.0  # a job that could not be moved to its end state (a full disk) is tried again
CPU = "cpu"  # slots of a machine without GPUs are named cpu, cpu:1, cpu:2, ...
CLUSTER_VIEW_S = 2.0  # how often the cluster's nodes are written to cache/cluster/nodes.json
RAY = "ray"  # in cluster mode a free unit of the cluster (a GPU, or a CPU slot), placed by Ray


def is_cpu(device: str) -> bool:
    return device == CPU or device.startswith(f"{CPU}:")


@dataclass
class Active:
    """A job this daemon runs: its claim, its process and the GPUs it holds."""

    claim: Claim
    process: BaseProcess | RemoteJob  # a child process, or a run on the cluster (cluster mode)
    devices: list[str]
    result_path: Path
    lifeline: int | None  # write end of the pipe a child process watches: closing it stops the job
    cancel_sent: float | None = None  # when the process was asked to stop for a cancel
    killed: bool = False
    stop_sent: float | None = None  # when it was asked to stop for a daemon shutdown

    @property
    def job_id(self) -> str:
        return self.claim.record.id


@dataclass
class Daemon:
    workspace: Workspace
    devices: list[str] = field(default_factory=lambda: [CPU])
    poll_s: float = 0.25  # a new job is picked up within this (and the time to read the queue)
    cancel_grace_s: float = 3.0  # a cancelled job that has not stopped by then is killed
    stop_grace_s: float = 60.0  # keep below supervisord's stopwaitsecs
    only: str | None = None  # serve just this job id (the foreground `trainpilot run`), then return
    interrupt_cancels: bool = False  # SIGINT cancels the jobs (foreground use) instead of pausing them
    # How training processes start. forkserver: forked from a process that imported the engine once,
    # so a job starts in milliseconds instead of seconds; only without GPUs, because importing the
    # engine imports bitsandbytes, which initialises CUDA, and a process forked after that cannot
    # use CUDA. spawn: a fresh interpreter per job (the default with GPUs).
    start_method: str | None = None
    # While every slot is busy the queue is not read each tick; files that cannot be read as jobs are
    # still failed within this many seconds.
    unreadable_check_s: float = 2.0
    active: dict[str, Active] = field(default_factory=dict)
    stopping: bool = False
    _unreadable_checked: float = field(default=float("-inf"), init=False, repr=False)
    _published: float = field(default=float("-inf"), init=False, repr=False)
    temp_dir: Path | None = None  # TMPDIR of this daemon and its processes, inside the workspace
    # Jobs whose move to their end state failed (a full disk), with the time of the next try; still
    # owned, so no daemon resumes them meanwhile.
    unfinished: list[tuple[Claim, JobState, str | None, float]] = field(default_factory=list)
    cluster: RayBackend | None = None  # cluster mode (LORAPILOT_RAY_ADDRESS): jobs run on Ray

    def __post_init__(self) -> None:
        self.spool = Spool(self.workspace)
        if self.start_method is None:
            self.start_method = "forkserver" if all(is_cpu(d) for d in self.devices) else "spawn"
        self.context = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            self.context.set_forkserver_preload(["lorapilot.trainpilot._preload"])

    # -- the loop -----------------------------------------------------------------------------------
    def serve(self, on_tick: Callable[[], None] | None = None) -> None:
        self.workspace.ensure()
        settings = load_cluster_settings(self.workspace)
        if settings.enabled and self.cluster is None:
            from lorapilot.trainpilot.cluster.backend import RayBackend  # noqa: PLC0415 - Ray only here

            self.cluster = RayBackend(self.workspace, settings)
        # Before the first training process starts: multiprocessing makes its temp folder then.
        with trainer_temp_dir(self.workspace, socket_safe=True) as self.temp_dir:
            self._serve(on_tick)

    def _serve(self, on_tick: Callable[[], None] | None) -> None:
        registration = None
        if self.only is None:  # a foreground run serves one job; `run` must not wait on it as a daemon
            registration = self.spool.register_daemon(
                DaemonInfo(pid=os.getpid(), host=socket.gethostname(), devices=self.devices)
            )
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        log.info("serving %s on %s (%s)", self.workspace.jobs, ", ".join(self.devices), self.start_method)
        try:
            while not self.stopping:
                self._tick()
                if on_tick is not None:
                    on_tick()
                if self.only is not None and not self.active and self._only_settled():
                    break
                self._sleep(self.poll_s)
        finally:
            self._shutdown()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if registration is not None:
                registration.close()
        log.info("stopped")

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and self.interrupt_cancels:
            for active in self.active.values():
                self._request_cancel(active)
            return
        if not self.stopping:
            log.info("%s: saving running jobs and stopping", signal.Signals(signum).name)
        self.stopping = True

    def _sleep(self, seconds: float) -> None:
        sentinels: list[Any] = [a.process.sentinel for a in self.active.values()]
        if sentinels:
            wait(sentinels, timeout=seconds)
        else:
            time.sleep(seconds)

    def _tick(self) -> None:
        for unfinished in list(self.unfinished):
            if time.monotonic() >= unfinished[3]:
                self.unfinished.remove(unfinished)
                self._guarded(self._move_to_end, *unfinished[:3])
        for active in list(self.active.values()):
            if active.process.exitcode is not None:
                self._guarded(self._settle, active)
        for active in self.active.values():
            self._guarded(self._check_cancel, active)
        self._guarded(self._start_jobs)
        if self.cluster is not None:
            self._guarded(self._publish_cluster)

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        """One job's trouble (a full disk, a file removed by hand) must not stop the daemon."""
        try:
            step(*args)
        except Exception:
            log.exception("while handling the spool")

    def _publish_cluster(self) -> None:
        """The cluster's nodes and the jobs on each, for `trainpilot cluster` and ControlPilot."""
        assert self.cluster is not None
        if time.monotonic() - self._published < CLUSTER_VIEW_S:
            return
        self._published = time.monotonic()
        on_node: dict[str, list[str]] = {}
        for active in self.active.values():
            node = getattr(active.process, "node_id", None)
            if node is not None:
                on_node.setdefault(node, []).append(active.claim.record.name)
        self.cluster.publish(on_node)

    # -- starting ----------------------------------------------------------------------------------
    def _free(self) -> list[str]:
        if self.cluster is not None:  # Ray places the job; here only whether the cluster has room
            return [RAY] * self.cluster.free_units()
        busy = {d for a in self.active.values() for d in a.devices}
        return [d for d in self.devices if d not in busy]

    def _candidates(self) -> list[JobRecord]:
        """Jobs to start, best first: orphans in running/ (to resume), then the queue in order."""
        orphans = [r for r in self.spool.records([JobState.RUNNING]) if r.id not in self.active]
        queued = self.spool.queued()
        if self.only is not None:
            return [r for r in orphans + queued if r.id == self.only]
        return sorted(orphans, key=lambda r: r.queue_key()) + queued

    def _start_jobs(self) -> None:
        if self.stopping:
            return
        if not self._free():
            if time.monotonic() - self._unreadable_checked >= self.unreadable_check_s:
                self.fail_unreadable()
            return
        candidates = self._candidates()
        self.fail_unreadable(candidates)
        for record in candidates:
            if record.problem is not None:
                continue  # another daemon is failing it
            free = self._free()
            if not free:
                return
            need = self._devices_needed(record)
            if need is not None and need > len(free):
                return  # wait for it rather than starve it with smaller jobs behind it
            claim = self.spool.adopt(record) if record.state is JobState.RUNNING else self.spool.claim(record)
            if claim is None:
                continue  # another daemon has it
            self._guarded(self._begin, claim, free, need)

    def fail_unreadable(self, records: list[JobRecord] | None = None) -> list[JobRecord]:
        """Move every queued (or orphaned running) file that cannot be read as a job to failed/, with
        the reason in failed/<id>.error. It needs no GPU, so it never waits for one; once in failed/ it
        is not read again by the daemon, so it is logged once and never blocks the jobs behind it."""
        self._unreadable_checked = time.monotonic()
        if records is None:
            records = self._candidates()
        failed = []
        for record in records:
            if record.problem is None or record.id in self.active:
                continue
            claim = self.spool.adopt(record) if record.state is JobState.RUNNING else self.spool.claim(record)
            if claim is not None:
                moved = self._finish(claim, JobState.FAILED, f"invalid job: {record.problem}")
                failed += [moved] if moved is not None else []
        return failed

    def _devices_needed(self, record: JobRecord) -> int | None:
        """GPUs the job asks for, or None when this daemon cannot run it (it fails with the reason)."""
        gpus = record.job.gpus if record.job is not None else 1
        if self.cluster is not None:  # more than the cluster has now waits for nodes to join
            return max(sum(self.cluster.node_sizes()), 1) if gpus == "all" else gpus
        want = len(self.devices) if gpus == "all" else gpus
        return want if want <= len(self.devices) else None

    def _begin(self, claim: Claim, free: list[str], need: int | None) -> None:
        record = claim.record
        if self.spool.cancel_marker(record.id).exists():
            self._finish(claim, JobState.CANCELLED, None)
            return
        if record.problem is not None:
            self._finish(claim, JobState.FAILED, f"invalid job: {record.problem}")
            return
        if need is None:
            self._finish(claim, JobState.FAILED, self._gpus_refusal(record))
            return
        devices = free[:need]
        result_path = claim.record.path.with_name(f".{record.id}.result.json")
        result_path.unlink(missing_ok=True)
        if self.cluster is not None:
            remote = self.cluster.start(record, result_path, need)
            self.active[record.id] = Active(claim, remote, devices, result_path, None)
            log.info(
                "job %s (%s) placed on the cluster (%d %s)", record.id, record.name, need, self.cluster.unit()
            )
            return
        assignment = Assignment(
            workspace=str(self.workspace.root),
            job_path=str(record.path),
            result_path=str(result_path),
            devices=None if is_cpu(devices[0]) else ",".join(devices),
            processes=need,
            temp_dir=str(self.temp_dir) if self.temp_dir is not None else None,
        )
        read_end, lifeline = os.pipe()
        try:
            process = self.context.Process(
                target=worker.run,
                args=(assignment, worker.InheritedFd(claim.fd), worker.InheritedFd(read_end)),
                name=f"job-{record.id}",
            )
            process.start()
        except Exception as exc:
            os.close(lifeline)
            log.exception("job %s: starting its training process failed", record.id)
            self._finish(claim, JobState.FAILED, f"could not start the training process: {exc}")
            return
        finally:
            os.close(read_end)
        self.active[record.id] = Active(claim, process, devices, result_path, lifeline)
        log.info("job %s (%s) started on %s, pid %s", record.id, record.name, ",".join(devices), process.pid)

    def _gpus_refusal(self, record: JobRecord) -> str:
        gpus = record.job.gpus if record.job is not None else 1
        if is_cpu(self.devices[0]):
            have = f"no GPU and {len(self.devices)} CPU slot(s) (trainpilot daemon --gpus cpu:N)"
        else:
            have = f"{len(self.devices)} GPU(s): {', '.join(self.devices)}"
        return f"gpus: the job asks for {gpus} GPUs and this daemon has {have}; submit it with fewer --gpus"

    # -- cancelling --------------------------------------------------------------------------------
    def _check_cancel(self, active: Active) -> None:
        if active.cancel_sent is None:
            if self.spool.cancel_marker(active.job_id).exists():
                self._request_cancel(active)
        elif not active.killed and time.monotonic() - active.cancel_sent > self.cancel_grace_s:
            log.warning(
                "job %s did not stop within %.0f s of its cancel; killing it",
                active.job_id,
                self.cancel_grace_s,
            )
            active.process.kill()
            active.killed = True

    def _request_cancel(self, active: Active) -> None:
        if active.cancel_sent is None:
            log.info("cancelling job %s", active.job_id)
            active.cancel_sent = time.monotonic()
            if active.process.exitcode is None:
                active.process.terminate()

    # -- settling ----------------------------------------------------------------------------------
    def _settle(self, active: Active) -> None:
        """Decide where a job goes once its process has ended: the one place for every outcome."""
        del self.active[active.job_id]
        if active.lifeline is not None:
            os.close(active.lifeline)
        else:
            active.process.detach()  # type: ignore[union-attr] # its thread has ended; frees its pipe
        result = WorkerResult.read(active.result_path)
        state, error = self._outcome(active, active.process.exitcode, result)
        claim = active.claim
        folder = (result.folder if result is not None else None) or self.spool.run_folder(claim.record)
        if state is None:
            claim.release()
            step = result.step if result is not None else None
            log.info("job %s paused at step %s; it resumes on the next start", active.job_id, step)
            self._update_status(folder, JobState.INTERRUPTED, None, result)
        else:
            self._finish(claim, state, error, folder, result)
        active.result_path.unlink(missing_ok=True)

    def _outcome(
        self, active: Active, code: int, result: WorkerResult | None
    ) -> tuple[JobState | None, str | None]:
        outcome = result.outcome if result is not None else None
        name = active.claim.record.name
        if outcome is Outcome.DONE:
            return JobState.DONE, None
        if active.cancel_sent is not None:
            return JobState.CANCELLED, None
        if self.stopping:
            return None, None  # stays in running/ and resumes on the next start
        if result is not None and outcome is Outcome.FAILED:
            return JobState.FAILED, result.error or "training failed"
        retry = f"`trainpilot retry {name}` resumes it from its last saved state"
        if code < 0:
            signame = signal.Signals(-code).name
            why = " (often the kernel's out-of-memory killer)" if -code == signal.SIGKILL else ""
            return JobState.FAILED, f"the training process was killed by {signame}{why}; {retry}"
        if outcome is Outcome.INTERRUPTED:
            return JobState.FAILED, f"the training process was stopped from outside trainpilot; {retry}"
        return JobState.FAILED, f"the training process exited with code {code} and no result; see the log"

    def _finish(
        self,
        claim: Claim,
        state: JobState,
        error: str | None,
        folder: Path | None = None,
        result: WorkerResult | None = None,
    ) -> JobRecord | None:
        """Move the job to its terminal state (its record there; None while the move waits for a retry).
        status.json is written first, so whoever sees the job
        in done/ (or failed/, cancelled/) reads the final status too; the move happens regardless.
        A failed job's partial saves go first: its process has ended, and on a full disk that space
        is what the status and the move need."""
        folder = folder or self.spool.run_folder(claim.record)
        if state is JobState.FAILED and folder is not None:
            for path in RunFolder(folder, claim.record.name).remove_partial_saves():
                log.info("job %s: removed the partial save %s", claim.record.id, path.name)
        try:
            self._update_status(folder, state, error, result)
        except OSError as exc:  # a full disk: the move below still records the outcome
            log.error("job %s: could not update its status.json: %s", claim.record.id, exc)
        return self._move_to_end(claim, state, error)

    def _move_to_end(self, claim: Claim, state: JobState, error: str | None) -> JobRecord | None:
        """The spool move (with the `.error` for failed/); on a full disk without the `.error` (the
        reason is in status.json and this log), and when even that fails, again in a while."""
        try:
            record = self.spool.finish(claim, state, error)
        except OSError as exc:
            if error is None:
                log.error("job %s: could not move it to %s (%s); trying again", claim.record.id, state, exc)
                self.unfinished.append((claim, state, error, time.monotonic() + FINISH_RETRY_S))
                return None
            log.error("job %s: could not write its .error (%s): %s", claim.record.id, exc, error)
            return self._move_to_end(claim, state, None)
        log.info("job %s (%s) %s%s", record.id, record.name, state, f": {error}" if error else "")
        return record

    def _update_status(
        self, folder: Path | None, state: JobState, error: str | None, result: WorkerResult | None
    ) -> None:
        status = read_status(folder) if folder is not None else None
        if status is None:
            return  # the job never got as far as its run folder
        now = utcnow()
        step = result.step if result is not None and result.step is not None else status.step
        lora = (result.lora if result is not None else None) or _last_save(folder, status.name) or status.lora
        finished = now if state.terminal else status.finished_at
        warnings = result.warnings if result is not None and result.warnings else status.warnings
        attempts = list(status.attempts)
        if attempts and attempts[-1].ended_at is None:
            attempts[-1] = attempts[-1].model_copy(update={"ended_at": now, "outcome": str(state)})
        changed = status.changed(
            state=state,
            error=error,
            pid=None,
            updated_at=now,
            step=step,
            lora=lora,
            finished_at=finished,
            warnings=warnings,
            attempts=attempts,
        )
        write_status(folder, changed)

    def _only_settled(self) -> bool:
        record = self.spool.locate(self.only) if self.only else None
        return record is None or record.state.terminal

    # -- stopping ----------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        self.stopping = True
        if self.cluster is not None:  # jobs on the cluster go on; the next daemon re-attaches
            for active in list(self.active.values()):
                active.process.detach()  # type: ignore[union-attr]
                active.claim.release()
                del self.active[active.job_id]
                log.info("job %s goes on on the cluster; the next daemon re-attaches to it", active.job_id)
            return
        for active in self.active.values():
            if active.process.exitcode is None and active.stop_sent is None:
                active.stop_sent = time.monotonic()
                active.process.terminate()
        deadline = time.monotonic() + self.stop_grace_s
        while self.active and time.monotonic() < deadline:
            self._sleep(0.25)
            for active in list(self.active.values()):
                if active.process.exitcode is not None:
                    self._guarded(self._settle, active)
        for active in list(self.active.values()):
            log.warning("job %s did not stop within %.0f s; killing it", active.job_id, self.stop_grace_s)
            active.process.kill()
            active.process.join(10)
            self._guarded(self._settle, active)


def _last_save(folder: Path, name: str) -> str | None:
    """The newest periodic save (step or epoch) of a run that stopped without reporting one (killed)."""
    saves = RunFolder(folder, name).saves()
    return str(saves[-1]) if saves else None


def detect_devices(requested: str | None = None) -> list[str]:
    """The GPUs to use, one job each: `--gpus 0,1`, else CUDA_VISIBLE_DEVICES, else all torch sees.

    Without GPUs there is one slot; `--gpus cpu:N` makes N (for data-parallel jobs on a CPU box).
    """
    if requested:
        text = requested.strip().lower()
        if text == CPU or text.startswith(f"{CPU}:"):
            count = int(text.partition(":")[2] or 1)
            return [CPU] + [f"{CPU}:{i}" for i in range(1, count)]
        return [d.strip() for d in requested.split(",") if d.strip()] or [CPU]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"] or [CPU]
    import torch  # noqa: PLC0415 - only to count GPUs

    count = torch.cuda.device_count()
    return [str(i) for i in range(count)] or [CPU]
