"""Writing the run's LoRA files in the layout the family's loaders read, with keep-last retention."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from lorapilot.engine.lora_export import (
    LoraComponent,
    save_diffusers_lora,
    save_kohya_lora,
    save_peft_folded_lora,
)
from lorapilot.engine.run_folder import RunFolder, SaveKind
from lorapilot.engine.run_setup import DTYPES

log = logging.getLogger(__name__)
SAVERS = {"kohya": save_kohya_lora, "diffusers": save_diffusers_lora, "peft_folded": save_peft_folded_lora}


@dataclass(frozen=True)
class LoraFileSpec:
    layout: str  # a key of SAVERS
    dtype: str  # "fp16", "bf16", "fp32"
    keep_last: int | None = None


def save_lora(
    path: Path, components: list[LoraComponent], metadata: dict[str, str], spec: LoraFileSpec
) -> None:
    SAVERS[spec.layout](path, components, metadata, DTYPES[spec.dtype])


def save_periodic(
    folder: RunFolder,
    kind: SaveKind,
    number: int,
    components: list[LoraComponent],
    *,
    metadata: dict[str, str],
    spec: LoraFileSpec,
) -> Path:
    """The step or epoch `number`'s save, then the oldest saves of that kind beyond `keep_last` go.

    Step and epoch saves are counted apart, as kohya's save_last_n_steps and save_last_n_epochs are.
    """
    path = folder.periodic_lora(number, kind)
    save_lora(path, components, metadata, spec)
    if spec.keep_last:
        existing = folder.periodic_loras(kind)
        for _, old in existing[: max(0, len(existing) - spec.keep_last)]:
            old.unlink(missing_ok=True)
            log.info("removed old periodic save %s (keep_last=%d)", old.name, spec.keep_last)
    return path
