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


# Optimizers whose step over a concatenation of tensors is their step over each tensor: the ones
# the flat layout may serve. Adafactor factors each matrix; Prodigy sums over every tensor.
ELEMENTWISE = frozenset({"adamw", "adamw8bit", "lion", "lion8bit", "sgd"})
_BNB_8BIT = frozenset({"adamw8bit", "lion8bit"})
_BNB_MIN_8BIT_SIZE = 4096  # bitsandbytes' default: smaller tensors keep 32-bit state


def flat_layout_groups(name: str, groups: list[dict[str, Any]], args: dict[str, Any]) -> list[dict[str, Any]]:
    """The param groups to flatten for optimizer `name`: as given, except that for bitsandbytes'
    8-bit optimizers the tensors it keeps in 32-bit state (under `min_8bit_size` elements) go into a
    group of their own that keeps 32-bit state, so the flat step stays the per-tensor step."""
    if name not in _BNB_8BIT:
        return groups
    threshold = args.get("min_8bit_size", _BNB_MIN_8BIT_SIZE)
    split = []
    for group in groups:
        options = {k: v for k, v in group.items() if k != "params"}
        large = [p for p in group["params"] if p.numel() >= threshold]
        small = [p for p in group["params"] if p.numel() < threshold]
        split += [{**options, "params": large}] if large else []
        split += [{**options, "params": small, "optim_bits": 32}] if small else []
    return split


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
        if any("optim_bits" in g for g in groups):
            cls = _with_group_bits(cls)
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


def _with_group_bits(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """bitsandbytes' optimizer `cls`, honouring a param group's own `optim_bits` (bitsandbytes takes
    it per optimizer or per registered tensor only)."""

    class GroupBits(cls):
        def get_config(self, gindex: int, pindex: int, group: dict[str, Any]) -> dict[str, Any]:
            config = super().get_config(gindex, pindex, group)
            if "optim_bits" in group:
                config["optim_bits"] = group["optim_bits"]
            return config

    GroupBits.__name__ = GroupBits.__qualname__ = cls.__name__
    return GroupBits
