"""Data-parallel training over several processes with torch.distributed: NCCL across GPUs, one
per process, or gloo on CPU.

Rank 0 is the calling process: it alone writes the run folder (logs, state, LoRA files, samples),
reports progress and takes stop requests, which it passes on so that every rank stops at the same
step. Ranks 1..N-1 are spawned processes. Each optimizer step, every rank trains on its own
batch of the step's N (the single-process batch order, dealt out in turn); the LoRA gradients are
averaged with all-reduce before the step, so the weights stay identical on every rank and N
processes train like one with an N-times larger batch. Resuming works as for one process: every
rank loads rank 0's saved state.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

import torch
import torch.distributed as dist

from lorapilot.engine.checkpoint import TrainerState
from lorapilot.engine.progress import Progress
from lorapilot.engine.schedules import build_scheduler
from lorapilot.engine.trainer import RunResult, StopTraining, Trainer
from lorapilot.spec.model import TrainSpec
from lorapilot.workspace import Workspace

log = logging.getLogger("lorapilot.train.distributed")


def train_distributed(
    spec: TrainSpec,
    workspace: Workspace,
    world_size: int,
    on_progress: Callable[[Progress], None] | None = None,
    *,
    devices: Sequence[str] | None = None,
    resume: bool = True,
    show_progress: bool = True,
) -> RunResult:
    """Train `spec` with `world_size` processes; `devices` gives each rank its GPU (None: CPU)."""
    if world_size < 2:
        raise ValueError(f"world_size must be at least 2 for data-parallel training, got {world_size}")
    if devices is not None and len(devices) != world_size:
        raise ValueError(f"{world_size} processes need {world_size} GPUs, got {list(devices)}")
    backend = "nccl" if devices else "gloo"
    rendezvous = tempfile.mkdtemp(prefix="lorapilot-ddp-")
    init = f"file://{rendezvous}/store"
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA state inherited
    run = _Run(world_size, init, spec.model_dump(mode="json"), str(workspace.root), devices, resume)
    ranks = []
    for rank in range(1, world_size):
        process = context.Process(
            target=_rank_main,
            args=(rank, run),
            name=f"lorapilot-rank{rank}",
        )
        process.start()
        ranks.append(process)
    if devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[0]
    trainer = None
    try:
        dist.init_process_group(backend, init_method=init, rank=0, world_size=world_size)
        trainer = DistributedTrainer(spec, workspace, on_progress, show_progress=show_progress)
        result = trainer.run(resume=resume)
    finally:
        if trainer is not None:
            trainer.close()
        if dist.is_initialized():
            dist.destroy_process_group()
        _end(ranks)
        shutil.rmtree(rendezvous, ignore_errors=True)
    failed = [f"rank {i} exited with {p.exitcode}" for i, p in enumerate(ranks, start=1) if p.exitcode]
    if failed:
        raise RuntimeError("data-parallel training: " + "; ".join(failed))
    return result


def _end(ranks: list[Any], timeout: float = 60.0) -> None:
    for process in ranks:
        process.join(timeout)
        if process.exitcode is None:
            log.warning("%s did not end; killing it", process.name)
            process.kill()
            process.join(10)


@dataclass(frozen=True)
class _Run:
    """What a spawned rank needs to join the run (picklable)."""

    world_size: int
    init: str
    spec: dict[str, Any]
    workspace: str
    devices: Sequence[str] | None
    resume: bool


def _rank_main(rank: int, run: _Run) -> None:
    """A rank other than 0: trains in step with rank 0 and writes nothing."""
    # Rank 0 takes Ctrl-C and SIGTERM and stops every rank at the same step; a rank killed on its
    # own would leave the others waiting in a collective.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    if run.devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = run.devices[rank]
    backend = "nccl" if run.devices else "gloo"
    dist.init_process_group(backend, init_method=run.init, rank=rank, world_size=run.world_size)
    spec = TrainSpec.model_validate(run.spec)
    trainer = DistributedTrainer(spec, Workspace.from_env(run.workspace), None, show_progress=False)
    try:
        trainer.run(resume=run.resume)
    finally:
        trainer.close()
        dist.destroy_process_group()


def _exit_with_parent() -> None:
    """Rank 0 gone (killed, crashed): nothing to save here, so leave at once."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])
        os._exit(1)


