"""The training engine: `train(spec, workspace, on_progress)` runs one LoRA training to the end."""

from __future__ import annotations

from typing import Any

__all__ = ["Progress", "RunResult", "StopTraining", "train"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (e.g. for lora_export) must not pull in the whole trainer.
    if name in ("train", "RunResult", "StopTraining"):
        from lorapilot.engine import trainer  # noqa: PLC0415

        return getattr(trainer, name)
    if name == "Progress":
        from lorapilot.engine.progress import Progress  # noqa: PLC0415

        return Progress
    raise AttributeError(name)
