"""The base models a workspace holds: models/ plus paths registered on the Models page.

For each one: what it is (a diffusers pipeline folder, a component folder or a single file), its
family (told by `families.recognition` from model_index.json or the safetensors header, as training
does) and its size. Scanning reads listings, small JSON files and headers only, never weights.
Registered paths live in `config/models.yaml`, rewritten atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from lorapilot import families
from lorapilot.atomic_files import write_atomic
from lorapilot.controlpilot.errors import ControlPilotError, NotFoundError
from lorapilot.families import Family
from lorapilot.families.recognition import (
    components_in_file,
    family_of_tensor_names,
    guess_from_name,
    probe_folder,
)
from lorapilot.safetensors_header import HeaderError, read_header, tensor_names
from lorapilot.workspace import MODEL_KINDS, PathEscapeError, Workspace

logger = logging.getLogger(__name__)

SINGLE_FILE_FORMATS = {
    ".safetensors": "safetensors",
    ".ckpt": "ckpt",
    ".pt": "pt",
    ".pth": "pth",
    ".bin": "bin",
    ".gguf": "gguf",
    ".onnx": "onnx",
}
PICKLED = ("ckpt", "pt", "pth", "bin")
# ComfyUI's folders for split-file models (FLUX.1, SD3): transformer files and text encoders
COMFYUI_KINDS = ("unet", "diffusion_models", "clip")
LISTED_KINDS = (*(kind for kind in MODEL_KINDS if kind != "loras"), *COMFYUI_KINDS)  # LoRAs: lora_library
UNKNOWN = "unknown"
FAMILY_LABELS = {**{f.id: f.label for f in families.all_families()}, UNKNOWN: "Unknown family"}
MAX_DEPTH = 4  # folders inside a kind folder looked into; also stops symlink loops
_REGISTRY_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # the models/ folder it is in, or "registered"
    path: str  # as a user of the container writes it: /workspace/...
    format: str  # diffusers, folder (one component), safetensors, ckpt, … or missing
    size_bytes: int
    modified: float
    family: str  # a registered family's id, or "unknown"
    family_note: str  # how the family was told, or why it could not be
    registered: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DiskUsage:
    total_bytes: int  # of the filesystem the workspace is on
    used_bytes: int
    free_bytes: int
    by_kind: dict[str, int]  # models/<kind>/ totals, LoRAs included
    registered_bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- scanning ---------------------------------------------------------------------------------------
def inventory(ws: Workspace) -> list[ModelEntry]:
    """Every model in models/ (but loras/) and every registered path, in folder order."""
    entries = [describe(ws, path, kind) for kind in LISTED_KINDS for path in _models_in(ws.models / kind)]
    for shown in registered_paths(ws):
        try:
            path = ws.resolve(shown)
        except PathEscapeError:
            logger.warning("registered model %s now points outside the workspace; skipped", shown)
            continue
        entries.append(describe(ws, path, "registered", registered=True))
    return entries


def _models_in(folder: Path, depth: int = 0) -> list[Path]:
    """Model folders and files under `folder`; a model folder is not looked into. Hidden names
    (downloads in progress, temp files) are skipped."""
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return []
    found = []
    for child in children:
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if folder_format(child):
                found.append(child)
            elif depth < MAX_DEPTH:
                found += _models_in(child, depth + 1)
        elif child.suffix.lower() in SINGLE_FILE_FORMATS and child.is_file():
            found.append(child)
    return found


def folder_format(folder: Path) -> str | None:
    """ "diffusers" for a pipeline folder, "folder" for one component (config.json), else None."""
    if (folder / "model_index.json").is_file():
        return "diffusers"
    if (folder / "config.json").is_file():
        return "folder"
    return None


def model_format(path: Path) -> str | None:
    if path.is_dir():
        return folder_format(path)
    return SINGLE_FILE_FORMATS.get(path.suffix.lower()) if path.is_file() else None


def describe(ws: Workspace, path: Path, kind: str, registered: bool = False) -> ModelEntry:
    fmt = model_format(path)
    if fmt is None:
        return ModelEntry(
            name=path.name,
            kind=kind,
            path=ws.display(path),
            format="missing",
            size_bytes=0,
            modified=0.0,
            family=UNKNOWN,
            family_note="this path no longer holds a model; put the model back or unregister the path",
            registered=registered,
        )
    family, note = _family(path, fmt)
    try:
        modified = path.stat().st_mtime
    except OSError:
        modified = 0.0
    return ModelEntry(
        name=path.name,
        kind=kind,
        path=ws.display(path),
        format=fmt,
        size_bytes=size_on_disk(path),
        modified=modified,
        family=family.id if family else UNKNOWN,
        family_note=note,
        registered=registered,
    )


def _family(path: Path, fmt: str) -> tuple[Family | None, str]:
    """(family or None, how it was told or why it could not be)."""
    if fmt == "diffusers":
        family = probe_folder(path)
        if family:
            return family, "read from model_index.json"
        pipeline = _json_value(path / "model_index.json", "_class_name")
        why = (
            f"model_index.json names {pipeline}, a pipeline LoRA Pilot does not train"
            if pipeline
            else "model_index.json cannot be read"
        )
        return _guessed(path, why)
    if fmt == "safetensors":
        try:
            header = read_header(path)
        except (OSError, HeaderError) as exc:
            return None, f"unreadable: {exc}"
        family = family_of_tensor_names(tensor_names(header))
        apart = [
            name for name in (family.split_files if family else ()) if name not in components_in_file(path)
        ]
        if family and apart:
            return family, (
                f"read from its tensor names; its {', '.join(apart)} files are separate: training takes them "
                "from models/clip (or text_encoders) and models/vae, or from the config"
            )
        if family:
            return family, "read from its tensor names"
        return _guessed(path, "its tensor names match no family LoRA Pilot trains (a VAE or text encoder?)")
    if fmt == "folder":
        component = _json_value(path / "config.json", "_class_name") or "a model"
        return _guessed(path, f"one component ({component}), not a whole pipeline")
    if fmt in PICKLED:
        why = (
            f"a pickled .{fmt} file is not opened to read its family (that could run code); "
            "convert it to .safetensors"
        )
        return _guessed(path, why)
    return _guessed(path, f"the family of a .{fmt} file is not read")


def _guessed(path: Path, why: str) -> tuple[Family | None, str]:
    family = guess_from_name(path.name)
    if family:
        return family, f"guessed from the name; {why}"
    return None, why


def _json_value(path: Path, key: str) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data.get(key) if isinstance(data, dict) else None


def size_on_disk(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (symlinked files counted as their target)."""
    if not path.is_dir():
        try:
            return path.stat().st_size
        except OSError:
            return 0
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:  # a dangling link or a file removed while counting
                continue
    return total


