"""Optimizers by TrainSpec name. 8-bit ones come from bitsandbytes (which also runs on CPU)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch

from lorapilot.errors import LoraPilotError

log = logging.getLogger(__name__)


class OptimizerError(LoraPilotError, ValueError):
    """The optimizer or one of its arguments is not usable; the message names it."""


def build_optimizer(
    name: str, groups: Iterable[dict[str, Any]], args: dict[str, Any]
) -> torch.optim.Optimizer:
    """`groups` are torch param groups with their own `lr`; `args` are the user's optimizer_args."""
    groups = list(groups)
    lr = groups[0]["lr"]
    try:
        return _make(name, groups, lr, dict(args))
    except TypeError as exc:  # an optimizer_args key the optimizer does not take
        raise OptimizerError(f"optimizer {name}: {exc}") from exc


def _make(name: str, groups: list[dict[str, Any]], lr: float, args: dict[str, Any]) -> torch.optim.Optimizer:
    if name in ("adamw8bit", "lion8bit", "lion"):
        import bitsandbytes as bnb  # noqa: PLC0415 - heavy import, only when chosen

        cls = {"adamw8bit": bnb.optim.AdamW8bit, "lion8bit": bnb.optim.Lion8bit, "lion": bnb.optim.Lion}[name]
        return cls(groups, lr=lr, **args)
    if name == "adamw":
        if torch.cuda.is_available() and all(p.is_cuda for g in groups for p in g["params"]):
            args.setdefault("fused", True)
        return torch.optim.AdamW(groups, lr=lr, **args)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, **args)
    if name == "adafactor":
        from transformers.optimization import Adafactor  # noqa: PLC0415

        for key, value in (("scale_parameter", False), ("relative_step", False), ("warmup_init", False)):
            args.setdefault(key, value)
        return Adafactor(groups, lr=lr, **args)
    if name == "prodigy":
        from prodigyopt import Prodigy  # noqa: PLC0415

        if lr < 0.1:
            log.warning(
                "prodigy adapts the step size itself and expects learning_rate around 1.0, got %s", lr
            )
        return Prodigy(groups, lr=lr, **args)
    raise OptimizerError(f"unknown optimizer {name!r}")
