"""Telling a model's family from what is on disk or from its name, by the registry's facts.

Configs of every dialect often leave the family implicit (kohya picks it by script, ai-toolkit by
flags); the files themselves are the better witness: a diffusers folder names its pipeline class,
a single-file checkpoint's tensor names give its architecture away. Families are asked newest
first, so a family may refine an earlier one.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from lorapilot.families.family import NOT_EMPTY, ConfigMarker, Family
from lorapilot.families.registry import newest_first
from lorapilot.safetensors_header import HeaderError, read_header, tensor_names


def probe_folder(folder: Path) -> Family | None:
    """Family of a diffusers pipeline folder, or None when it cannot be told."""
    index = _read_json(folder / "model_index.json")
    pipeline = index.get("_class_name")
    candidates = [f for f in newest_first() if pipeline in f.recognition.pipeline_classes]
    configs: dict[str, dict] = {}

    def holds(marker: ConfigMarker) -> bool:
        if marker.file not in configs:
            configs[marker.file] = _read_json(folder / marker.file)
        found = configs[marker.file].get(marker.key)
        return bool(found) if marker.value == NOT_EMPTY else found == marker.value

    for family in candidates:
        if any(holds(marker) for marker in family.recognition.folder_markers):
            return family
    return next((f for f in candidates if not f.recognition.folder_markers), None)


def probe_single_file(path: Path) -> Family | None:
    """Family of a single-file `.safetensors` checkpoint from its tensor names (header only)."""
    try:
        return family_of_tensor_names(tensor_names(read_header(path)))
    except (OSError, HeaderError):
        return None


def family_of_tensor_names(keys: list[str]) -> Family | None:
    """Family of a single-file checkpoint whose header names these tensors."""
    for family in newest_first():
        required, absent = family.recognition.tensor_patterns, family.recognition.tensor_absent
        if not required:
            continue
        if all(_any_match(p, keys) for p in required) and not any(_any_match(p, keys) for p in absent):
            return family
    return None


# Where a checkpoint that bundles components keeps them (ComfyUI's and Stability's all-in-one files),
# by the ModelSpec field that would otherwise name a separate file.
BUNDLED_PREFIXES = {
    "clip_l": "text_encoders.clip_l.transformer.",
    "clip_g": "text_encoders.clip_g.transformer.",
    "t5xxl": "text_encoders.t5xxl.transformer.",
    "vae": "first_stage_model.",
}


def components_in_file(path: Path) -> frozenset[str]:
    """The components (ModelSpec fields: clip_l, clip_g, t5xxl, vae) a single file bundles with its
    denoiser; an SD3 all-in-one file holds all four, a ComfyUI models/unet file none."""
    try:
        keys = tensor_names(read_header(path))
    except (OSError, HeaderError):
        return frozenset()
    return frozenset(f for f, prefix in BUNDLED_PREFIXES.items() if any(k.startswith(prefix) for k in keys))


def guess_from_name(name: str) -> Family | None:
    """Family suggested by a hub id or file name, for configs that say nothing else."""
    lowered = name.lower()
    for family in newest_first():
        pattern = family.recognition.name_pattern
        if pattern and re.search(pattern, lowered):
            return family
    return None


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _any_match(pattern: str, keys: list[str]) -> bool:
    regex = _compiled(pattern)
    return any(regex.search(key) for key in keys)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
