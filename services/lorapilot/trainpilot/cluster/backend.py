"""The daemon's Ray side: it places claimed jobs on the cluster and follows them to their end.

The spool stays the source of truth: the daemon claims a job exactly as on one machine and holds
its lock; only the training runs elsewhere. Each job is a `RemoteJob`, which looks to the daemon
like the training process it would otherwise start (an exit code, a sentinel to wait on, terminate
and kill), so every decision about a job's end state stays in the daemon. A lost node is handled
here: the job resumes on another node from the state the head holds, at most
`max_node_failures` times.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorapilot.cluster.nodes import cluster_view, write_cluster_view
from lorapilot.cluster.settings import NAMESPACE, ClusterSettings
from lorapilot.spool import JobRecord, Spool, read_status, write_status
from lorapilot.spool.status import utcnow
from lorapilot.trainpilot.cluster.runner import JobRunner, RunOrder, actor_name, job_envelope
from lorapilot.trainpilot.cluster.transfer import HeadFiles
from lorapilot.trainpilot.handoff import Outcome, WorkerResult
from lorapilot.trainpilot.worker import job_spec
from lorapilot.workspace import CONTAINER_ROOT, Workspace

log = logging.getLogger("lorapilot.cluster")
_GONE = object()  # a runner Ray reports dead
WAIT_S = 1.0  # how long one wait on a runner lasts; also how soon a lost node is noticed


class RayBackend:
    """Connected to the cluster for the daemon's life (`ray.init` once, in the daemon's process)."""

    def __init__(self, workspace: Workspace, settings: ClusterSettings) -> None:
        import ray  # noqa: PLC0415 - only in cluster mode
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: PLC0415

        self.ray = ray
        self.workspace, self.settings = workspace, settings
        self.spool = Spool(workspace)
        if not ray.is_initialized():
            ray.init(
                address=settings.ray_address,
                namespace=NAMESPACE,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
        here = ray.get_runtime_context().get_node_id()
        # One per head workspace, detached: runners keep their handle across a restart of the daemon.
        tag = hashlib.sha256(str(workspace.root).encode()).hexdigest()[:12]
        self.head_files = (
            ray.remote(HeadFiles)
            .options(
                name=f"lorapilot-head-files-{tag}",
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_concurrency=16,
                scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
            )
            .remote(str(workspace.root))
        )
        self.head_token = ray.get(self.head_files.token.remote())
        log.info("cluster mode: %s, head node %s", settings.ray_address, here[:12])

    # -- capacity -----------------------------------------------------------------------------------
    def unit(self) -> str:
        """What a job's `gpus` counts on this cluster: GPUs, or CPU slots on a cluster without GPUs."""
        totals = self.ray.cluster_resources()
        return "GPU" if totals.get("GPU", 0) > 0 else "CPU"

    def free_units(self) -> int:
        return int(self.ray.available_resources().get(self.unit(), 0))

    def node_sizes(self) -> list[int]:
        unit = self.unit()
        return [int(n["Resources"].get(unit, 0)) for n in self.ray.nodes() if n["Alive"]]

    def publish(self, jobs_on_node: dict[str, list[str]]) -> None:
        view = cluster_view(str(self.settings.ray_address), jobs_on_node)
        write_cluster_view(self.workspace, view)

    # -- jobs ---------------------------------------------------------------------------------------
    def start(self, record: JobRecord, result_path: Path, need: int) -> RemoteJob:
        """Follow the job's runner if one is still on the cluster (a restarted daemon), else start one."""
        return RemoteJob(self, record, result_path, need)

    def order(self, record: JobRecord, need: int) -> RunOrder:
        spec = job_spec(record, self.workspace, self.spool)
        data = _spelt_in_container(spec.model_dump(mode="json"), self.workspace.root)
        job = record.job
        if job is None:  # a plain config file: the head read it; the node runs its normalised spec
            from lorapilot.spool.job import Job  # noqa: PLC0415

            job = Job(name=spec.output.name, submitted_at=record.submitted_at)
        inputs = sorted(
            {rel for rel in _workspace_paths(data) if not rel.startswith(f"outputs/{spec.output.name}")}
        )
        largest = max(self.node_sizes(), default=0)
        return RunOrder(
            job_id=record.id,
            name=spec.output.name,
            job=job_envelope(job, data),
            inputs=inputs,
            processes=need,
            multi_node=need > max(largest, 1),
            use_gpu=self.unit() == "GPU",
            sync_interval_s=self.settings.sync_interval_s,
            head_files=self.head_files,
            head_root=str(self.workspace.root),
            head_token=self.head_token,
        )


