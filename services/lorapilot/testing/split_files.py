"""Tiny FLUX.1 and SD3 models written as the split single files ComfyUI users keep.

From a tiny diffusers folder (`tiny_models.build_tiny_model`): the transformer in the original
layout (BFL for FLUX, Stability's `model.diffusion_model.joint_blocks…` for SD3), CLIP and T5 in
transformers' names (as ComfyUI's `clip_l.safetensors`, `t5xxl_fp16.safetensors` and the fp8 e4m3fn
variant hold them), the VAE in the LDM layout (`ae.safetensors`), and SD3's all-in-one file
(`text_encoders.clip_l/clip_g/t5xxl.transformer.*` plus `first_stage_model.*`). The tiny tokenizers
go in a folder named like each text-encoder file beside it, since their vocabularies are not the
released ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lorapilot.engine.families.bfl_layout import flux_from_diffusers
from lorapilot.testing.ldm_checkpoint import clip_to_ldm, vae_to_ldm

COMPONENT_DIRS = {"transformer": "unet", "text_encoder": "clip", "vae": "vae"}


def _load(folder: Path, subfolder: str) -> dict[str, torch.Tensor]:
    files = sorted((folder / subfolder).glob("*.safetensors"))
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state |= load_file(file)
    return state


def _config(folder: Path, subfolder: str) -> dict:
    return json.loads((folder / subfolder / "config.json").read_text())


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    path.chmod(0o644)
    return path


def _with_tokenizer(folder: Path, tokenizer: str, path: Path) -> None:
    dest = path.with_suffix("") if path.suffix == ".safetensors" else path
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(folder / tokenizer, dest)


def flux_transformer_bfl(folder: Path) -> dict[str, torch.Tensor]:
    """The tiny FLUX transformer of `folder` in BFL's key layout."""
    return flux_from_diffusers(_load(folder, "transformer"))


def write_flux_transformer(folder: Path, path: Path) -> Path:
    """The transformer of the tiny FLUX model in `folder` as a BFL-layout file at `path`."""
    return _save(flux_transformer_bfl(folder), path)


def ae_ldm(folder: Path) -> dict[str, torch.Tensor]:
    """The VAE of `folder` in the LDM layout BFL's ae.safetensors uses (no prefix)."""
    return vae_to_ldm(_load(folder, "vae"), _config(folder, "vae"))


def write_text_encoder(folder: Path, subfolder: str, tokenizer: str, path: Path) -> Path:
    """A CLIP or T5 encoder of `folder` as one transformers-named file, its tokenizer beside it."""
    state = _load(folder, subfolder)
    if "shared.weight" not in state:
        state = clip_to_ldm(state)
    _with_tokenizer(folder, tokenizer, path)
    return _save(state, path)


