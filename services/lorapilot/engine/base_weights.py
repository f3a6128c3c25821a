"""The frozen denoiser as it trains: stored in float8 when asked, computed in the training dtype.

diffusers' layerwise casting keeps each layer's weights in float8 (e4m3fn) and casts them up for
that layer's forward only, so the base takes about half the memory of bf16 on any device. It is
applied before LoRA goes in: peft then wraps the cast layers, and its own (fp32, trainable) layers
never carry the hooks.
"""

from __future__ import annotations

import logging

import torch

from lorapilot.engine.families.base import FamilyAdapter, LoadedModel

log = logging.getLogger("lorapilot.train")
FLOAT8 = torch.float8_e4m3fn


def store_in_float8(model: LoadedModel, adapter: FamilyAdapter, compute_dtype: torch.dtype) -> None:
    """Keep the denoiser's weights in float8, computed in `compute_dtype` (diffusers' skip patterns:
    embeddings, norms and the input/output projections stay in `compute_dtype`)."""
    denoiser = model[adapter.denoiser_name]
    before = parameter_bytes(denoiser)
    denoiser.enable_layerwise_casting(storage_dtype=FLOAT8, compute_dtype=compute_dtype)
    after = parameter_bytes(denoiser)
    log.info(
        "%s stored in float8, computed in %s: %.1f MiB of weights instead of %.1f MiB",
        adapter.denoiser_name,
        str(compute_dtype).removeprefix("torch."),
        after / 2**20,
        before / 2**20,
    )


def parameter_bytes(module: torch.nn.Module) -> int:
    """Bytes the module's parameters take as stored."""
    return sum(p.numel() * p.element_size() for p in module.parameters())