def disk_usage(ws: Workspace, entries: list[ModelEntry]) -> DiskUsage:
    """The workspace filesystem's totals, and what each models/<kind>/ folder takes of it."""
    usage = shutil.disk_usage(ws.root)
    by_kind = {kind: size_on_disk(ws.model_dir(kind)) for kind in MODEL_KINDS}
    by_kind |= {kind: size_on_disk(ws.models / kind) for kind in COMFYUI_KINDS if (ws.models / kind).is_dir()}
    registered = sum(entry.size_bytes for entry in entries if entry.registered)
    return DiskUsage(usage.total, usage.used, usage.free, by_kind, registered)


# -- registered paths -------------------------------------------------------------------------------
def registry_file(ws: Workspace) -> Path:
    return ws.models_config


def registered_paths(ws: Workspace) -> list[str]:
    """The registered paths as written in config/models.yaml (`paths: [/workspace/...]`)."""
    path = registry_file(ws)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        logger.warning("cannot read %s (%s); no registered models are listed until it is fixed", path, exc)
        return []
    paths = data.get("paths") if isinstance(data, dict) else None
    return [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []


def register(ws: Workspace, raw: Any) -> ModelEntry:
    """Add a model outside models/ to the inventory; it must exist inside the workspace."""
    path = _user_path(ws, raw)
    if not path.exists():
        raise ControlPilotError(
            f"path {_shown(raw)}: nothing is there ({ws.display(path)}); copy the model into the workspace "
            "first, or correct the path"
        )
    if model_format(path) is None:
        suffixes = ", ".join(SINGLE_FILE_FORMATS)
        raise ControlPilotError(
            f"path {_shown(raw)} is neither a diffusers folder (no model_index.json) nor a model file "
            f"({suffixes}); point at the pipeline folder or at the checkpoint file"
        )
    if path == ws.models or ws.models in path.parents:
        raise ControlPilotError(
            f"path {_shown(raw)} is inside /workspace/models/, which is listed without registering; "
            "nothing to do"
        )
    shown = ws.display(path)
    with _REGISTRY_LOCK:
        paths = registered_paths(ws)
        if shown not in paths:
            _write_registry(ws, [*paths, shown])
            logger.info("registered model %s", shown)
    return describe(ws, path, "registered", registered=True)


def unregister(ws: Workspace, raw: Any) -> str:
    """Forget a registered path (the files stay); returns it as it was registered."""
    shown = ws.display(_user_path(ws, raw))
    with _REGISTRY_LOCK:
        paths = registered_paths(ws)
        if shown not in paths:
            listed = ", ".join(paths) or "none"
            raise NotFoundError(f"path {_shown(raw)} is not registered (registered: {listed})")
        _write_registry(ws, [p for p in paths if p != shown])
    logger.info("unregistered model %s", shown)
    return shown


def _user_path(ws: Workspace, raw: Any) -> Path:
    if not isinstance(raw, str) or not raw.strip():
        raise ControlPilotError(
            "path: give the model's path inside the workspace, e.g. /workspace/imports/my-model.safetensors"
        )
    if "\x00" in raw:
        raise ControlPilotError(f"path {_shown(raw)} contains a NUL character, which no file name can hold")
    try:
        path = ws.resolve(raw.strip())
    except PathEscapeError:
        raise ControlPilotError(
            f"path {_shown(raw)} is outside the workspace (/workspace); copy or move the model into it "
            "(e.g. /workspace/models/checkpoints/) and use that path"
        ) from None
    try:
        path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        pass  # register says nothing is there; unregister may forget a path whose model is gone
    except OSError as exc:  # a name or path longer than the file system takes, a damaged disk, …
        raise ControlPilotError(f"path {_shown(raw)} cannot be used: {exc.strerror or exc}") from None
    return path


def _shown(raw: str, limit: int = 200) -> str:
    """The path as sent, quoted; a very long one cut, so the answer stays readable."""
    return repr(raw) if len(raw) <= limit else f"{raw[:limit]!r}… ({len(raw)} characters)"


def _write_registry(ws: Workspace, paths: list[str]) -> None:
    """Rewrite `paths:`; the file's other keys (the user's `catalog:` entries) are kept as they are."""
    try:
        data = yaml.safe_load(registry_file(ws).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        data = None
    others = {key: value for key, value in data.items() if key != "paths"} if isinstance(data, dict) else {}
    text = "# Models registered on ControlPilot's Models page: paths inside the workspace, outside models/.\n"
    text += yaml.safe_dump({"paths": paths, **others}, sort_keys=False)
    write_atomic(registry_file(ws), text.encode("utf-8"))
