"""Host tensors onto the training device without stalling the host."""

from __future__ import annotations

import torch


def to_device(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A host tensor on `device` without making the host wait: on CUDA it goes through pinned
    memory with a non-blocking copy, so the host goes on queueing the step's kernels."""
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device, dtype)
    moved = tensor.pin_memory().to(device, non_blocking=True)
    return moved if dtype is None else moved.to(dtype)
