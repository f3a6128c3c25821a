"""LoRA layers whose training step costs two extra small matmuls per wrapped Linear and nothing else.

peft's `lora.Linear` computes `base(x) + lora_B(lora_A(dropout(x))) * scaling` with a cast of the
activation to the LoRA dtype, autocast's cast back, a separate multiply, an add and a final cast:
about ten kernels per layer and two extra copies of the activation, which is why a LoRA step of a
small denoiser is bound by the host issuing kernels (DESIGN §9). `FusedLoraLinear` keeps peft's
module, parameters and names (files, state and loaders see exactly peft's layer) and replaces only
the arithmetic: `h = x·Aᵀ` and `out = base + s·h·Bᵀ` (one `addmm`), with a hand-written backward of
four matmuls. Anything it does not cover (dropout, DoRA, several adapters, merged or disabled
adapters) runs peft's own forward.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from peft.tuners.lora import layer as peft_lora

from lorapilot.engine.lora import ADAPTER


class _LoraDelta(torch.autograd.Function):
    """`base + scale · (x Aᵀ) Bᵀ` in `dtype`; A and B arrive in their master dtype (fp32)."""

    @staticmethod
    def forward(ctx, x, base, lora_a, lora_b, scale: float, dtype: torch.dtype):  # noqa: PLR0917
        x2 = x.reshape(-1, x.shape[-1]).to(dtype)
        a, b = lora_a.to(dtype), lora_b.to(dtype)
        h = torch.mm(x2, a.t())
        out = torch.addmm(base.reshape(-1, base.shape[-1]).to(dtype), h, b.t(), alpha=scale)
        ctx.save_for_backward(x2, h, a, b)
        ctx.scale, ctx.x_shape = scale, x.shape
        return out.view(*base.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        x2, h, a, b = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1]).to(h.dtype)
        # beta=0: the first argument only gives the shape; alpha carries the LoRA scale for free.
        gh = torch.addmm(h, g, b, beta=0, alpha=ctx.scale)
        grad_x = torch.mm(gh, a).view(ctx.x_shape) if ctx.needs_input_grad[0] else None
        grad_a = torch.mm(gh.t(), x2) if ctx.needs_input_grad[2] else None
        grad_b = torch.addmm(b, g.t(), h, beta=0, alpha=ctx.scale) if ctx.needs_input_grad[3] else None
        return grad_x, grad, grad_a, grad_b, None, None


class FusedLoraLinear(peft_lora.Linear):
    """peft's LoRA Linear with the fused arithmetic; swapped in by class, so nothing else changes."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if args or kwargs or not self._fusable():
            return super().forward(x, *args, **kwargs)
        base = self.base_layer(x)
        lora_a = self.lora_A[ADAPTER].weight
        lora_b = self.lora_B[ADAPTER].weight
        device = x.device.type
        # The dtype peft's layer computes the LoRA product in: autocast's, else the LoRA weights'.
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else lora_a.dtype
        out = _LoraDelta.apply(x, base, lora_a, lora_b, float(self.scaling[ADAPTER]), dtype)
        return out if out.dtype == base.dtype else out.to(base.dtype)

    def _fusable(self) -> bool:
        return (
            not self.disable_adapters
            and not self.merged
            and list(self.active_adapters) == [ADAPTER]
            and ADAPTER not in self.lora_variant  # DoRA
            and isinstance(self.lora_dropout[ADAPTER], torch.nn.Identity)
        )


def fuse_lora_layers(modules: Iterable[torch.nn.Module]) -> int:
    """Give every plain peft LoRA Linear in `modules` the fused arithmetic; returns how many.

    Conv layers (LoCon) and quantised bases keep peft's layers: only `lora.Linear` over a
    `torch.nn.Linear` qualifies (its base keeps its own hooks, e.g. float8 layerwise casting).
    """
    count = 0
    for root in modules:
        for module in root.modules():
            if type(module) is peft_lora.Linear and isinstance(module.get_base_layer(), torch.nn.Linear):
                module.__class__ = FusedLoraLinear
                count += 1
    return count
