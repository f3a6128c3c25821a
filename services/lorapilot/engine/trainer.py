"""The family-agnostic training loop: cached latents in, LoRA files, samples and logs out.

Straight-line per step, as in diffusers' example scripts: noise → prediction → weighted loss →
backward → clip → optimizer step. The family adapter does everything model-specific; this module
never names a family.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lorapilot.atomic_files import write_json_atomic
from lorapilot.data.captions import render_caption
from lorapilot.data.dataset import batch_sampler
from lorapilot.engine.checkpoint import TrainerState, capture_rng, load_state, restore_rng, save_state
from lorapilot.engine.device_copy import to_device
from lorapilot.engine.families import adapter_for
from lorapilot.engine.lora import load_lora_state, lora_state
from lorapilot.engine.lora_export import LoraComponent
from lorapilot.engine.metadata import RunFacts, bucket_info, kohya_metadata
from lorapilot.engine.optim import ELEMENTWISE
from lorapilot.engine.progress import EarlyStopper, LoraEma, Progress
from lorapilot.engine.run_folder import RunFolder, SaveKind
from lorapilot.engine.run_log import MetricPoint, RunLog
from lorapilot.engine.run_setup import fast_path_on, move, offload_vae, precision_on, prepare_run
from lorapilot.engine.sampling import render_samples, sample_trigger
from lorapilot.engine.save_failure import saving
from lorapilot.engine.saving import LoraFileSpec, save_lora, save_periodic
from lorapilot.engine.schedules import build_scheduler
from lorapilot.engine.train_step import FLAT, PER_TENSOR, LoraStep, StepBatch
from lorapilot.spec.model import TrainSpec
from lorapilot.workspace import Workspace

log = logging.getLogger("lorapilot.train")
step_log = logging.getLogger("lorapilot.train.steps")  # one line per logged step; a terminal has the bar


class StopTraining(Exception):  # noqa: N818 - a signal, not an error
    """Raised by an `on_progress` callback to stop cleanly: state and a step-numbered LoRA are
    saved, and a later run of the same spec resumes from there."""


@dataclass
class RunResult:
    lora: Path
    steps: int
    final_loss: float | None
    stopped_early: bool
    stats: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False  # stopped on request before the end; `lora` is a step-numbered save
    warnings: list[str] = field(default_factory=list)  # what went wrong without stopping the run


def train(
    spec: TrainSpec,
    workspace: Workspace,
    on_progress: Callable[[Progress], None] | None = None,
    *,
    resume: bool = True,
    show_progress: bool = True,
) -> RunResult:
    """Train the LoRA `spec` describes; resumes from `state/` of its run folder when there is one."""
    trainer = Trainer(spec, workspace, on_progress, show_progress=show_progress)
    try:
        return trainer.run(resume=resume)
    finally:
        trainer.close()


class Trainer:
    writes_outputs = True  # False in data-parallel ranks other than 0 (engine.distributed): one writer

    def __init__(self, spec, workspace, on_progress, *, show_progress: bool) -> None:
        self.spec: TrainSpec = spec
        self.workspace: Workspace = workspace
        self.on_progress = on_progress
        self.show_progress = show_progress
        self.folder = RunFolder(Path(spec.output.folder), spec.output.name).create()
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.adapter = adapter_for(spec.model.family)
        self.run_log: RunLog | None = None
        self.warnings: list[str] = []  # failed sample renders: reported, never fatal
        self.last_save: str | None = None  # the state a retry resumes from, for a failed save's message

    # -- set-up ---------------------------------------------------------------------------------
    def run(self, *, resume: bool) -> RunResult:
        saved = load_state(self.folder.state) if resume else None
        if self.writes_outputs:
            self.run_log = RunLog(self.folder.logs, resume_step=saved.step if saved else 0)
            write_json_atomic(self.folder.spec_json, self.spec.model_dump(mode="json"))
        log.info("run %s: %s on %s", self.spec.output.name, self.spec.model.family, self.device)
        torch.manual_seed(self.spec.training.seed)  # LoRA initialisation is part of the trajectory
        self._load_and_prepare()
        self._build_optimization(saved.extra.get("optimizer_layout", PER_TENSOR) if saved else None)
        start = 0
        if saved is not None:
            start = self._restore(saved)
            self.last_save = f"state at step {start}"
            log.info("resuming at step %d of %d", start, self.total_steps)
        self.sampled_epochs = self.sampler.epochs_done
        if start == 0 and self.spec.sample.at_start and self.writes_outputs:
            self._sample(0)
        return self._loop(start)

    def _load_and_prepare(self) -> None:
        self.fast = fast_path_on(self.spec.training, self.device)
        run = prepare_run(
            self.spec, self.workspace, self.adapter, self.device, show=self.show_progress, fast=self.fast
        )
        self.model, self.weight_dtype, self.plan, self.items = (
            run.model,
            run.weight_dtype,
            run.plan,
            run.items,
        )
        self.sites, self.text, self.text_cached = run.sites, run.text, run.text_cached
        self.vae_encodes, self.text_encodes = run.vae_encodes, run.text_encodes
        self.assistant = run.assistant
        precision = self.spec.model.weight_dtype, self.spec.training.mixed_precision
        _, self.autocast_dtype = precision_on(self.device, *precision)  # the same choice as the weights'

    def _build_optimization(self, saved_layout: str | None = None) -> None:
        """`saved_layout`: the optimizer layout of the state being resumed, which the run keeps
        (its optimizer state fits only that layout); a new run takes the fast path's."""
        t = self.spec.training
        layout = saved_layout or (FLAT if self.fast and t.optimizer in ELEMENTWISE else PER_TENSOR)
        self.objective = self.adapter.objective(self.model, t, self.device)
        self.lora_step = LoraStep(
            self.adapter,
            self.model,
            self.objective,
            self.sites,
            t,
            device=self.device,
            weight_dtype=self.weight_dtype,
            autocast_dtype=self.autocast_dtype,
            layout=layout,
        )
        step = self.lora_step  # its parameters, optimizer, scaler and noise are the run's state
        self.params, self.optimizer, self.scaler, self.noise_rng = (
            step.params,
            step.optimizer,
            step.scaler,
            step.noise_rng,
        )
        if self.fast and layout == PER_TENSOR and not saved_layout:
            log.info("fast path: %s steps each LoRA tensor on its own (not elementwise)", t.optimizer)
        elif self.fast or layout == FLAT:
            log.info("fast path: fused LoRA layers, %s optimizer layout", layout.replace("_", "-"))
        items = [p.item for p in self.items]
        self.sampler = batch_sampler(items, self.spec.datasets, t.batch_size, seed=t.seed)
        self.batches_per_epoch = len(self.sampler)
        updates_per_epoch = max(1, math.ceil(self.batches_per_epoch / t.gradient_accumulation_steps))
        # Both set: whichever ends first (diffusion-pipe's rule; kohya's reader keeps epochs only).
        lengths = [n for n in (t.max_steps, t.epochs and updates_per_epoch * t.epochs) if n]
        self.total_steps = min(lengths) if lengths else updates_per_epoch
        self.epochs = math.ceil(self.total_steps / updates_per_epoch)
        self.scheduler = build_scheduler(self.optimizer, t, self.total_steps)
        self.data_rng = random.Random(t.seed)
        self.ema = LoraEma(self.params, t.ema_decay) if t.ema_decay else None
        self.stopper = EarlyStopper(t.early_stopping) if t.early_stopping else None
        self.facts = RunFacts(
            session_id=uuid.uuid4().hex,
            started_at=time.time(),
            base_model_version=self.model.facts.kohya.base_model_version,
            architecture=self.model.facts.kohya.architecture,
            num_train_images=self.plan.num_train_images,
            num_reg_images=self.plan.num_reg_images,
            batches_per_epoch=self.batches_per_epoch,
            epochs=self.epochs,
            total_steps=self.total_steps,
            dataset_dirs=self.plan.dataset_dirs,
            reg_dataset_dirs=self.plan.reg_dataset_dirs,
            tag_frequency=self.plan.tag_frequency,
            bucket_info=bucket_info(self.plan.bucket_counts),
        )
        log.info(
            "%d images (%d regularization), %d batches per epoch, %d steps",
            self.plan.num_train_images,
            self.plan.num_reg_images,
            self.batches_per_epoch,
            self.total_steps,
        )

    def _restore(self, saved: TrainerState) -> int:
        load_lora_state(self.sites, saved.lora)
        self.optimizer.load_state_dict(saved.optimizer)
        self.scheduler.load_state_dict(saved.scheduler)
        if self.scaler is not None and saved.scaler:
            self.scaler.load_state_dict(saved.scaler)
        self.sampler.load_state_dict(saved.sampler)
        restore_rng(saved, self.noise_rng, self.data_rng)
        if self.ema is not None and "ema" in saved.extra:
            self.ema.load_state_dict(saved.extra["ema"])
        if self.stopper is not None and "stopper" in saved.extra:
            self.stopper.load_state_dict(saved.extra["stopper"])
        self.facts.session_id = saved.extra.get("session_id", self.facts.session_id)
        self.facts.started_at = saved.extra.get("started_at", self.facts.started_at)
        return saved.step

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self, start: int) -> RunResult:
        t = self.spec.training
        log_every = 1 if self.total_steps <= 200 else 10
        batches = self._batches()
        last_loss: float | None = None
        last_rate = 0.0
        window_start, window_steps = time.perf_counter(), 0
        stopped_early = False
        bar = self._progress_bar(start)
        step = start
        for step in range(start + 1, self.total_steps + 1):
            epochs_before = self.sampler.epochs_done
            for _ in range(t.gradient_accumulation_steps):
                self.lora_step.micro_step(self._batch(next(batches)))
            self._update()
            epoch = self._epoch_to_save(step, epochs_before)
            window_steps += 1
            bar.update(1)
            if step % log_every == 0 or step == self.total_steps:
                last_loss = self.lora_step.take_loss()  # the step's one host read, at log points only
                last_rate = window_steps / max(time.perf_counter() - window_start, 1e-9)
                try:
                    self._report(step, last_loss, last_rate, bar)
                except StopTraining as request:
                    bar.close()
                    return self._interrupt(step, last_loss, str(request), epoch)
                window_start, window_steps = time.perf_counter(), 0
                if self.stopper is not None and self.stopper.update(step, last_loss):
                    log.info("early stopping at step %d: the loss stopped improving", step)
                    stopped_early = True
            elif self.on_progress is not None and last_loss is not None:
                try:  # between logged steps too, so a stop request waits one step, not ten
                    self._poll(step, last_loss, last_rate)
                except StopTraining as request:
                    bar.close()
                    return self._interrupt(step, last_loss, str(request), epoch)
            self._periodic(step, epoch)
            if stopped_early:
                break
        bar.close()
        return self._finish(step, last_loss, stopped_early)

    def _batches(self):
        while True:
            yield from self.sampler
            self.sampler.set_epoch(self.sampler.epoch + 1)

    def _batch(self, indices: list[int]) -> StepBatch:
        """The micro-batch `indices` on the device: flips and captions drawn, copies queued."""
        t = self.spec.training
        prepared = [self.items[i] for i in indices]
        variants = [p.variants[bool(p.item.flip and self.data_rng.random() < 0.5)] for p in prepared]
        latents = to_device(torch.stack([v.latents for v in variants]), self.device, torch.float32)
        captions = [render_caption(p.item.caption_raw, p.item.policy, self.data_rng) for p in prepared]
        weights = [p.item.weight * (t.prior_loss_weight if p.item.is_reg else 1.0) for p in prepared]
        return StepBatch(
            latents,
            self._conditioning(captions),
            [v.geometry for v in variants],
            to_device(torch.tensor(weights), self.device, torch.float32),
        )

    def _conditioning(self, captions: list[str]) -> dict[str, torch.Tensor]:
        if self.text_cached:
            rows = [self.text[c] for c in captions]
        else:
            with self._autocast():
                rows = self.adapter.encode_prompts(self.model, captions, self.spec.training.clip_skip)
        stacked = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
        return {k: to_device(v, self.device, self.weight_dtype) for k, v in stacked.items()}

    def _autocast(self):
        return self.lora_step.autocast()

    def _update(self) -> None:
        self.lora_step.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.params)

    # -- reporting, saving, sampling --------------------------------------------------------------
    def _progress_bar(self, start: int):
        from tqdm import tqdm  # noqa: PLC0415

        return tqdm(
            total=self.total_steps,
            initial=start,
            desc=self.spec.output.name,
            unit="step",
            disable=None if self.show_progress else True,
            dynamic_ncols=True,
        )

    def _report(self, step: int, loss: float, rate: float, bar) -> None:
        lr = self.scheduler.get_last_lr()[0]
        epoch = self.sampler.epoch
        self.run_log.record(MetricPoint(step, loss, lr, rate, epoch, time.time() - self.facts.started_at))
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        step_log.info("step %d/%d loss %.5f lr %.3g %.2f it/s", step, self.total_steps, loss, lr, rate)
        if self.on_progress is not None:
            eta = (self.total_steps - step) / rate if rate > 0 else None
            warnings = tuple(self.warnings)
            self.on_progress(Progress(step, self.total_steps, loss, lr, rate, eta, epoch, warnings))

    def _poll(self, step: int, loss: float, rate: float) -> None:
        """`on_progress` at a step that is not logged: the last logged loss and rate stand in."""
        eta = (self.total_steps - step) / rate if rate > 0 else None
        lr = self.scheduler.get_last_lr()[0]
        epoch = self.sampler.epoch
        self.on_progress(Progress(step, self.total_steps, loss, lr, rate, eta, epoch, tuple(self.warnings)))

    def _epoch_to_save(self, step: int, epochs_before: int) -> int | None:
        """The epoch to save after this step: one `save.every_n_epochs` names ended in it.

        An accumulated step can span an epoch's end (kohya saves after the step it ended in) or,
        with few batches, several ends; the latest named one is saved. The last step writes the
        final LoRA instead.
        """
        every = self.spec.save.every_n_epochs
        done = self.sampler.epochs_done
        if not every or done // every == epochs_before // every or step == self.total_steps:
            return None
        return done // every * every

    def _periodic(self, step: int, epoch: int | None) -> None:
        s = self.spec
        if self._sample_due(step):
            self._sample(step)
        every = s.save.every_n_steps
        by_step = bool(every) and step % every == 0 and step != self.total_steps
        if by_step or epoch is not None:
            self._save_checkpoint(step)
            self._save_periodic(step, by_step, epoch)
            self.run_log.flush()

    def _save_periodic(self, step: int, by_step: bool, epoch: int | None) -> Path | None:
        """The step save and/or the epoch save due now; the step save's path when there is one."""
        components, file_spec = self._components(), self._save_spec()
        lora = None
        if by_step:
            meta = self._metadata(step)
            with saving(f"the LoRA {self.folder.periodic_lora(step).name}", self.last_save):
                lora = save_periodic(
                    self.folder, SaveKind.STEP, step, components, metadata=meta, spec=file_spec
                )
        if epoch is not None:
            meta = self._metadata(step, epoch)
            with saving(f"the LoRA {self.folder.periodic_lora(epoch, SaveKind.EPOCH).name}", self.last_save):
                path = save_periodic(
                    self.folder, SaveKind.EPOCH, epoch, components, metadata=meta, spec=file_spec
                )
            log.info("epoch %d ended in step %d: %s saved", epoch, step, path.name)
        return lora

    def _save_checkpoint(self, step: int) -> None:
        if not self.spec.save.save_state:
            return
        extra = {
            "session_id": self.facts.session_id,
            "started_at": self.facts.started_at,
            "optimizer_layout": self.lora_step.layout,
        }
        if self.ema is not None:
            extra["ema"] = self.ema.state_dict()
        if self.stopper is not None:
            extra["stopper"] = self.stopper.state_dict()
        rng = capture_rng(self.noise_rng, self.data_rng)
        state = TrainerState(
            step=step,
            lora=lora_state(self.sites),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler else None,
            sampler=self.sampler.state_dict(),
            extra=extra,
            **rng,
        )
        with saving(f"the training state at step {step}", self.last_save):
            save_state(self.folder.state, state)
        self.last_save = f"state at step {step}"
        log.info("state saved at step %d", step)

    def _sample_due(self, step: int) -> bool:
        """A render after this step: every `sample.every` steps, and after every `every_n_epochs`-th
        epoch (kohya's sample_every_n_epochs). The last step renders after the LoRA is written."""
        sample, done = self.spec.sample, self.sampler.epochs_done
        by_step = bool(sample.every) and step % sample.every == 0
        n = sample.every_n_epochs
        by_epoch = bool(n) and done // n > self.sampled_epochs // n
        self.sampled_epochs = done
        return bool(sample.prompts) and (by_step or by_epoch) and step != self.total_steps

    def _sample(self, step: int, *, after_final: bool = False) -> None:
        """Render the sample prompts; a failed render is a warning (samples are previews, the LoRA is
        what the run is for), logged and carried in the run's result."""
        try:
            self._render(step)
        except Exception as exc:  # any failure of a preview: it must not end the run
            message = f"sample render at step {step} failed: {type(exc).__name__}: {exc}"
            then = "the LoRA is written" if after_final else "training continues"
            log.warning("%s; %s", message, then, exc_info=True)
            self.warnings.append(message)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # an out-of-memory render must not starve the next steps
        finally:
            for site in self.sites:
                site.module.train()
            if self.spec.training.low_vram:
                offload_vae(self.model)

    def _render(self, step: int) -> None:
        s = self.spec
        size = (s.sample.width or self._sample_side(), s.sample.height or self._sample_side())
        for name in ("vae", *self.adapter.text_encoder_names()):
            move(self.model[name], self.device)
        for site in self.sites:
            site.module.eval()
        paths = [self.folder.sample(step, k) for k in range(len(s.sample.prompts))]
        with self._ema_weights(), self.assistant.left_out() if self.assistant else nullcontext():
            render_samples(
                self.adapter,
                self.model,
                s.sample,
                size=size,
                trigger=sample_trigger(s),
                paths=paths,
                device=self.device,
                dtype=self.weight_dtype,
                embeddings=self.text if self.text_cached else None,
            )

    def _sample_side(self) -> int:
        return max(self.spec.datasets[0].resolutions)

    def _ema_weights(self):
        return self.ema.swapped_in(self.params) if self.ema is not None else nullcontext()

    def _save_spec(self) -> LoraFileSpec:
        """The save section with the key layout the family's loaders read."""
        save = self.spec.save
        return LoraFileSpec(self.adapter.lora_file_format(save.format), save.dtype, save.keep_last)

    def _components(self) -> list[LoraComponent]:
        return [LoraComponent(s.site.name, s.site.kohya_prefix, s.module) for s in self.sites]

    def _metadata(self, step: int, epoch: int | None = None) -> dict[str, str]:
        """kohya's metadata at `step`; an epoch save names its epoch, as kohya's ss_epoch does."""
        self.facts.step = step
        self.facts.epoch = epoch if epoch is not None else self.sampler.epoch + 1
        return kohya_metadata(self.spec, self.facts)

    def _interrupt(self, step: int, loss: float | None, reason: str, epoch: int | None) -> RunResult:
        log.info(
            "stopping at step %d on request%s; the run resumes from here",
            step,
            f": {reason}" if reason else "",
        )
        self._save_checkpoint(step)
        lora = self._save_periodic(step, True, epoch)  # the epoch's save too: the resumed run is past it
        self.run_log.flush()
        stats = {"vae_encodes": self.vae_encodes, "text_encodes": self.text_encodes, "steps": step}
        return RunResult(
            lora, step, loss, stopped_early=False, stats=stats, interrupted=True, warnings=list(self.warnings)
        )

    def _finish(self, step: int, loss: float | None, stopped_early: bool) -> RunResult:
        s = self.spec
        self._save_checkpoint(step)
        self.facts.finished_at = time.time()
        with self._ema_weights(), saving(f"the LoRA {self.folder.lora.name}", self.last_save):
            save_lora(self.folder.lora, self._components(), self._metadata(step), self._save_spec())
        log.info("LoRA written: %s", self.folder.lora)
        if s.sample.prompts and (s.sample.every or s.sample.every_n_epochs):
            self._sample(step, after_final=True)
        self.run_log.flush()
        stats = {"vae_encodes": self.vae_encodes, "text_encodes": self.text_encodes, "steps": step}
        return RunResult(self.folder.lora, step, loss, stopped_early, stats, warnings=list(self.warnings))

    def close(self) -> None:
        if self.run_log is not None:
            self.run_log.close()
