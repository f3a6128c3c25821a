"""The fused LoRA layer computes what peft's layer computes, forward and backward."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model

from lorapilot.engine.fused_lora import FusedLoraLinear, fuse_lora_layers


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.to_q = torch.nn.Linear(24, 40)
        self.to_out = torch.nn.Linear(40, 24, bias=False)
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.to_out(torch.nn.functional.gelu(self.to_q(x)))


def lora_block(**config):
    torch.manual_seed(0)
    block = Block()
    options = {"r": 4, "lora_alpha": 2.0, "target_modules": ["to_q", "to_out", "conv"]} | config
    inject_adapter_in_model(LoraConfig(**options), block)
    for name, param in block.named_parameters():
        param.requires_grad_("lora_" in name)
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.1)  # peft starts B at zero; train-like values instead
    return block


def run(block, x, autocast: bool):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = block(x)
    out.float().square().mean().backward()
    return out, {n: p.grad for n, p in block.named_parameters() if p.grad is not None}, x.grad


@pytest.mark.parametrize(("autocast", "tol"), [(False, 1e-6), (True, 2e-2)])
def test_fused_forward_and_backward_match_peft(autocast, tol):
    peft_block = lora_block()
    fused_block = copy.deepcopy(peft_block)
    assert fuse_lora_layers([fused_block]) == 2  # the two Linears; the conv keeps peft's layer
    assert type(fused_block.to_q) is FusedLoraLinear and type(fused_block.conv) is not FusedLoraLinear
    x = torch.randn(2, 7, 24, requires_grad=True)
    out_a, grads_a, x_grad_a = run(peft_block, x, autocast)
    x2 = x.detach().clone().requires_grad_(True)
    out_b, grads_b, x_grad_b = run(fused_block, x2, autocast)
    assert out_a.dtype == out_b.dtype
    torch.testing.assert_close(out_b.float(), out_a.float(), rtol=tol, atol=tol)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == 4
    for name in grads_a:
        assert grads_b[name].dtype == torch.float32, name
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=tol, atol=tol, msg=name)
    torch.testing.assert_close(x_grad_b, x_grad_a, rtol=tol, atol=tol)


@pytest.mark.parametrize("config", [{"lora_dropout": 0.5}, {"use_dora": True}])
def test_what_the_fused_product_does_not_cover_runs_peft_own_forward(config):
    """Dropout and DoRA: the layer is swapped but computes peft's way, so results are peft's."""
    peft_block = lora_block(**config)
    fused_block = copy.deepcopy(peft_block)
    fuse_lora_layers([fused_block])
    x = torch.randn(3, 24)
    torch.manual_seed(1)
    expected = peft_block(x)
    torch.manual_seed(1)
    torch.testing.assert_close(fused_block(x), expected, rtol=0, atol=0)


def test_a_disabled_adapter_gives_the_base_output():
    block = lora_block()
    fuse_lora_layers([block])
    x = torch.randn(3, 24)
    block.to_q.enable_adapters(False)
    torch.testing.assert_close(block.to_q(x), block.to_q.base_layer(x))
