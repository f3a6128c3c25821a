"""One optimizer step's arithmetic: noise → prediction → weighted loss → backward, then clip → step.

Kept apart from the loop (`trainer.py`) so that what a step costs can be measured on its own
(`scripts/benchmark-gpu` runs this class beside a diffusers + peft loop). Nothing here reads a
value back to the host: the loss adds up on the device and is read only when the loop asks
(`take_loss`, at log points), and gradient clipping keeps its norm on the device. On the fast
path (`training.fast`) the optimizer steps one flat buffer per param group (`FlatLoraParameters`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from lorapilot.engine.families.base import Conditioning, FamilyAdapter, ImageGeometry, LoadedModel
from lorapilot.engine.flat_params import FlatLoraParameters
from lorapilot.engine.lora import InjectedSite
from lorapilot.engine.objective import Objective
from lorapilot.engine.optim import build_optimizer, flat_layout_groups, lora_param_groups
from lorapilot.spec.model import TrainingSpec

FLAT, PER_TENSOR = "flat", "per_tensor"  # optimizer layouts, recorded in the saved state


@dataclass
class StepBatch:
    """A micro-batch on the training device."""

    latents: torch.Tensor  # float32
    conditioning: Conditioning  # each tensor with the batch dim, in the weight dtype
    geometry: Sequence[ImageGeometry]
    item_weights: torch.Tensor  # per image: dataset weight × prior_loss_weight for regularization


class LoraStep:
    def __init__(
        self,
        adapter: FamilyAdapter,
        model: LoadedModel,
        objective: Objective,
        sites: Sequence[InjectedSite],
        training: TrainingSpec,
        *,
        device: torch.device,
        weight_dtype: torch.dtype,
        autocast_dtype: torch.dtype | None,
        layout: str = PER_TENSOR,
    ) -> None:
        if layout not in (FLAT, PER_TENSOR):
            raise ValueError(f"optimizer layout {layout!r}")
        self.adapter, self.model, self.objective, self.training = adapter, model, objective, training
        self.device, self.weight_dtype, self.autocast_dtype = device, weight_dtype, autocast_dtype
        self.layout = layout
        groups = lora_param_groups(sites, training)
        self.params = [p for g in groups for p in g["params"]]  # per tensor, in the groups' order
        if layout == FLAT:
            self.flat = FlatLoraParameters(
                flat_layout_groups(training.optimizer, groups, training.optimizer_args)
            )
        else:
            self.flat = None
        optimizer_groups = self.flat.optimizer_groups() if self.flat else groups
        self.optimizer = build_optimizer(
            training.optimizer, optimizer_groups, training.optimizer_args, fused=self.flat is not None
        )
        self.scaler = torch.amp.GradScaler(device.type) if autocast_dtype is torch.float16 else None
        self.noise_rng = torch.Generator(device=device).manual_seed(training.seed)
        self._loss_sum = torch.zeros((), device=device)
        self._micro_steps = 0

    @property
    def stepped_params(self) -> list[torch.Tensor]:
        """What the optimizer and the gradient norm see: the flat buffers or the LoRA tensors."""
        return self.flat.flat if self.flat else self.params

    def micro_step(self, batch: StepBatch) -> None:
        t = self.training
        noised = self.objective.noise(batch.latents, self.noise_rng, t.noise_offset, t.min_snr_gamma)
        with self.autocast():
            pred = self.adapter.predict(
                self.model,
                noised.noisy.to(self.weight_dtype),
                noised.timesteps,
                batch.conditioning,
                batch.geometry,
            )
        per_sample = torch.nn.functional.mse_loss(pred.float(), noised.target.float(), reduction="none")
        per_sample = per_sample.mean(dim=list(range(1, per_sample.ndim)))
        loss = (per_sample * noised.weights * batch.item_weights).mean() / t.gradient_accumulation_steps
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        self._loss_sum += loss.detach() * t.gradient_accumulation_steps
        self._micro_steps += 1

    def update(self) -> None:
        """Clip, step and zero the gradients (the LR schedule and EMA are the loop's)."""
        params = self.stepped_params
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.training.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, self.training.max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.flat is not None:
            self.flat.zero_grad()
        else:
            self.optimizer.zero_grad(set_to_none=True)

    def take_loss(self) -> float:
        """The mean loss of the micro-steps since the last call; the one host read of a step."""
        mean = float(self._loss_sum) / max(self._micro_steps, 1)
        self._loss_sum.zero_()
        self._micro_steps = 0
        return mean

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)
