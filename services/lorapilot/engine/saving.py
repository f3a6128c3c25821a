"""Writing the run's LoRA files in the format the spec asks for, with keep-last retention."""

from __future__ import annotations

import logging
from pathlib import Path

from lorapilot.engine.lora_export import LoraComponent, save_diffusers_lora, save_kohya_lora
from lorapilot.engine.run_folder import RunFolder
from lorapilot.engine.run_setup import DTYPES
from lorapilot.spec.model import SaveSpec

log = logging.getLogger(__name__)


def save_lora(path: Path, components: list[LoraComponent], metadata: dict[str, str], save: SaveSpec) -> None:
    if save.format == "diffusers":
        save_diffusers_lora(path, components, metadata, DTYPES[save.dtype])
    else:
        save_kohya_lora(path, components, metadata, DTYPES[save.dtype])


def save_periodic(
    folder: RunFolder, step: int, components: list[LoraComponent], metadata: dict[str, str], save: SaveSpec
) -> Path:
    """`<name>-stepNNNNNNNN.safetensors`, then the oldest periodic saves beyond `keep_last` go."""
    path = folder.periodic_lora(step)
    save_lora(path, components, metadata, save)
    if save.keep_last:
        existing = folder.periodic_loras()
        for _, old in existing[: max(0, len(existing) - save.keep_last)]:
            old.unlink(missing_ok=True)
            log.info("removed old periodic save %s (keep_last=%d)", old.name, save.keep_last)
    return path
