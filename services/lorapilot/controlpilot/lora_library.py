"""The LoRA library: every LoRA file in models/loras/ and in the runs' outputs/, with how it was trained.

kohya's `ss_*` keys (and `modelspec.*`) live in a safetensors file's JSON header, so a library
of many multi-MB files is read by opening each header only, never a tensor. A damaged file
becomes an entry that says what is wrong with it, so one bad file cannot break the page.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lorapilot.safetensors_header import HeaderError, read_header
from lorapilot.workspace import Workspace

logger = logging.getLogger(__name__)

MAX_SIDECAR_BYTES = 1024 * 1024
METADATA_PREFIXES = ("ss_", "sshs_", "modelspec.")
LORA_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class LoraEntry:
    name: str  # the file's stem, as ComfyUI's LoraLoader and A1111 list it
    file: str
    path: str  # as a user of the container writes it: /workspace/...
    source: str  # "loras" (models/loras/) or "run" (outputs/<run>/)
    run: str | None
    size_bytes: int
    modified: float
    tensors: int
    metadata: dict[str, Any]  # ss_* / sshs_* / modelspec.*; JSON-valued ones decoded
    sidecar: dict[str, Any] | None  # the same-stem .json the ComfyUI bridge writes
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def training_metadata(header: dict[str, Any]) -> dict[str, Any]:
    """The header's training keys; values kohya stores as JSON text (ss_tag_frequency, …) decoded."""
    stored = header.get("__metadata__")
    if not isinstance(stored, dict):
        return {}
    return {
        key: _decoded(value)
        for key, value in sorted(stored.items())
        if isinstance(key, str) and key.startswith(METADATA_PREFIXES)
    }


def _decoded(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def library(ws: Workspace) -> list[LoraEntry]:
    """Every LoRA file the workspace holds, newest first."""
    entries = [_entry(ws, path, "loras", None) for path in _published(ws)]
    entries += [_entry(ws, path, "run", path.parent.name) for path in _run_outputs(ws)]
    return sorted(entries, key=lambda entry: (-entry.modified, entry.path))


def _published(ws: Workspace) -> list[Path]:
    """models/loras/, subfolders included (ComfyUI lists them as `sub/name`); hidden temp files skipped."""
    root = ws.model_dir("loras")
    if not root.is_dir():
        return []
    found = []
    for path in root.rglob(f"*{LORA_SUFFIX}"):
        parts = path.relative_to(root).parts
        if not any(part.startswith(".") for part in parts) and path.is_file():
            found.append(path)
    return found


def _run_outputs(ws: Workspace) -> list[Path]:
    """The final LoRA and the periodic saves at the top of each run folder (not state/)."""
    if not ws.outputs.is_dir():
        return []
    return [
        path
        for run in ws.outputs.iterdir()
        if run.is_dir() and not run.name.startswith(".")
        for path in run.glob(f"*{LORA_SUFFIX}")
        if not path.name.startswith(".") and path.is_file()
    ]


def _entry(ws: Workspace, path: Path, source: str, run: str | None) -> LoraEntry:
    try:
        stat = path.stat()
        size, modified = stat.st_size, stat.st_mtime
    except OSError:  # deleted while listing
        size, modified = 0, 0.0
    metadata: dict[str, Any] = {}
    tensors, error = 0, None
    try:
        header = read_header(path)
        metadata = training_metadata(header)
        tensors = sum(1 for key in header if key != "__metadata__")
    except (OSError, HeaderError) as exc:
        error = f"{ws.display(path)}: {exc}"
        logger.warning("LoRA library: %s", error)
    return LoraEntry(
        name=path.stem,
        file=path.name,
        path=ws.display(path),
        source=source,
        run=run,
        size_bytes=size,
        modified=modified,
        tensors=tensors,
        metadata=metadata,
        sidecar=_sidecar(path),
        error=error,
    )


def _sidecar(lora: Path) -> dict[str, Any] | None:
    path = lora.with_suffix(".json")
    try:
        if not path.is_file() or path.stat().st_size > MAX_SIDECAR_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        logger.warning("LoRA library: cannot read the sidecar %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None
