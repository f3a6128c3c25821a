"""Building tiny diffusers pipelines on disk: seeded, idempotent, never half-written.

A build goes to a hidden temporary folder beside `dest` and is renamed into place when complete,
so a killed build leaves no folder that looks usable. A marker file inside the folder records
family, seed and builder version; a folder whose marker matches is reused as it is.

The optional single-file checkpoint (SD1.5, SD2, SDXL) goes beside the folder, named after it:
`<dest>.safetensors`, e.g. `models/tiny-sd15/` and `models/tiny-sd15.safetensors`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import diffusers
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from lorapilot.errors import LoraPilotError
from lorapilot.testing.ldm_checkpoint import SINGLE_FILE_FAMILIES, write_ldm_checkpoint
from lorapilot.testing.tiny_families import FAMILIES
from lorapilot.testing.tiny_tokenizers import write_clip_vocab_files

log = logging.getLogger(__name__)

BUILDER_VERSION = 1  # bump whenever a tiny model's architecture or weights would change
MARKER = ".lorapilot-tiny-model.json"
TINY_FAMILIES: tuple[str, ...] = tuple(FAMILIES)


class TinyModelError(LoraPilotError):
    """A tiny model cannot be built where asked (unknown family, foreign folder in the way)."""


def single_file_path(dest: Path) -> Path:
    """Where `build_tiny_model(..., single_file=True)` puts the LDM checkpoint of `dest`."""
    return dest.parent / f"{dest.name}.safetensors"


def build_tiny_model(family: str, dest: Path, *, seed: int = 0, single_file: bool = False) -> Path:
    """Build the tiny `family` pipeline folder at `dest` (reusing a matching one) and return `dest`.

    With `single_file=True` (SD1.5, SD2, SDXL only) also write `single_file_path(dest)`.
    """
    if family not in FAMILIES:
        raise TinyModelError(f"unknown family {family!r}; choose one of {', '.join(TINY_FAMILIES)}")
    if single_file and family not in SINGLE_FILE_FAMILIES:
        raise TinyModelError(f"single_file: only {', '.join(SINGLE_FILE_FAMILIES)} have an LDM layout")
    dest = Path(dest)
    marker = {"family": family, "seed": seed, "builder_version": BUILDER_VERSION}
    if _read_marker(dest) != marker:
        _build_folder(family, dest, seed, marker)
    if single_file:
        _ensure_single_file(family, dest, marker)
    return dest


def ensure_tiny_models(root: Path, *, seed: int = 0, single_file: bool = False) -> dict[str, Path]:
    """Every tiny family under `root` as `root/tiny-<family>`; single files where a family has one."""
    built = {}
    for family in TINY_FAMILIES:
        with_file = single_file and family in SINGLE_FILE_FAMILIES
        built[family] = build_tiny_model(
            family, Path(root) / f"tiny-{family}", seed=seed, single_file=with_file
        )
    return built


def _read_marker(dest: Path) -> dict | None:
    try:
        return json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _build_folder(family: str, dest: Path, seed: int, marker: dict) -> None:
    if dest.exists() and _read_marker(dest) is None:
        raise TinyModelError(f"{dest} exists and is not a tiny model folder; refusing to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("building tiny %s model (seed %s) at %s", family, seed, dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        _save_pipeline(family, seed, tmp)
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        tmp.chmod(0o755)
        if dest.exists():  # an older builder version or another seed
            shutil.rmtree(dest)
        _rename_into_place(tmp, dest, marker)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_pipeline(family: str, seed: int, folder: Path) -> None:
    recipe = FAMILIES[family]
    pipeline = getattr(diffusers, recipe.pipeline_class)(**recipe.components(seed))
    pipeline.save_pretrained(folder)
    for sub in sorted(folder.iterdir()):
        if _config_value(sub / "tokenizer_config.json", "tokenizer_class") == "CLIPTokenizer":
            write_clip_vocab_files(sub)
        if _config_value(sub / "config.json", "architectures") == ["CLIPTextModel"]:
            _restore_text_model_prefix(sub / "model.safetensors")
    for path in folder.rglob("*"):  # safetensors writes owner-only files; other services read these
        path.chmod(0o755 if path.is_dir() else 0o644)


def _config_value(path: Path, key: str) -> object:
    return json.loads(path.read_text()).get(key) if path.exists() else None


def _restore_text_model_prefix(path: Path) -> None:
    """Write CLIPTextModel weights as `text_model.*`, the names in every real SD repo.

    transformers >= 5.6 saves them without it, but transformers 4 (which kohya and ComfyUI setups
    pin) expects it; transformers 5 reads both. Can go once no supported tool pins transformers 4.
    """
    state = load_file(path)
    if not all(key.startswith("text_model.") for key in state):
        save_file(
            {f"text_model.{key}": value for key, value in state.items()}, path, metadata={"format": "pt"}
        )


def _rename_into_place(tmp: Path, dest: Path, marker: dict) -> None:
    try:
        tmp.rename(dest)
    except OSError:
        # a concurrent build of the same model won the race; its result is as good as ours
        if _read_marker(dest) != marker:
            raise


def _ensure_single_file(family: str, dest: Path, marker: dict) -> None:
    path = single_file_path(dest)
    metadata = {f"lorapilot.tiny.{key}": str(value) for key, value in marker.items()}
    if path.exists() and _single_file_metadata(path) == metadata:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write_ldm_checkpoint(dest, family, tmp, metadata=metadata)
        tmp.chmod(0o644)  # safetensors writes 0600; ComfyUI may run as another user
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _single_file_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (OSError, SafetensorError):
        return {}
    return {key: value for key, value in metadata.items() if key.startswith("lorapilot.tiny.")}
