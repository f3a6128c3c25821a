"""Writing trained peft LoRA layers as the files other tools load: kohya/ComfyUI or diffusers/peft.

Family-agnostic: a `LoraComponent` names a peft-injected model, its diffusers key prefix and its kohya
prefix, and every LoRA layer in it is written. Nothing is inferred from a config: rank, alpha and DoRA
magnitude are read from each layer, so what loads is what was trained, module by module.

kohya format (FORMATS.md §1): `<prefix>_<path with . → _>.lora_down.weight` (peft's lora_A),
`.lora_up.weight` (lora_B), `.alpha` (0-dim; the delta is up @ down × alpha / rank). Conv layers keep
their conv shapes: down is the k×k conv, up the 1×1 conv. DoRA adds `.dora_scale`, see `_dora_scale`.

peft-folded format (FLUX, SD3): peft names with each layer's scale alpha / rank multiplied into
`lora_B`, so a loader that assumes alpha = rank (ComfyUI and diffusers both do for these keys)
applies the trained strength; the adapter metadata says alpha = rank accordingly.

diffusers format: peft names (`<component>.<path>.lora_A.weight`, `.lora_B.weight`,
`.lora_magnitude_vector`) plus the `lora_adapter_metadata` JSON header entry diffusers turns into each
component's `LoraConfig`; without it diffusers assumes alpha = rank and loads the LoRA at the wrong
strength.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from safetensors.torch import save_file

from lorapilot.atomic_files import fsync_dir
from lorapilot.engine.model_hash import safetensors_hashes
from lorapilot.errors import LoraPilotError

log = logging.getLogger(__name__)

DIFFUSERS_METADATA_KEY = "lora_adapter_metadata"  # diffusers.loaders.lora_base.LORA_ADAPTER_METADATA_KEY
FILE_MODE = 0o644  # safetensors writes 0600; ComfyUI and the other services may run as another user

# transformers 5 flattened CLIPTextModel (no `text_model` submodule), but kohya, ComfyUI, A1111 and
# transformers 4 all name CLIP-L text-encoder keys `text_model.…`; diffusers 0.42 strips the prefix
# again for a flattened model. Can go once no supported tool expects the `text_model.` spelling.
_FLATTENED_WRAPPERS = {"CLIPTextModel": "text_model"}


class LoraExportError(LoraPilotError, ValueError):
    """The LoRA layers cannot be written faithfully in the asked format."""


@dataclass(frozen=True)
class LoraComponent:
    """A peft-injected model whose LoRA layers go into the file, and the prefixes its keys get."""

    name: str  # attribute on the diffusers pipeline and diffusers' key prefix: "unet", "text_encoder", …
    kohya_prefix: str  # "lora_unet", "lora_te", "lora_te1", "lora_te2", …
    module: torch.nn.Module  # the peft-injected model
    adapter_name: str = "default"


# -- reading the trained layers ------------------------------------------------------------------------


def _base_model(module: torch.nn.Module) -> torch.nn.Module:
    """The model whose module paths are the real ones: torch.compile and PeftModel wrap it in prefixes."""
    module = getattr(module, "_orig_mod", module)
    return module.get_base_model() if isinstance(module, PeftModel) else module


def _lora_layers(component: LoraComponent) -> Iterator[tuple[str, LoraLayer]]:
    """(module path, peft layer) for each LoRA layer of the adapter; refuses what the file would lose."""
    model = _base_model(component.module)
    adapter = component.adapter_name
    found = False
    for path, layer in model.named_modules():
        if not isinstance(layer, LoraLayer) or adapter not in layer.r:
            continue
        if adapter not in layer.lora_A or not isinstance(
            layer.lora_A[adapter], torch.nn.Linear | torch.nn.modules.conv._ConvNd
        ):
            raise LoraExportError(
                f"{component.name}.{path}: only Linear and Conv LoRA layers can be exported"
            )
        found = True
        yield path, layer
    if not found:
        raise LoraExportError(
            f"{component.name} has no LoRA layers for adapter {adapter!r}; refusing to write an empty LoRA"
        )


def _canonical_prefix(component: LoraComponent) -> str:
    model = _base_model(component.module)
    wrapper = _FLATTENED_WRAPPERS.get(type(model).__name__)
    return f"{wrapper}." if wrapper and not hasattr(model, wrapper) else ""


def _kohya_alpha(layer: LoraLayer, adapter: str) -> float:
    """The alpha that gives kohya's scale alpha / rank the same value as peft's scale for this layer.

    Read from lora_alpha and r (already rank/alpha-pattern resolved by peft), never from `scaling`,
    which `set_scale` / diffusers' `lora_scale` change at inference time.
    """
    rank, alpha = layer.r[adapter], float(layer.lora_alpha[adapter])
    if layer.use_rslora.get(adapter, False):  # rsLoRA scales by alpha / sqrt(rank)
        return alpha * math.sqrt(rank)
    return alpha


def _uses_dora(layer: LoraLayer, adapter: str) -> bool:
    return bool(layer.use_dora.get(adapter, False))


def _has_lora_bias(layer: LoraLayer, adapter: str) -> bool:
    return getattr(layer.lora_B[adapter], "bias", None) is not None


def _dora_scale(layer: LoraLayer, adapter: str) -> torch.Tensor:
    """peft's DoRA magnitude laid out as ComfyUI/LyCORIS read an output-axis `dora_scale`.

    peft's magnitude m holds one norm per OUTPUT channel: W' = m · (W + s·BA) / ‖W + s·BA‖ with the
    norm over each output row (linear: shape (out,); conv: (1, out, 1, 1)). LyCORIS by default
    decomposes per INPUT channel, shape (1, in, …), which no rescaling of m can reproduce. Its
    `wd_on_out` variant is peft's math, stored as (out, 1, …); ComfyUI picks that branch when
    `dora_scale.shape[0]` equals the weight's output size, and needs the trailing 1-dims to broadcast
    (a flat (out,) vector broadcasts as an outer product, ComfyUI issue #12938). So the values are m
    unchanged, reshaped to (out, 1, …). One known deviation: ComfyUI's output-axis branch divides by ‖W‖
    where DoRA (peft, LyCORIS) divides by ‖W + ΔW‖ (ComfyUI PR #15458, open in 2026, fixes it), so
    ComfyUI scales each output row by ‖W + ΔW‖ / ‖W‖ more than training did; near 1 for small ΔW.
    """
    base_weight = layer.get_base_layer().weight
    magnitude = layer.lora_magnitude_vector[adapter].weight
    return magnitude.reshape(base_weight.shape[0], *[1] * (base_weight.dim() - 1))


def _export(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A detached, contiguous CPU copy: training may go on updating the parameter during the write."""
    return tensor.detach().to(device="cpu", dtype=dtype).clone(memory_format=torch.contiguous_format)


# -- state dicts ------------------------------------------------------------------------------------------


def kohya_state_dict(components: Sequence[LoraComponent], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every LoRA layer under kohya/ComfyUI names; weights in `dtype`, alphas in float32.

    Alphas stay float32 whatever `dtype` is: every loader reads them with `.item()`, and bf16 would
    round e.g. 0.3 to 0.30078, changing the strength.
    """
    tensors: dict[str, torch.Tensor] = {}
    owners: dict[str, str] = {}
    for component in components:
        adapter, prefix = component.adapter_name, _canonical_prefix(component)
        for path, layer in _lora_layers(component):
            name = f"{component.kohya_prefix}_{(prefix + path).replace('.', '_')}"
            if name in owners:  # `.` → `_` can make two paths one name
                raise LoraExportError(f"{component.name}.{path} and {owners[name]} both become {name}")
            owners[name] = f"{component.name}.{path}"
            if _has_lora_bias(layer, adapter):
                raise LoraExportError(f"{owners[name]}: lora_bias has no kohya key; save in diffusers format")
            tensors[f"{name}.lora_down.weight"] = _export(layer.lora_A[adapter].weight, dtype)
            tensors[f"{name}.lora_up.weight"] = _export(layer.lora_B[adapter].weight, dtype)
            tensors[f"{name}.alpha"] = torch.tensor(_kohya_alpha(layer, adapter), dtype=torch.float32)
            if _uses_dora(layer, adapter):
                tensors[f"{name}.dora_scale"] = _export(_dora_scale(layer, adapter), dtype)
    return tensors


def _peft_layers(components: Sequence[LoraComponent]) -> Iterator[tuple[str, LoraLayer, str]]:
    """(key stem `<component>.<module path>`, peft layer, adapter) for every LoRA layer."""
    for component in components:
        prefix = _canonical_prefix(component)
        for path, layer in _lora_layers(component):
            yield f"{component.name}.{prefix}{path}", layer, component.adapter_name


def peft_key_stems(components: Sequence[LoraComponent]) -> list[str]:
    """The module names a peft-style file has keys for (works on meta-device models: no tensors read)."""
    return [key for key, _, _ in _peft_layers(components)]


def peft_state_dict(components: Sequence[LoraComponent], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every LoRA layer under diffusers/peft names: `<component>.<module path>.lora_A.weight`, …"""
    tensors: dict[str, torch.Tensor] = {}
    for key, layer, adapter in _peft_layers(components):
        tensors[f"{key}.lora_A.weight"] = _export(layer.lora_A[adapter].weight, dtype)
        tensors[f"{key}.lora_B.weight"] = _export(layer.lora_B[adapter].weight, dtype)
        if _has_lora_bias(layer, adapter):
            tensors[f"{key}.lora_B.bias"] = _export(layer.lora_B[adapter].bias, dtype)
        if _uses_dora(layer, adapter):
            magnitude = layer.lora_magnitude_vector[adapter].weight
            tensors[f"{key}.lora_magnitude_vector"] = _export(magnitude, dtype)
    return tensors


def folded_state_dict(components: Sequence[LoraComponent], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """peft names with each layer's alpha / rank folded into lora_B (computed in fp32, then cast)."""
    tensors: dict[str, torch.Tensor] = {}
    for key, layer, adapter in _peft_layers(components):
        if _uses_dora(layer, adapter) or _has_lora_bias(layer, adapter):
            raise LoraExportError(f"{key}: DoRA and LoRA biases cannot be folded; train plain LoRA")
        scale = _kohya_alpha(layer, adapter) / layer.r[adapter]
        tensors[f"{key}.lora_A.weight"] = _export(layer.lora_A[adapter].weight, dtype)
        up = layer.lora_B[adapter].weight.detach().float() * scale
        tensors[f"{key}.lora_B.weight"] = _export(up, dtype)
    return tensors


def diffusers_adapter_metadata(
    components: Sequence[LoraComponent], *, folded: bool = False
) -> dict[str, object]:
    """diffusers' `lora_adapter_metadata`: each component's `LoraConfig` fields as `<name>.<field>`.

    diffusers passes these straight to `LoraConfig(**fields)`. They are rebuilt from the layers: the
    most common rank and alpha as `r` / `lora_alpha`, every other module in `rank_pattern` /
    `alpha_pattern` under its full path, and the full paths as `target_modules` (peft matches them as
    suffixes, so they fit CLIP text models with and without the `text_model` wrapper). Init options
    are left out on purpose: loading with PiSSA/OLoRA-style init would rewrite the base weights.
    """
    metadata: dict[str, object] = {}
    for component in components:
        adapter = component.adapter_name
        layers = list(_lora_layers(component))
        ranks = {path: layer.r[adapter] for path, layer in layers}
        alphas = {
            path: float(layer.r[adapter] if folded else layer.lora_alpha[adapter]) for path, layer in layers
        }
        rank = Counter(ranks.values()).most_common(1)[0][0]
        alpha = Counter(alphas.values()).most_common(1)[0][0]
        config = {
            "r": rank,
            "lora_alpha": alpha,
            "target_modules": sorted(ranks),
            "rank_pattern": {path: value for path, value in ranks.items() if value != rank},
            "alpha_pattern": {path: value for path, value in alphas.items() if value != alpha},
            "use_dora": any(_uses_dora(layer, adapter) for _, layer in layers),
            "use_rslora": not folded and any(layer.use_rslora.get(adapter, False) for _, layer in layers),
            "lora_bias": any(_has_lora_bias(layer, adapter) for _, layer in layers),
        }
        metadata.update({f"{component.name}.{field}": value for field, value in config.items()})
    return metadata


# -- files --------------------------------------------------------------------------------------------------


def _check_metadata(metadata: Mapping[str, object]) -> None:
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(
                f"LoRA metadata key {key!r} is a {type(key).__name__}; safetensors needs str keys"
            )
        if not isinstance(value, str):
            raise TypeError(
                f"LoRA metadata {key!r} is a {type(value).__name__}; safetensors headers hold only strings, "
                "convert it with str() or json.dumps()"
            )


def save_lora_file(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically, readable by other users (mode 0644).

    The file is written to a temporary name in the same folder, flushed to disk, and renamed over
    `path`: a reader (ComfyUI, the web UI) never sees half a file, and a failed write (disk full, bad
    tensor) leaves any previous file at `path` as it was and no temporary file behind.
    """
    _check_metadata(metadata)
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        save_file(tensors, temporary, metadata=metadata)
        with temporary.open("rb") as written:
            os.fsync(written.fileno())
        temporary.chmod(FILE_MODE)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        log.warning("could not write %s; any previous file there is unchanged", path)
        raise
    fsync_dir(path.parent)
    log.info("wrote %s (%d tensors)", path, len(tensors))


def save_kohya_lora(
    path: Path, components: Sequence[LoraComponent], metadata: Mapping[str, str], dtype: torch.dtype
) -> None:
    """The kohya/ComfyUI file, with kohya's `sshs_model_hash` / `sshs_legacy_hash` added to the metadata."""
    _check_metadata(metadata)
    tensors = kohya_state_dict(components, dtype)
    model_hash, legacy_hash = safetensors_hashes(tensors, metadata)
    header = {**metadata, "sshs_model_hash": model_hash, "sshs_legacy_hash": legacy_hash}
    save_lora_file(path, tensors, header)


def save_diffusers_lora(
    path: Path, components: Sequence[LoraComponent], metadata: Mapping[str, str], dtype: torch.dtype
) -> None:
    """The diffusers/peft file `pipe.load_lora_weights` reads, alpha and DoRA included."""
    _check_metadata(metadata)
    adapter_metadata = json.dumps(diffusers_adapter_metadata(components), indent=2, sort_keys=True)
    header = {**metadata, "format": "pt", DIFFUSERS_METADATA_KEY: adapter_metadata}
    save_lora_file(path, peft_state_dict(components, dtype), header)


def save_peft_folded_lora(
    path: Path, components: Sequence[LoraComponent], metadata: Mapping[str, str], dtype: torch.dtype
) -> None:
    """The FLUX/SD3 file ComfyUI and diffusers both load at the trained strength, without conversion."""
    _check_metadata(metadata)
    tensors = folded_state_dict(components, dtype)
    adapter_metadata = diffusers_adapter_metadata(components, folded=True)
    model_hash, legacy_hash = safetensors_hashes(tensors, metadata)
    header = {
        **metadata,
        "format": "pt",
        DIFFUSERS_METADATA_KEY: json.dumps(adapter_metadata, indent=2, sort_keys=True),
        "sshs_model_hash": model_hash,
        "sshs_legacy_hash": legacy_hash,
        "lorapilot_alpha_folded": "true",
    }
    save_lora_file(path, tensors, header)
