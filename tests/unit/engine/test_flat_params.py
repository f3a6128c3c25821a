"""One flat buffer per param group steps exactly like the per-tensor optimizer it replaces."""

from __future__ import annotations

import pytest
import torch

from lorapilot.engine.flat_params import SEGMENT_ALIGN, FlatLoraParameters
from lorapilot.engine.optim import build_optimizer, flat_layout_groups

SHAPES = [(4, 300), (17, 33), (4100,), (8, 8), (1, 257)]  # sizes around bitsandbytes' 256 block


def params_and_grads(seed: int):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(*s, generator=gen) * 0.1) for s in SHAPES]
    grads = [[torch.randn(*s, generator=gen) * 10.0**-k for s in SHAPES] for k in range(1, 6)]
    return params, grads


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("adamw", {"weight_decay": 0.01}),
        ("adamw8bit", {"weight_decay": 0.01}),  # all but (4100,) keep 32-bit state
        ("adamw8bit", {"min_8bit_size": 0}),  # every tensor in 8-bit state
        ("lion8bit", {}),
        ("lion", {}),
        ("sgd", {"momentum": 0.9}),
    ],
)
def test_a_flat_step_is_the_per_tensor_step(name, args):
    """Same gradients, five steps, two LR groups: the weights end bit for bit the same."""
    reference, grads = params_and_grads(0)
    flat_params, _ = params_and_grads(0)
    groups = lambda ps: [{"params": ps[:2], "lr": 1e-2}, {"params": ps[2:], "lr": 3e-3}]  # noqa: E731
    per_tensor = build_optimizer(name, groups(reference), args)
    flat = FlatLoraParameters(flat_layout_groups(name, groups(flat_params), args))
    flat_optimizer = build_optimizer(name, flat.optimizer_groups(), args)
    for step_grads in grads:
        for p, q, g in zip(reference, flat_params, step_grads, strict=True):
            p.grad = g.clone()
            q.grad.copy_(g)  # q.grad is a view into the group's flat gradient
        per_tensor.step()
        flat_optimizer.step()
        per_tensor.zero_grad(set_to_none=True)
        flat.zero_grad()
    for p, q in zip(reference, flat_params, strict=True):
        torch.testing.assert_close(q.detach(), p.detach(), rtol=0, atol=0)
    assert len(flat_optimizer.state) == len(flat.groups) <= 4  # per group (and state size), not per tensor


def test_autograd_accumulates_into_the_flat_gradient_and_zeroing_keeps_the_link():
    a = torch.nn.Parameter(torch.ones(3, 5))
    b = torch.nn.Parameter(torch.ones(300))
    flat = FlatLoraParameters([{"params": [a, b], "lr": 1.0}])
    [buffer] = flat.flat
    assert buffer.numel() == 2 * SEGMENT_ALIGN + SEGMENT_ALIGN  # 15 → 256, 300 → 512
    for _ in range(2):
        ((a * 2).sum() + (b * 3).sum()).backward()
    assert torch.equal(buffer.grad[:15], torch.full((15,), 4.0))
    assert torch.equal(buffer.grad[256:556], torch.full((300,), 6.0))
    assert buffer.grad[15:256].abs().sum() == 0 and buffer.grad[556:].abs().sum() == 0  # padding
    flat.zero_grad()
    (a.sum() + b.sum()).backward()
    assert a.grad.data_ptr() == buffer.grad.data_ptr() and torch.equal(a.grad, torch.ones(3, 5))
    with torch.no_grad():
        buffer.add_(1.0)  # what an optimizer step does to the buffer shows in the parameters
    assert torch.equal(a, torch.full((3, 5), 2.0)) and torch.equal(b, torch.full((300,), 2.0))


def test_a_group_mixing_dtypes_is_refused_with_both_named():
    with pytest.raises(ValueError, match=r"float32.*also torch.bfloat16"):
        FlatLoraParameters(
            [{"params": [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2).bfloat16())]}]
        )
