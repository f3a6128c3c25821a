"""Learning-rate schedules with warmup and a floor, as multipliers of each group's base LR."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR

from lorapilot.spec.model import TrainingSpec


def lr_multiplier(
    kind: str, total_steps: int, warmup: int, floor: float, *, cycles: int = 1, power: float = 1.0
) -> Callable[[int], float]:
    """step → multiplier of the base LR. `floor` is the smallest multiplier the decay reaches."""
    warmup = min(warmup, max(total_steps - 1, 0))
    decay_steps = max(total_steps - warmup, 1)

    def multiplier(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / (warmup + 1)
        if kind in ("constant", "constant_with_warmup"):
            return 1.0
        progress = min((step - warmup) / decay_steps, 1.0)
        if kind == "linear":
            shape = 1.0 - progress
        elif kind == "cosine":
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        elif kind == "cosine_with_restarts":
            shape = 0.0 if progress >= 1.0 else 0.5 * (1.0 + math.cos(math.pi * ((cycles * progress) % 1.0)))
        elif kind == "polynomial":
            shape = (1.0 - progress) ** power
        else:
            raise ValueError(f"unknown lr_scheduler {kind!r}")
        return floor + (1.0 - floor) * shape

    return multiplier


def build_scheduler(optimizer: torch.optim.Optimizer, training: TrainingSpec, total_steps: int) -> LambdaLR:
    """One multiplier per parameter group: the absolute `lr_end` floor is a different ratio for each."""
    lambdas = []
    for group in optimizer.param_groups:
        base = group.get("initial_lr", group["lr"])
        floor = min(training.lr_end / base, 1.0) if base > 0 else 0.0
        lambdas.append(
            lr_multiplier(
                training.lr_scheduler,
                total_steps,
                training.warmup_steps,
                floor,
                cycles=training.lr_cycles,
                power=training.lr_power,
            )
        )
    return LambdaLR(optimizer, lambdas)
