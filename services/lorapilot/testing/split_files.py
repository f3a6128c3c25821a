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
    dest = path.with_suffix("")
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
