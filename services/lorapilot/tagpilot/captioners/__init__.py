"""Auto-captioning back-ends, the cache that keeps one loaded, and discovery of local models."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lorapilot.tagpilot.captioners import blip, openai_api, vlm, wd14  # noqa: F401 - they register
from lorapilot.tagpilot.captioners.base import (
    BACKENDS,
    Captioner,
    CaptionerChoice,
    CaptionerError,
    choice_from_json,
)
from lorapilot.workspace import Workspace

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "Captioner", "CaptionerChoice", "CaptionerError", "choice_from_json", "discover"]

# transformers model_type → back-end; any other image-text model goes to the generic VLM back-end
_MODEL_TYPES = {"blip": "blip"}


def discover(workspace: Workspace) -> list[dict[str, Any]]:
    """Every usable model folder in models/captioners/, with the back-end that runs it."""
    folder = workspace.model_dir("captioners")
    found = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        backend = _backend_of(path)
        if backend:
            found.append({"name": path.name, "backend": backend, "path": workspace.display(path)})
    return found


def _backend_of(path: Path) -> str | None:
    if not path.is_dir() or path.name.startswith("."):
        return None
    if (path / "model.onnx").is_file() and (path / "selected_tags.csv").is_file():
        return "wd14"
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return _MODEL_TYPES.get(str(config.get("model_type", "")).lower(), "vlm")