class DistributedTrainer(Trainer):
    """The training loop with the collective steps of data parallelism added at its seams."""

    def __init__(self, spec, workspace, on_progress, *, show_progress: bool) -> None:
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        super().__init__(spec, workspace, on_progress, show_progress=show_progress and self.rank == 0)
        self.writes_outputs = self.rank == 0

    def _load_and_prepare(self) -> None:
        # Rank 0 encodes latents and captions into the shared caches first; the others read them.
        if self.rank:
            dist.barrier()
        super()._load_and_prepare()
        if not self.rank:
            dist.barrier()

    def _build_optimization(self, saved_layout: str | None = None) -> None:
        super()._build_optimization(saved_layout)
        t = self.spec.training
        if t.epochs:  # each step uses `world` batches, so an epoch has fewer steps
            per_rank = math.ceil(self.batches_per_epoch / self.world)
            updates = max(1, math.ceil(per_rank / t.gradient_accumulation_steps))
            # with max_steps too: whichever ends first, as in one process
            self.total_steps = min(n for n in (t.max_steps, updates * t.epochs) if n)
            self.facts.total_steps = self.total_steps
            self.scheduler = build_scheduler(self.optimizer, t, self.total_steps)
        self._reseed(0)
        with torch.no_grad():
            for param in self.params:  # identical already (same seed); made certain
                dist.broadcast(param.data, 0)
        if self.stopper is not None:
            self.stopper = _AgreedStopper(self.stopper, self.device, self.world)
        if self.rank == 0:
            log.info("data-parallel: %d processes (%s)", self.world, dist.get_backend())

    def _restore(self, saved: TrainerState) -> int:
        step = super()._restore(saved)
        self._reseed(step)  # the saved generators are rank 0's
        return step

    def _reseed(self, step: int) -> None:
        """Each rank its own noise and augmentation draws; rank 0 keeps the single-process ones."""
        if self.rank:
            seed = (self.spec.training.seed + 1_000_003 * self.rank + step) % 2**63
            self.noise_rng.manual_seed(seed)
            self.data_rng.seed(seed)

    def _batches(self) -> Iterator[list[int]]:
        stream = super()._batches()
        while True:
            turn = [next(stream) for _ in range(self.world)]
            yield turn[self.rank]

    def _update(self) -> None:
        # The same set on every rank: the flat buffers on the fast path, else each LoRA tensor.
        grads = [p.grad for p in self.lora_step.stepped_params if p.grad is not None]
        if grads:
            flat = torch._utils._flatten_dense_tensors(grads)
            dist.all_reduce(flat)
            flat /= self.world
            for grad, averaged in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads), strict=True):
                grad.copy_(averaged)
        super()._update()

    def _report(self, step: int, loss: float, rate: float, bar) -> None:
        shared = torch.tensor([loss], dtype=torch.float64, device=self.device)
        dist.all_reduce(shared)
        reason = ""
        if self.rank == 0:
            try:
                super()._report(step, float(shared[0]) / self.world, rate, bar)
            except StopTraining as request:
                reason = str(request) or "stop requested"
        stop = torch.tensor([1.0 if reason else 0.0], device=self.device)
        dist.broadcast(stop, 0)
        if stop.item():
            raise StopTraining(reason)

    def _periodic(self, step: int, epoch: int | None) -> None:
        if self.rank == 0:
            super()._periodic(step, epoch)

    def _interrupt(self, step: int, loss: float | None, reason: str, epoch: int | None) -> RunResult:
        if self.rank == 0:
            return super()._interrupt(step, loss, reason, epoch)
        return RunResult(self.folder.periodic_lora(step), step, loss, stopped_early=False, interrupted=True)

    def _finish(self, step: int, loss: float | None, stopped_early: bool) -> RunResult:
        if self.rank == 0:
            return super()._finish(step, loss, stopped_early)
        return RunResult(self.folder.lora, step, loss, stopped_early)


class _AgreedStopper:
    """Early stopping decided on the loss averaged over ranks, so every rank stops at the same step."""

    def __init__(self, inner: Any, device: torch.device, world: int) -> None:
        self.inner, self.device, self.world = inner, device, world

    def update(self, step: int, loss: float) -> bool:
        shared = torch.tensor([loss], dtype=torch.float64, device=self.device)
        dist.all_reduce(shared)
        return self.inner.update(step, float(shared[0]) / self.world)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)