def write_fp8(path: Path, out: Path) -> Path:
    """`path` with its matrices in float8 e4m3fn, as ComfyUI's t5xxl_fp8_e4m3fn.safetensors."""
    state = {k: v.to(torch.float8_e4m3fn) if v.ndim == 2 else v for k, v in load_file(path).items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(path.with_suffix(""), out.with_suffix(""), dirs_exist_ok=True)
    return _save(state, out)


def write_flux_split_files(
    folder: Path,
    models: Path,
    transformer: str,
    *,
    unet_dir: str = "unet",
    clip_dir: str = "clip",
    vae_dir: str = "vae",
    fp8_t5: bool = True,
) -> dict[str, Path]:
    """The tiny FLUX model in `folder` as ComfyUI-layout files under `models`.

    `transformer` names the transformer file (in `models/<unet_dir>`); the others get ComfyUI's
    conventional names: clip_l, t5xxl_fp16 (and t5xxl_fp8_e4m3fn), ae.
    """
    paths = {"path": write_flux_transformer(folder, models / unet_dir / transformer)}
    paths["clip_l"] = write_text_encoder(
        folder, "text_encoder", "tokenizer", models / clip_dir / "clip_l.safetensors"
    )
    paths["t5xxl"] = write_text_encoder(
        folder, "text_encoder_2", "tokenizer_2", models / clip_dir / "t5xxl_fp16.safetensors"
    )
    if fp8_t5:
        paths["t5xxl_fp8"] = write_fp8(paths["t5xxl"], models / clip_dir / "t5xxl_fp8_e4m3fn.safetensors")
    paths["vae"] = _save(ae_ldm(folder), models / vae_dir / "ae.safetensors")
    return paths


def write_flux_all_in_one(folder: Path, path: Path) -> Path:
    """The tiny FLUX model in `folder` as one checkpoint as ComfyUI saves it: the BFL transformer under
    `model.diffusion_model.`, CLIP-L and T5 under `text_encoders.<name>.transformer.`, the VAE under
    `first_stage_model.`; the tokenizers in a folder named like the file."""
    state = {f"model.diffusion_model.{k}": v for k, v in flux_transformer_bfl(folder).items()}
    state |= {f"first_stage_model.{k}": v for k, v in ae_ldm(folder).items()}
    for field, (subfolder, tokenizer) in {
        "clip_l": ("text_encoder", "tokenizer"),
        "t5xxl": ("text_encoder_2", "tokenizer_2"),
    }.items():
        encoder = _load(folder, subfolder)
        if "shared.weight" not in encoder:
            encoder = clip_to_ldm(encoder)
        state |= {f"text_encoders.{field}.transformer.{k}": v for k, v in encoder.items()}
        _with_tokenizer(folder, tokenizer, path.with_suffix("") / field)
    return _save(state, path)


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    """(shift, scale) ↔ (scale, shift) of an output modulation, the same swap both ways."""
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def sd3_transformer_stability(folder: Path) -> dict[str, torch.Tensor]:
    """The tiny SD3 MMDiT of `folder` in Stability's layout (`joint_blocks.N.x_block.attn.qkv`, …),
    without the `model.diffusion_model.` prefix."""
    return sd3_to_stability(_load(folder, "transformer"), _config(folder, "transformer"))


def sd3_to_stability(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """An `SD3Transformer2DModel` state dict (of that `config`) in Stability's names: the inverse of
    diffusers' SD3 converter."""
    state = dict(state)
    depth, dual = config["num_layers"], set(config.get("dual_attention_layers") or ())
    out: dict[str, torch.Tensor] = {"pos_embed": state.pop("pos_embed.pos_embed")}
    renames = {
        "pos_embed.proj": "x_embedder.proj",
        "time_text_embed.timestep_embedder.linear_1": "t_embedder.mlp.0",
        "time_text_embed.timestep_embedder.linear_2": "t_embedder.mlp.2",
        "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0",
        "time_text_embed.text_embedder.linear_2": "y_embedder.mlp.2",
        "context_embedder": "context_embedder",
        "proj_out": "final_layer.linear",
    }
    for i in range(depth):
        ours, theirs = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
        renames |= {
            f"{ours}attn.to_out.0": f"{theirs}x_block.attn.proj",
            f"{ours}attn.to_add_out": f"{theirs}context_block.attn.proj",
            f"{ours}attn.norm_q": f"{theirs}x_block.attn.ln_q",
            f"{ours}attn.norm_k": f"{theirs}x_block.attn.ln_k",
            f"{ours}attn.norm_added_q": f"{theirs}context_block.attn.ln_q",
            f"{ours}attn.norm_added_k": f"{theirs}context_block.attn.ln_k",
            f"{ours}attn2.to_out.0": f"{theirs}x_block.attn2.proj",
            f"{ours}attn2.norm_q": f"{theirs}x_block.attn2.ln_q",
            f"{ours}attn2.norm_k": f"{theirs}x_block.attn2.ln_k",
            f"{ours}norm1.linear": f"{theirs}x_block.adaLN_modulation.1",
            f"{ours}ff.net.0.proj": f"{theirs}x_block.mlp.fc1",
            f"{ours}ff.net.2": f"{theirs}x_block.mlp.fc2",
            f"{ours}ff_context.net.0.proj": f"{theirs}context_block.mlp.fc1",
            f"{ours}ff_context.net.2": f"{theirs}context_block.mlp.fc2",
        }
        last = i == depth - 1
        modulation = state.pop if not last else (lambda key: _swap_halves(state.pop(key)))
        for param in ("weight", "bias"):
            out[f"{theirs}context_block.adaLN_modulation.1.{param}"] = modulation(
                f"{ours}norm1_context.linear.{param}"
            )
            fused = {"x_block.attn": "attn.to_", "context_block.attn": "attn.add_"}
            if i in dual:
                fused["x_block.attn2"] = "attn2.to_"
            for block, stem in fused.items():
                suffix = "_proj" if stem == "attn.add_" else ""
                parts = [state.pop(f"{ours}{stem}{p}{suffix}.{param}") for p in "qkv"]
                out[f"{theirs}{block}.qkv.{param}"] = torch.cat(parts)
    for param in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{param}"] = _swap_halves(state.pop(f"norm_out.linear.{param}"))
    for key in list(state):
        module, _, param = key.rpartition(".")
        if module in renames:
            out[f"{renames[module]}.{param}"] = state.pop(key)
    if state:
        raise KeyError(f"SD3 transformer tensors with no place in Stability's layout: {sorted(state)[:5]}")
    return out


def write_sd3_files(folder: Path, models: Path, name: str, *, clip_dir: str = "clip") -> dict[str, Path]:
    """The tiny SD3 model in `folder` as Stability ships it for ComfyUI: `models/checkpoints/<name>`
    holding the MMDiT and the VAE (as sd3_medium.safetensors), the text encoders as separate files
    (`sd3_clip_l`, `sd3_clip_g`, `sd3_t5xxl`, so as not to clash with FLUX's), and an all-in-one file
    `<stem>_incl_clips_t5xxl.safetensors` with every component inside."""
    stem = Path(name).stem
    transformer = {f"model.diffusion_model.{k}": v for k, v in sd3_transformer_stability(folder).items()}
    first_stage = {f"first_stage_model.{k}": v for k, v in ae_ldm(folder).items()}
    paths = {"path": _save(transformer | first_stage, models / "checkpoints" / name)}
    encoders = {"clip_l": ("text_encoder", "tokenizer"), "clip_g": ("text_encoder_2", "tokenizer_2")}
    encoders["t5xxl"] = ("text_encoder_3", "tokenizer_3")
    bundled: dict[str, torch.Tensor] = {}
    for field, (subfolder, tokenizer) in encoders.items():
        paths[field] = write_text_encoder(
            folder, subfolder, tokenizer, models / clip_dir / f"sd3_{field}.safetensors"
        )
        prefix = f"text_encoders.{field}.transformer."
        bundled |= {prefix + k: v for k, v in load_file(paths[field]).items()}
        _with_tokenizer(folder, tokenizer, models / "checkpoints" / f"{stem}_incl_clips_t5xxl" / field)
    all_in_one = models / "checkpoints" / f"{stem}_incl_clips_t5xxl.safetensors"
    paths["all_in_one"] = _save(transformer | first_stage | bundled, all_in_one)
    return paths
