"""One attempt of one job on a cluster node: `JobRunner`, a detached Ray actor named after the job.

Detached and named, so it outlives a restart of the head's daemon, which finds it by name and
re-attaches instead of starting the job twice. It trains in the node's own workspace: it fetches the
job's inputs from the head, writes the job file there with the spec's paths spelt `/workspace/...`
(so the node's validation resolves them in its own workspace, and a path outside it is refused), and
mirrors the run folder back to the head while it trains. A job wider than one node runs through Ray
Train's `TorchTrainer`: every rank fetches the inputs on its node, rank 0 reports and writes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lorapilot.spool import JobState, Spool
from lorapilot.spool.job import Job, read_record
from lorapilot.trainpilot.cluster.transfer import HEAD_TOKEN, OutputMirror, fetch_inputs, remove_local_outputs
from lorapilot.trainpilot.handoff import Assignment, Outcome, WorkerResult
from lorapilot.trainpilot.worker import Interrupted, JobProcess, job_spec
from lorapilot.workspace import Workspace

if TYPE_CHECKING:
    from lorapilot.engine.trainer import RunResult
    from lorapilot.spec import TrainSpec

log = logging.getLogger("lorapilot.cluster.runner")
ACTOR_PREFIX = "lorapilot-job-"
STOP_POLL_S = 0.5  # rank 0 of a multi-node job asks the runner for a stop request at most this often


def actor_name(job_id: str) -> str:
    return f"{ACTOR_PREFIX}{job_id}"


@dataclass(frozen=True)
class RunOrder:
    """What the head sends a node for one attempt (picklable)."""

    job_id: str
    name: str
    job: dict[str, Any]  # the job envelope, its spec's paths spelt /workspace/...
    inputs: list[str]  # workspace-relative files and folders the spec reads
    processes: int  # ranks: GPUs (or CPU slots) the job trains on
    multi_node: bool  # the ranks are spread over nodes (Ray Train) instead of one node's processes
    use_gpu: bool
    sync_interval_s: float
    head_files: Any  # the head's HeadFiles actor
    head_root: str  # the head's workspace: a node whose own workspace is this folder shares it
    head_token: str  # what the head wrote in that folder, to tell a shared filesystem from a namesake


def node_name() -> str:
    """This Ray node's name (`ray start --node-name`; Ray uses the node's IP when none was given)."""
    import ray  # noqa: PLC0415

    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node["NodeID"] == node_id:
            return str(node.get("NodeName") or node["NodeManagerAddress"])
    return node_id[:12]


def node_workspace() -> Workspace:
    """Where jobs run on this node: a folder of the node's own workspace (LORAPILOT_WORKSPACE)."""
    return Workspace.from_env(Workspace.from_env().cluster_staging)


