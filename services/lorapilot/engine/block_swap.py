"""Block swapping: some of the denoiser's blocks keep their frozen weights in host memory and are
streamed onto the training device just before they run, then dropped again.

Correct only with gradient checkpointing (non-reentrant, as diffusers uses it): a checkpointed block
saves nothing in its forward pass, so its weights can go as soon as it returns. In backward the block
is recomputed, and torch stops that recomputation as soon as it has the tensors it needs (checkpoint
"early stop"), so the block's forward hook may never fire there: a block brought in for recomputation
stays until the next block's recomputation starts. Autograd runs a later block's backward entirely
before an earlier block's, so by then nothing needs it. LoRA parameters are trainable and stay on the
device. The host copies are pinned so the copies can run asynchronously with the host.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

log = logging.getLogger(__name__)


class BlockSwapper:
    def __init__(self, blocks: Sequence[torch.nn.Module], device: torch.device) -> None:
        self.device = device
        self.resident: set[torch.nn.Module] = set()  # blocks brought in by backward recomputation
        self.host: dict[torch.nn.Module, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        pin = device.type == "cuda"
        for block in blocks:
            pairs = []
            for tensor in [*block.parameters(), *block.buffers()]:
                if tensor.requires_grad:
                    continue  # LoRA weights train on the device
                host = tensor.data.to("cpu")
                if pin:
                    host = host.pin_memory()
                tensor.data = host
                pairs.append((tensor, host))
            self.host[block] = pairs
            block.register_forward_pre_hook(self._onload)
            block.register_forward_hook(self._offload)
        moved = sum(h.numel() * h.element_size() for pairs in self.host.values() for _, h in pairs)
        log.info("block swapping: %d blocks (%.2f GiB) stream from host memory", len(blocks), moved / 2**30)

    def _onload(self, block: torch.nn.Module, args) -> None:
        # Blocks left on the device by a backward pass (recomputed there) go before another comes in.
        for other in [b for b in self.resident if b is not block]:
            self._release(other)
        if _in_backward():
            self.resident.add(block)
        for tensor, host in self.host[block]:
            tensor.data = self.to_device(host)

    def to_device(self, host: torch.Tensor) -> torch.Tensor:
        return host.to(self.device, non_blocking=True)

    def _offload(self, block: torch.nn.Module, args, output) -> None:
        if not _in_backward():  # during recomputation a pending backward may still read the weights
            self._release(block)

    def _release(self, block: torch.nn.Module) -> None:
        for tensor, host in self.host[block]:
            tensor.data = host
        self.resident.discard(block)

    def place(self, model: torch.nn.Module) -> None:
        """Move everything but the swapped blocks' frozen weights to the device."""
        swapped = {id(t) for pairs in self.host.values() for t, _ in pairs}
        for tensor in [*model.parameters(), *model.buffers()]:
            if id(tensor) not in swapped:
                tensor.data = tensor.data.to(self.device)


def _in_backward() -> bool:
    """True while autograd runs a backward pass on this thread (checkpoint recomputation)."""
    return torch._C._current_graph_task_id() != -1
