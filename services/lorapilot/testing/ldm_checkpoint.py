"""Diffusers → original ("LDM"/CompVis) single-file checkpoint layout for SD1.5, SD2 and SDXL.

ComfyUI, A1111 and diffusers' `from_single_file` read checkpoints in the layout of the original
training code: `model.diffusion_model.*` for the UNet, `first_stage_model.*` for the VAE, and the
text encoders under `cond_stage_model.*` (SD1/SD2) or `conditioner.embedders.N.*` (SDXL). CLIP-L
keeps transformers' names there; OpenCLIP encoders (SD2, SDXL's second) use OpenCLIP's, with q/k/v
fused into one `in_proj`. Every diffusers key must find its place: an unmapped key is an error.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lorapilot.families import SD2, SD15, SDXL

# (subfolder, layout, prefix) of each text encoder in the single file
_TEXT_ENCODERS: dict[str, tuple[tuple[str, str, str], ...]] = {
    SD15.id: (("text_encoder", "clip", "cond_stage_model.transformer."),),
    SD2.id: (("text_encoder", "open_clip", "cond_stage_model.model."),),
    SDXL.id: (
        ("text_encoder", "clip", "conditioner.embedders.0.transformer."),
        ("text_encoder_2", "open_clip", "conditioner.embedders.1.model."),
    ),
}
SINGLE_FILE_FAMILIES = tuple(_TEXT_ENCODERS)

_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_OPEN_CLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "self_attn.out_proj": "attn.out_proj",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


def _rename(key: str, prefixes: dict[str, str], names: dict[str, str] | None = None) -> str | None:
    """`key` with its longest matching prefix replaced and, if given, its module name after it renamed."""
    for old in sorted(prefixes, key=len, reverse=True):
        if key.startswith(old):
            rest = key[len(old) :]
            module, _, param = rest.rpartition(".")
            if names and module in names:
                rest = f"{names[module]}.{param}"
            return prefixes[old] + rest
    return None


def _unet_block_prefixes(config: dict) -> dict[str, str]:
    """Diffusers block prefixes → LDM `input_blocks`/`middle_block`/`output_blocks` prefixes."""
    per_block = config["layers_per_block"]
    if not isinstance(per_block, int):
        raise ValueError(f"layers_per_block must be one number for the LDM layout, got {per_block!r}")
    blocks = len(config["block_out_channels"])
    prefixes = {"mid_block.resnets.0.": "middle_block.0.", "mid_block.resnets.1.": "middle_block.2."}
    prefixes["mid_block.attentions.0."] = "middle_block.1."
    for i in range(blocks):
        for j in range(per_block):  # LDM counts input blocks across levels, 0 being conv_in
            prefixes[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{1 + i * (per_block + 1) + j}.0."
            prefixes[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{1 + i * (per_block + 1) + j}.1."
        prefixes[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{(i + 1) * (per_block + 1)}.0.op."
        for j in range(per_block + 1):
            prefixes[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{i * (per_block + 1) + j}.0."
            prefixes[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{i * (per_block + 1) + j}.1."
        # the upsampler follows the last resnet, after its attention if the block has one
        last = (i + 1) * (per_block + 1) - 1
        slot = 2 if config["up_block_types"][i].startswith("CrossAttn") else 1
        prefixes[f"up_blocks.{i}.upsamplers.0.conv."] = f"output_blocks.{last}.{slot}.conv."
    return prefixes


def unet_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """A diffusers `UNet2DConditionModel` state dict in LDM `openaimodel.UNetModel` names."""
    fixed = {
        "conv_in.": "input_blocks.0.0.",
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        "add_embedding.linear_1.": "label_emb.0.0.",  # SDXL's pooled-text + size embedding
        "add_embedding.linear_2.": "label_emb.0.2.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
    }
    blocks = _unet_block_prefixes(config)
    resnets = {old: new for old, new in blocks.items() if ".resnets." in old}
    others = {**fixed, **{old: new for old, new in blocks.items() if old not in resnets}}
    out = {}
    for key, tensor in state.items():
        new = _rename(key, resnets, _UNET_RESNET) or _rename(key, others)
        if new is None:
            raise KeyError(f"UNet key {key!r} has no place in the LDM layout")
        out[new] = tensor
    return out


def _vae_prefixes(blocks: int) -> dict[str, str]:
    prefixes = {}
    for coder in ("encoder", "decoder"):
        prefixes[f"{coder}.conv_norm_out."] = f"{coder}.norm_out."
        for j in range(2):
            prefixes[f"{coder}.mid_block.resnets.{j}."] = f"{coder}.mid.block_{j + 1}."
    for i in range(blocks):
        prefixes[f"encoder.down_blocks.{i}.resnets."] = f"encoder.down.{i}.block."
        prefixes[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
        # LDM numbers decoder levels from the lowest resolution up, diffusers in running order
        prefixes[f"decoder.up_blocks.{i}.resnets."] = f"decoder.up.{blocks - 1 - i}.block."
        prefixes[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{blocks - 1 - i}.upsample."
    return prefixes


def vae_to_ldm(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """A diffusers `AutoencoderKL` state dict in LDM `AutoencoderKL` names (1×1 convs in attention)."""
    prefixes = _vae_prefixes(len(config["block_out_channels"]))
    attention = {f"{c}.mid_block.attentions.0.": f"{c}.mid.attn_1." for c in ("encoder", "decoder")}
    out = {}
    for key, tensor in state.items():
        if new := _rename(key, attention, _VAE_ATTENTION):
            out[new] = tensor[:, :, None, None] if tensor.ndim == 2 else tensor
            continue
        new = _rename(key, prefixes) or key
        out[new.replace(".conv_shortcut.", ".nin_shortcut.")] = tensor
    return out


def _text_model_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers 5.6+ drops CLIPTextModel's `text_model.` level; the checkpoint layout keeps it."""
    return {
        key if key.startswith(("text_model.", "text_projection.")) else f"text_model.{key}": tensor
        for key, tensor in state.items()
    }


def clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIP-L keeps transformers' names in the checkpoint (under `…transformer.`)."""
    return _text_model_keys(state)


def open_clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model in OpenCLIP names, with q/k/v fused into `in_proj`."""
    state = _text_model_keys(state)
    fixed = {
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
    }
    out = {fixed[key]: state[key] for key in fixed}
    if "text_projection.weight" in state:  # OpenCLIP multiplies x @ proj: the Linear weight transposed
        out["text_projection"] = state["text_projection.weight"].T.contiguous()
    layers = {key for key in state if key.startswith("text_model.encoder.layers.")}
    for key in sorted(layers):
        index, rest = key.removeprefix("text_model.encoder.layers.").split(".", 1)
        module, _, param = rest.rpartition(".")
        block = f"transformer.resblocks.{index}."
        if module == "self_attn.q_proj":
            fused = [state[f"text_model.encoder.layers.{index}.self_attn.{p}_proj.{param}"] for p in "qkv"]
            out[f"{block}attn.in_proj_{param}"] = torch.cat(fused)
        elif module not in ("self_attn.k_proj", "self_attn.v_proj"):
            out[f"{block}{_OPEN_CLIP_LAYER[module]}.{param}"] = state[key]
    unmapped = set(state) - layers - set(fixed) - {"text_projection.weight"}
    if unmapped:
        raise KeyError(f"text encoder keys with no place in the OpenCLIP layout: {sorted(unmapped)}")
    return out


def _load(folder: Path, subfolder: str) -> tuple[dict[str, torch.Tensor], dict]:
    files = sorted((folder / subfolder).glob("*.safetensors"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one .safetensors file in {folder / subfolder}, found {len(files)}")
    config = json.loads((folder / subfolder / "config.json").read_text())
    return load_file(files[0]), config


def pipeline_to_ldm(folder: Path, family: str) -> dict[str, torch.Tensor]:
    """The whole diffusers pipeline folder of an SD1.5/SD2/SDXL model as one LDM state dict."""
    if family not in _TEXT_ENCODERS:
        raise ValueError(f"no single-file layout for family {family!r}; one of {SINGLE_FILE_FAMILIES}")
    unet, unet_config = _load(folder, "unet")
    vae, vae_config = _load(folder, "vae")
    out = {f"model.diffusion_model.{k}": v for k, v in unet_to_ldm(unet, unet_config).items()}
    out.update({f"first_stage_model.{k}": v for k, v in vae_to_ldm(vae, vae_config).items()})
    for subfolder, layout, prefix in _TEXT_ENCODERS[family]:
        state, _ = _load(folder, subfolder)
        converted = clip_to_ldm(state) if layout == "clip" else open_clip_to_ldm(state)
        out.update({prefix + k: v for k, v in converted.items()})
    return out


def write_ldm_checkpoint(
    folder: Path, family: str, out: Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write the pipeline in `folder` as one LDM-layout `.safetensors` file at `out`."""
    tensors = {key: tensor.contiguous() for key, tensor in pipeline_to_ldm(folder, family).items()}
    save_file(tensors, str(out), metadata=metadata)
    return out
