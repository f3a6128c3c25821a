"""Resumable training state: everything that decides the rest of the trajectory.

LoRA weights, optimizer, LR schedule, grad scaler, step, data order and every random generator go
into `state/`, written to a temporary folder and renamed into place, so a crash mid-save leaves
the previous state intact. A resumed run continues exactly where the saved one was.
"""

from __future__ import annotations

import logging
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)
STATE_VERSION = 1


@dataclass
class TrainerState:
    step: int
    lora: dict[str, dict[str, torch.Tensor]]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] | None
    sampler: dict[str, Any]
    data_rng: Any  # random.Random state
    noise_rng: torch.Tensor
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None
    extra: dict[str, Any]  # EMA weights, early-stopping tracker, spec fingerprint


def capture_rng(noise: torch.Generator, data: random.Random) -> dict[str, Any]:
    return {
        "noise_rng": noise.get_state(),
        "data_rng": data.getstate(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(state: TrainerState, noise: torch.Generator, data: random.Random) -> None:
    noise.set_state(state.noise_rng)
    data.setstate(state.data_rng)
    torch.set_rng_state(state.torch_rng)
    if state.cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state.cuda_rng)


def save_state(folder: Path, state: TrainerState) -> None:
    """Write `state` beside `folder` and swap it in; a failed write (a full disk) removes what it
    wrote and leaves the previous state as it was."""
    tmp = partial_state(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        for name, tensors in state.lora.items():
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                str(tmp / f"lora-{name}.safetensors"),
            )
        rest = {k: v for k, v in state.__dict__.items() if k != "lora"}
        # Through a Python file: its OSError (ENOSPC, EFBIG) stays in the chain of torch's error.
        with (tmp / "trainer.pt").open("wb") as handle:
            torch.save({"version": STATE_VERSION, "lora_sites": sorted(state.lora), **rest}, handle)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def partial_state(folder: Path) -> Path:
    """Where a state is written before it replaces `folder`; left only by a process killed mid-save."""
    return folder.with_name(folder.name + ".tmp")


def load_state(folder: Path) -> TrainerState | None:
    """The saved state, or None when there is none (a crash between renames falls back to `.old`)."""
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / "trainer.pt").is_file():
            break
    else:
        return None
    # weights_only: the state holds tensors and plain Python values only, so nothing in a
    # (possibly shared) workspace can make loading it run code.
    data = torch.load(candidate / "trainer.pt", map_location="cpu", weights_only=True)
    if data.pop("version") != STATE_VERSION:
        log.warning("state in %s was written by another version; starting over", candidate)
        return None
    sites = data.pop("lora_sites")
    lora = {name: load_file(str(candidate / f"lora-{name}.safetensors")) for name in sites}
    return TrainerState(lora=lora, **data)
