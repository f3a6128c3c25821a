"""What the loop reports and the small trackers it keeps: progress, early stopping, weight EMA."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from lorapilot.spec.model import EarlyStoppingSpec


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    loss: float
    lr: float
    it_per_s: float
    eta_s: float | None
    epoch: int
    warnings: tuple[str, ...] = ()  # failed sample renders so far; the run goes on


class EarlyStopper:
    """Stops when a smoothed loss has not improved by `min_delta` for `patience` evaluations."""

    def __init__(self, spec: EarlyStoppingSpec, smoothing: float = 0.9) -> None:
        self.spec = spec
        self.smoothing = smoothing
        self.smoothed: float | None = None
        self.best = float("inf")
        self.stale = 0
        self.last_eval = 0

    def update(self, step: int, loss: float) -> bool:
        s = self.smoothing
        self.smoothed = loss if self.smoothed is None else s * self.smoothed + (1 - s) * loss
        if step - self.last_eval < self.spec.every:
            return False
        self.last_eval = step
        if self.smoothed < self.best - self.spec.min_delta:
            self.best, self.stale = self.smoothed, 0
        else:
            self.stale += 1
        return self.stale >= self.spec.patience

    def state_dict(self) -> dict[str, Any]:
        return {
            "smoothed": self.smoothed,
            "best": self.best,
            "stale": self.stale,
            "last_eval": self.last_eval,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.smoothed, self.best = state["smoothed"], state["best"]
        self.stale, self.last_eval = state["stale"], state["last_eval"]


class LoraEma:
    """Exponential moving average of the LoRA weights; saves and samples use the averaged ones."""

    def __init__(self, params: Sequence[torch.Tensor], decay: float) -> None:
        self.decay = decay
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self, params: Sequence[torch.Tensor]) -> None:
        for shadow, param in zip(self.shadow, params, strict=True):
            shadow.lerp_(param.detach(), 1.0 - self.decay)

    @contextmanager
    def swapped_in(self, params: Sequence[torch.Tensor]) -> Iterator[None]:
        backup = [p.detach().clone() for p in params]
        with torch.no_grad():
            for param, shadow in zip(params, self.shadow, strict=True):
                param.copy_(shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, saved in zip(params, backup, strict=True):
                    param.copy_(saved)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "shadow": [s.cpu() for s in self.shadow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for shadow, saved in zip(self.shadow, state["shadow"], strict=True):
            shadow.copy_(saved)
