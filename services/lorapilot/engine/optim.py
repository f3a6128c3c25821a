"""Optimizers by TrainSpec name. 8-bit ones come from bitsandbytes (which also runs on CPU)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from lorapilot.engine.lora import InjectedSite
from lorapilot.errors import LoraPilotError
from lorapilot.spec.model import TrainingSpec

log = logging.getLogger(__name__)


class OptimizerError(LoraPilotError, ValueError):
    """The optimizer or one of its arguments is not usable; the message names it."""


def lora_param_groups(sites: Sequence[InjectedSite], training: TrainingSpec) -> list[dict[str, Any]]:
    """One param group per LoRA site at its LR (text encoders: text_encoder_lr, else unet_lr, else
    learning_rate). With LoRA+ (Hayou et al. 2024) the up matrices (peft's lora_B) of each site get a
    group of their own at loraplus_lr_ratio × the site's LR, as sd-scripts' networks do."""
    t = training
    groups = []
    for site in sites:
        lr = (t.text_encoder_lr if site.site.is_text_encoder else t.unet_lr) or t.learning_rate
        named = site.named_parameters()
        up = [p for n, p in named if ".lora_B." in n] if t.loraplus_lr_ratio else []
        up_ids = {id(p) for p in up}
        groups.append(
            {"params": [p for _, p in named if id(p) not in up_ids], "lr": lr, "name": site.site.name}
        )
        if up:
            groups.append({"params": up, "lr": lr * t.loraplus_lr_ratio, "name": f"{site.site.name}.lora_up"})
    if t.loraplus_lr_ratio:
        log.info("LoRA+: up matrices learn at %s × their LR", t.loraplus_lr_ratio)
    return groups


def build_optimizer(
    name: str, groups: Iterable[dict[str, Any]], args: dict[str, Any], *, fused: bool = False
) -> torch.optim.Optimizer:
    """`groups` are torch param groups with their own `lr`; `args` are the user's optimizer_args.

    `fused`: torch's AdamW as one fused kernel on any device (the fast path); without it, fused on
    CUDA only. The unfused one reads its step count back to the host every step.
    """
    groups = list(groups)
    lr = groups[0]["lr"]
    try:
        return _make(name, groups, lr, dict(args), fused)
    except TypeError as exc:  # an optimizer_args key the optimizer does not take
        raise OptimizerError(f"optimizer {name}: {exc}") from exc


def _make(
    name: str, groups: list[dict[str, Any]], lr: float, args: dict[str, Any], fused: bool
) -> torch.optim.Optimizer:
    if name in ("adamw8bit", "lion8bit", "lion"):
        import bitsandbytes as bnb  # noqa: PLC0415 - heavy import, only when chosen

        cls = {"adamw8bit": bnb.optim.AdamW8bit, "lion8bit": bnb.optim.Lion8bit, "lion": bnb.optim.Lion}[name]
        return cls(groups, lr=lr, **args)
    if name == "adamw":
        on_cuda = torch.cuda.is_available() and all(p.is_cuda for g in groups for p in g["params"])
        if fused or on_cuda:
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