@dataclass
class RemoteJob:
    """A job running on the cluster, as the daemon sees a training process."""

    backend: RayBackend
    record: JobRecord
    result_path: Path
    need: int
    exitcode: int | None = None
    node_id: str | None = None
    _stop: str | None = None
    _detached: bool = False
    _runner: Any = None
    _thread: threading.Thread | None = None
    _pipe: tuple[int, int] = field(default_factory=os.pipe)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._follow, name=f"job-{self.record.id}", daemon=True)
        self._thread.start()

    @property
    def sentinel(self) -> int:
        return self._pipe[0]

    def terminate(self) -> None:
        """A cancel: the job saves and stops at its next step."""
        self._stop = "cancelled"
        if self._runner is not None:
            self._runner.request_stop.remote("cancelled")

    def kill(self) -> None:
        self._stop = self._stop or "killed"
        if self._runner is not None:
            self.backend.ray.kill(self._runner, no_restart=True)

    def detach(self) -> None:
        """The daemon stops and leaves the job running; the next daemon re-attaches to it."""
        self._detached = True
        if self._thread is not None:
            self._thread.join(WAIT_S * 3)
        for fd in self._pipe:
            os.close(fd)

    # -- following the job (its own thread) --------------------------------------------------------
    def _follow(self) -> None:
        ray = self.backend.ray
        losses = 0
        try:
            while True:
                self._runner = self._existing_runner() or self._new_runner()
                if self._runner is None:
                    return  # a result is written
                started = self._call(self._runner.start)
                if started is not _GONE:
                    self.node_id = started
                    if self._stop == "cancelled":
                        self._runner.request_stop.remote("cancelled")
                result = self._wait() if started is not _GONE else None
                if self._detached:
                    return
                if result is not None:
                    self._end(WorkerResult.model_validate(result))
                    ray.kill(self._runner, no_restart=True)
                    return
                if self._stop is not None:  # killed after a cancel that did not stop in time
                    self._end(WorkerResult(outcome=Outcome.INTERRUPTED, error="stopped"), code=-9)
                    return
                losses += 1
                self._close_attempt("node lost")
                limit = self.backend.settings.max_node_failures
                if losses > limit:
                    error = (
                        f"its node was lost {losses} times (cluster.max_node_failures is {limit}); "
                        f"`trainpilot retry {self.record.name}` resumes it from its last saved state"
                    )
                    self._end(WorkerResult(outcome=Outcome.FAILED, error=error), code=1)
                    return
                log.warning("job %s: its node was lost; resuming it on another node", self.record.id)
        except Exception as exc:
            log.exception("job %s: following it on the cluster failed", self.record.id)
            self._end(WorkerResult(outcome=Outcome.FAILED, error=f"cluster: {type(exc).__name__}: {exc}"), 1)

    def _existing_runner(self) -> Any:
        ray = self.backend.ray
        try:
            runner = ray.get_actor(actor_name(self.record.id), namespace=NAMESPACE)
        except ValueError:
            return None
        log.info("job %s: re-attached to its run on the cluster", self.record.id)
        return runner

    def _new_runner(self) -> Any:
        ray = self.backend.ray
        try:
            order = self.backend.order(self.record, self.need)
        except Exception as exc:  # an invalid job: the node would refuse it too; say why here
            from lorapilot.errors import LoraPilotError  # noqa: PLC0415

            if not isinstance(exc, LoraPilotError):
                raise
            self._end(WorkerResult(outcome=Outcome.FAILED, error=f"invalid job: {exc}"), code=1)
            return None
        unit = "num_gpus" if order.use_gpu else "num_cpus"
        held = {unit: 0 if order.multi_node else order.processes}
        if order.use_gpu:
            held["num_cpus"] = 0 if order.multi_node else 1
        return (
            ray.remote(JobRunner)
            .options(
                name=actor_name(self.record.id),
                namespace=NAMESPACE,
                lifetime="detached",
                max_restarts=0,
                max_concurrency=4,
                **held,
            )
            .remote(order)
        )

    def _wait(self) -> dict[str, Any] | None:
        """The runner's result; None when its node (or the runner itself) is gone."""
        while not self._detached:
            result = self._call(self._runner.wait, WAIT_S)
            if result is _GONE:
                return None
            if result is not None:
                return result
        return None

    def _call(self, method: Any, *args: Any) -> Any:
        """A call to the runner; _GONE once Ray says it is dead (its node lost, or killed)."""
        from ray.exceptions import ActorUnavailableError, RayActorError  # noqa: PLC0415

        while True:
            try:
                return self.backend.ray.get(method.remote(*args))
            except ActorUnavailableError:  # its node unreachable: lost, or back in a moment
                if self._detached:
                    return _GONE
                time.sleep(WAIT_S)
            except RayActorError:
                return _GONE

    def _close_attempt(self, outcome: str) -> None:
        folder = self.backend.workspace.output_dir(self.record.name)
        status = read_status(folder)
        if status is None or not status.attempts:
            return
        attempts = list(status.attempts)
        if attempts[-1].ended_at is None:
            attempts[-1] = attempts[-1].model_copy(update={"ended_at": utcnow(), "outcome": outcome})
        write_status(folder, status.changed(attempts=attempts, pid=None, updated_at=utcnow()))

    def _end(self, result: WorkerResult, code: int = 0) -> None:
        """Leave the result where the daemon reads a training process's, with the head's paths."""
        ws = self.backend.workspace
        folder = ws.output_dir(self.record.name)
        lora = Path(result.lora).name if result.lora else None
        result = result.model_copy(
            update={
                "folder": folder if folder.is_dir() else None,
                "lora": str(folder / lora) if lora else None,
            }
        )
        result.write(self.result_path)
        if result.outcome is Outcome.FAILED and code == 0:
            code = 1
        self.exitcode = code
        os.write(self._pipe[1], b"x")


def _spelt_in_container(value: Any, root: Path) -> Any:
    """The spec's paths inside the head's workspace, spelt /workspace/... (every node resolves that
    spelling in its own workspace)."""
    prefix = str(root)
    if isinstance(value, dict):
        return {k: _spelt_in_container(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_spelt_in_container(v, root) for v in value]
    if isinstance(value, str) and (value == prefix or value.startswith(prefix + "/")):
        return str(CONTAINER_ROOT) + value[len(prefix) :]
    return value


def _workspace_paths(value: Any) -> set[str]:
    """Every `/workspace/...` path a spec names, relative to the workspace root."""
    if isinstance(value, dict):
        return set().union(*(_workspace_paths(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_workspace_paths(v) for v in value)) if value else set()
    root = f"{CONTAINER_ROOT}/"
    if isinstance(value, str) and value.startswith(root):
        return {value[len(root) :]}
    return set()
