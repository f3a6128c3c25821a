"""Interrupting a training run from its progress callback, the way a crash would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class SimulatedCrashError(RuntimeError):
    """Raised from the progress callback: the run dies between two saves."""


def crash_at(step: int) -> Callable[[Any], None]:
    def on_progress(progress: Any) -> None:
        if progress.step == step:
            raise SimulatedCrashError(f"simulated crash at step {progress.step}")

    return on_progress