class Stop:
    """A stop request, read by the training loop's progress callback (as the local StopRequests)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.in_loop = False


class RemoteStop(Stop):
    """Rank 0 of a multi-node job: the request arrives at the runner actor, which may be elsewhere."""

    def __init__(self, runner: Any) -> None:
        super().__init__()
        self.runner = runner
        self._asked = 0.0

    @property  # type: ignore[override]
    def reason(self) -> str | None:
        import ray  # noqa: PLC0415

        if self._reason is None and time.monotonic() - self._asked >= STOP_POLL_S:
            self._asked = time.monotonic()
            self._reason = ray.get(self.runner.stop_reason.remote())
        return self._reason

    @reason.setter
    def reason(self, value: str | None) -> None:
        self._reason = value


class JobRunner:
    """The Ray actor (`ray.remote(JobRunner).options(name=actor_name(id), lifetime="detached", ...)`)."""

    def __init__(self, order: RunOrder) -> None:
        self.order = order
        self.stop = Stop()
        self.result: dict[str, Any] | None = None
        self.node = node_name()
        self.thread: threading.Thread | None = None

    def start(self) -> str:
        """Start the attempt (once; a re-attaching daemon calling it again changes nothing)."""
        import ray  # noqa: PLC0415

        if self.thread is None:
            target = self._multi_node if self.order.multi_node else self._single_node
            self.thread = threading.Thread(target=self._guarded, args=(target,), name="job", daemon=True)
            self.thread.start()
        return ray.get_runtime_context().get_node_id()

    def wait(self, timeout: float) -> dict[str, Any] | None:
        """The result once the attempt has ended (None while it runs: a multi-node job's rank 0
        reports before Ray Train has released the ranks' resources, which a kill would leak)."""
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                return None
        return self.result

    def request_stop(self, reason: str) -> None:
        self.stop.reason = reason

    def stop_reason(self) -> str | None:
        return self.stop.reason

    def report(self, result: dict[str, Any]) -> None:
        """Rank 0 of a multi-node job hands its result over."""
        self.result = result

    # -- the attempt ----------------------------------------------------------------------------------
    def _guarded(self, target: Any) -> None:
        try:
            target()
        except Exception as exc:
            log.error("job %s on %s:\n%s", self.order.job_id, self.node, traceback.format_exc())
            if self.result is None:
                self.result = _failed(f"{type(exc).__name__}: {exc}")

    def _single_node(self) -> None:
        staged = stage(self.order, self.stop)
        if staged is None:
            self.result = _interrupted(self.stop.reason)
            return
        job = JobProcess(staged.assignment(self.order.processes), self.stop, node=self.node)
        self.result = _run_mirrored(job, staged, self.order).model_dump(mode="json")

    def _multi_node(self) -> None:
        import ray  # noqa: PLC0415
        from ray.train import FailureConfig, RunConfig, ScalingConfig  # noqa: PLC0415
        from ray.train.torch import TorchConfig, TorchTrainer  # noqa: PLC0415

        order = self.order
        unit = "GPU" if order.use_gpu else "CPU"
        trainer = TorchTrainer(
            _rank_main,
            train_loop_config={"order": order, "runner": ray.get_runtime_context().current_actor},
            scaling_config=ScalingConfig(
                num_workers=order.processes, use_gpu=order.use_gpu, resources_per_worker={unit: 1}
            ),
            torch_config=TorchConfig(backend="nccl" if order.use_gpu else "gloo"),
            run_config=RunConfig(
                name=f"lorapilot-{order.job_id}",
                storage_path=str(Workspace.from_env().cache / "cluster" / "ray-train"),
                failure_config=FailureConfig(max_failures=0),  # a lost node: the head resumes the job
            ),
        )
        trainer.fit()
        if self.result is None:
            self.result = _failed("the data-parallel run ended without a result from rank 0")


@dataclass(frozen=True)
class Staged:
    """Where a node runs a job: its workspace and job file (the head's own, on a shared filesystem)."""

    ws: Workspace
    job_path: Path
    shared: bool

    def assignment(self, processes: int) -> Assignment:
        return Assignment(
            workspace=str(self.ws.root),
            job_path=str(self.job_path),
            result_path=str(self.job_path.with_name(f".{self.job_path.stem}.node-result.json")),
            devices=os.environ.get("CUDA_VISIBLE_DEVICES") or None,
            processes=processes,
        )


def shares_head_workspace(order: RunOrder) -> bool:
    """This node's workspace is the head's folder on a filesystem both see: no transfer needed."""
    own = Workspace.from_env().root
    token = Path(order.head_root) / HEAD_TOKEN
    try:
        return own.resolve() == Path(order.head_root).resolve() and token.read_text() == order.head_token
    except OSError:
        return False


def stage(order: RunOrder, stop: Stop) -> Staged | None:
    """The node's workspace with the job's inputs and the head's copy of its run folder, and the job
    file in its running/; None when a stop arrived meanwhile. Nothing to copy on a shared filesystem."""
    if shares_head_workspace(order):
        head = Workspace.from_env(order.head_root)
        return Staged(head, head.job_dir("running") / f"{order.job_id}.yaml", shared=True)
    ws = node_workspace()
    for folder in (ws.root, ws.job_dir("running"), ws.outputs):
        folder.mkdir(parents=True, exist_ok=True)
    remove_local_outputs(ws, order.name)
    fetch_inputs(
        order.head_files, [*order.inputs, f"outputs/{order.name}"], ws, lambda: stop.reason is not None
    )
    if stop.reason is not None:
        return None
    job_path = ws.job_dir("running") / f"{order.job_id}.yaml"
    job_path.write_text(yaml.safe_dump(order.job, sort_keys=False))
    return Staged(ws, job_path, shared=False)


def _run_mirrored(job: JobProcess, staged: Staged, order: RunOrder) -> WorkerResult:
    """Train, with the run folder mirrored to the head while it runs (unless it is the head's)."""
    mirror = None
    if not staged.shared:
        mirror = OutputMirror(order.head_files, staged.ws, order.name, order.sync_interval_s)
        mirror.know(_present(staged.ws, order.name))
        mirror.start()
    try:
        result = job.run()
    except Interrupted as exc:
        result = job.result(Outcome.INTERRUPTED, error=str(exc))
    if mirror is not None:
        mirror.finish()
    return result


def _present(ws: Workspace, name: str) -> list[str]:
    folder = ws.output_dir(name)
    return [p.relative_to(ws.root).as_posix() for p in folder.rglob("*") if p.is_file()]


def _failed(error: str) -> dict[str, Any]:
    return WorkerResult(outcome=Outcome.FAILED, error=error).model_dump(mode="json")


def _interrupted(reason: str | None) -> dict[str, Any]:
    return WorkerResult(outcome=Outcome.INTERRUPTED, error=reason).model_dump(mode="json")


# -- a rank of a multi-node job (a Ray Train worker) -------------------------------------------------
class RankZeroJob(JobProcess):
    """Rank 0: the job process of one node, its training the data-parallel loop with the other ranks."""

    def _run_training(self, spec: TrainSpec) -> RunResult:
        from lorapilot.engine.distributed import DistributedTrainer  # noqa: PLC0415

        trainer = DistributedTrainer(spec, self.ws, self._progress, show_progress=False)
        try:
            return trainer.run(resume=True)
        finally:
            trainer.close()


def _rank_main(config: dict[str, Any]) -> None:
    import ray.train  # noqa: PLC0415

    order: RunOrder = config["order"]
    runner = config["runner"]
    rank = ray.train.get_context().get_world_rank()
    stop = RemoteStop(runner) if rank == 0 else Stop()
    staged = stage(order, stop)
    if staged is None:
        if rank == 0:
            ray.get(runner.report.remote(_interrupted(stop.reason)))
        return
    if rank == 0:
        job = RankZeroJob(staged.assignment(1), stop, node=node_name())
        ray.get(runner.report.remote(_run_mirrored(job, staged, order).model_dump(mode="json")))
        return
    from lorapilot.engine.distributed import DistributedTrainer  # noqa: PLC0415

    record = read_record(staged.job_path, JobState.RUNNING)
    spec = job_spec(record, staged.ws, Spool(staged.ws))
    trainer = DistributedTrainer(spec, staged.ws, None, show_progress=False)
    try:
        trainer.run(resume=True)
    finally:
        trainer.close()


def job_envelope(job: Job, spec: dict[str, Any]) -> dict[str, Any]:
    """The envelope a node runs: the head's job with its normalised spec."""
    data = job.model_dump(mode="json", exclude={"profile", "dataset", "overrides"})
    data["spec"] = spec
    return data
