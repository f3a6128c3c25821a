"""Telling a model's family from what is on disk or from its name.

Configs of every dialect often leave the family implicit (kohya picks it by script, ai-toolkit by
flags); the files themselves are the better witness: a diffusers folder names its pipeline class,
a single-file checkpoint's tensor names give its architecture away.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lorapilot.safetensors_header import HeaderError, read_header, tensor_names

_PIPELINE_FAMILIES = {
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
    "FluxPipeline": None,  # dev or schnell: decided by the guidance embedding below
    "StableDiffusionPipeline": None,  # sd15 or sd2: decided by the text encoder below
}


def probe_folder(folder: Path) -> str | None:
    """Family of a diffusers pipeline folder, or None when it cannot be told."""
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        return None
    name = index.get("_class_name", "") if isinstance(index, dict) else ""
    if name not in _PIPELINE_FAMILIES:
        return None
    family = _PIPELINE_FAMILIES[name]
    if family is not None:
        return family
    if name == "FluxPipeline":
        config = _read_json(folder / "transformer" / "config.json")
        return "flux-dev" if config.get("guidance_embeds", True) else "flux-schnell"
    config = _read_json(folder / "text_encoder" / "config.json")
    scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
    is_open_clip = config.get("hidden_act") == "gelu" or config.get("hidden_size") == 1024
    return "sd2" if is_open_clip or scheduler.get("prediction_type") == "v_prediction" else "sd15"


def probe_single_file(path: Path) -> str | None:
    """Family of a single-file `.safetensors` checkpoint from its tensor names (header only)."""
    try:
        return family_of_tensor_names(tensor_names(read_header(path)))
    except (OSError, HeaderError):
        return None


def family_of_tensor_names(keys: list[str]) -> str | None:
    """Family of a single-file checkpoint whose header names these tensors."""
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return "sdxl"
    if any(".double_blocks." in k or k.startswith("double_blocks.") for k in keys):
        return "flux-dev" if any("guidance_in." in k for k in keys) else "flux-schnell"
    if any(".joint_blocks." in k or k.startswith("joint_blocks.") for k in keys):
        return "sd3"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2"
    if any(k.startswith("model.diffusion_model.input_blocks.") for k in keys):
        return "sd15"
    return None


def guess_from_name(name: str) -> str | None:
    """Family suggested by a hub id or file name, for configs that say nothing else."""
    lowered = name.lower()
    if "flux" in lowered:
        return "flux-schnell" if "schnell" in lowered else "flux-dev"
    if re.search(r"sd[-_.]?3|stable-diffusion-3", lowered):
        return "sd3"
    if re.search(r"xl|sdxl|pony|illustrious", lowered):
        return "sdxl"
    if re.search(r"(stable-diffusion-2|sd[-_]?2(\.|[-_])?[01]|768-v)", lowered):
        return "sd2"
    if re.search(r"(stable-diffusion-v1|sd[-_]?v?1[-_.]?5|sd15)", lowered):
        return "sd15"
    return None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
