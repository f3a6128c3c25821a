"""Block swapping keeps at most one block's frozen weights on the device, in forward and in backward.

Without a GPU the "device" is the CPU and a transfer is a copy, so a block is resident exactly when
its weights are not its host tensors. The real host→GPU transfer runs in the GPU tests.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from lorapilot.engine.block_swap import BlockSwapper

CPU = torch.device("cpu")


class CopyingSwapper(BlockSwapper):
    def to_device(self, host: torch.Tensor) -> torch.Tensor:
        return host.clone()


class Stack(torch.nn.Module):
    """Frozen blocks with one trainable layer in front, run the way diffusers checkpoints blocks."""

    def __init__(self, blocks: int = 4, width: int = 8) -> None:
        super().__init__()
        self.trainable = torch.nn.Linear(width, width)
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.LayerNorm(width), torch.nn.GELU())
            for _ in range(blocks)
        )
        self.blocks.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trainable(x)
        for block in self.blocks:
            x = checkpoint(block.__call__, x, use_reentrant=False)
        return x


def resident_blocks(model: Stack, swapper: BlockSwapper) -> list[int]:
    return [
        i
        for i, block in enumerate(model.blocks)
        if any(t.data_ptr() != host.data_ptr() for t, host in swapper.host.get(block, []))
    ]


def test_swapped_blocks_leave_the_device_after_forward_and_after_their_backward():
    model = Stack()
    swapper = CopyingSwapper(list(model.blocks), CPU)
    swapper.place(model)
    assert resident_blocks(model, swapper) == []
    seen_in_backward: list[list[int]] = []
    model.blocks[0].register_forward_pre_hook(
        lambda m, a: seen_in_backward.append(resident_blocks(model, swapper))
    )
    reference = Stack()
    reference.load_state_dict(model.state_dict())

    for _ in range(2):
        x = torch.randn(2, 8)
        out = model(x)
        assert resident_blocks(model, swapper) == [], "a block stayed on the device after its forward"
        out.sum().backward()
        assert len(resident_blocks(model, swapper)) <= 1, "recomputed blocks piled up in backward"
        reference(x).sum().backward()
        torch.testing.assert_close(model.trainable.weight.grad, reference.trainable.weight.grad)
    # block 0's recomputation comes last in backward: by then every later block has left the device
    assert all(len(r) <= 1 for r in seen_in_backward)
    assert model.trainable.weight.grad is not None


def test_only_the_given_blocks_are_swapped():
    model = Stack(blocks=4)
    swapper = CopyingSwapper(list(model.blocks)[2:], CPU)
    assert set(swapper.host) == {model.blocks[2], model.blocks[3]}
    assert all(not t.requires_grad for pairs in swapper.host.values() for t, _ in pairs)
