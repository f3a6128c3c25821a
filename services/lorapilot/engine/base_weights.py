"""The frozen denoiser as it trains: an assistant LoRA merged in, float8 storage when asked.

diffusers' layerwise casting keeps each layer's weights in float8 (e4m3fn) and casts them up for
that layer's forward only, so the base takes about half the memory of bf16 on any device. It is
applied before LoRA goes in: peft then wraps the cast layers, and its own (fp32, trainable) layers
never carry the hooks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F  # noqa: N812
from peft.tuners.lora import LoraLayer

from lorapilot.engine.families.base import FamilyAdapter, LoadedModel
from lorapilot.engine.families.loading import ModelLoadError

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


# -- assistant LoRA --------------------------------------------------------------------------------

ASSISTANT = "assistant"


@dataclass(frozen=True)
class AssistantLayer:
    module: torch.nn.Linear  # the frozen base layer the delta is merged into
    down: torch.Tensor  # (rank, in), fp32 on the CPU
    up: torch.Tensor  # (out, rank)
    scale: float


class AssistantLora:
    """A LoRA merged into the frozen denoiser for training (ai-toolkit's `assistant_lora_path`, e.g.
    its FLUX.1-schnell training adapter) and cancelled for sample renders, so samples show the base
    with the trained LoRA only; the exported LoRA never holds it (it is not a peft adapter)."""

    def __init__(self, layers: list[AssistantLayer]) -> None:
        self.layers = layers

    @contextmanager
    def left_out(self) -> Iterator[None]:
        """Every merged layer subtracts the assistant's delta from its output while this is open."""
        handles = [layer.module.register_forward_hook(_cancel(layer)) for layer in self.layers]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def _cancel(layer: AssistantLayer):
    cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(_module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        if x.device not in cache:
            cache[x.device] = (layer.down.to(x.device), layer.up.to(x.device))
        down, up = cache[x.device]
        delta = F.linear(F.linear(x.float(), down), up) * layer.scale
        return output - delta.to(output.dtype)

    return hook


def merge_assistant(model: LoadedModel, adapter: FamilyAdapter, source: str) -> AssistantLora:
    """Load the LoRA file or hub id `source` (kohya, diffusers or the other layouts diffusers reads)
    and merge it into the denoiser's weights; raises ModelLoadError naming model.assistant_lora."""
    pipe = adapter.sampling_pipeline(model)
    try:
        pipe.load_lora_weights(source, adapter_name=ASSISTANT)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"model.assistant_lora: cannot load {source} as a LoRA: {exc}") from exc
    loaded = {name for name, adapters in pipe.get_list_adapters().items() if ASSISTANT in adapters}
    name = adapter.denoiser_name
    if loaded != {name}:
        pipe.unload_lora_weights()
        found = ", ".join(sorted(loaded)) or "none"
        raise ModelLoadError(
            f"model.assistant_lora: {source} must hold LoRA layers for the {name} only (found: {found}); "
            f"is it a LoRA for {adapter.family.label}?"
        )
    layers = _factors(model[name])
    pipe.fuse_lora(components=[name], lora_scale=1.0, adapter_names=[ASSISTANT])
    pipe.unload_lora_weights()  # the fused weights stay; the peft layers go
    denoiser = model[name]
    merged = [replace(layer, module=denoiser.get_submodule(path)) for path, layer in layers]
    log.info("assistant LoRA %s merged into the %s (%d layers)", source, name, len(merged))
    return AssistantLora(merged)


def _factors(denoiser: torch.nn.Module) -> list[tuple[str, AssistantLayer]]:
    layers = []
    for path, module in denoiser.named_modules():
        if not isinstance(module, LoraLayer) or ASSISTANT not in module.lora_A:
            continue
        base = module.get_base_layer()
        if not isinstance(base, torch.nn.Linear):
            raise ModelLoadError(
                f"model.assistant_lora: {path} is a {type(base).__name__} layer; only linear layers "
                "are supported"
            )
        down = module.lora_A[ASSISTANT].weight.detach().float().cpu().clone()
        up = module.lora_B[ASSISTANT].weight.detach().float().cpu().clone()
        layers.append((path, AssistantLayer(base, down, up, float(module.scaling[ASSISTANT]))))
    return layers
