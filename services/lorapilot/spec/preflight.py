"""What a valid spec still needs from the machine it runs on, checked before a run is queued.

A config the trainer accepts must not fail minutes later for a missing library or device: what
this machine cannot do is either replaced by what works (a notice says so) or refused here with
the field and the fix. The engine makes the same substitutions (`engine.run_setup.precision_on`,
the attention fallback), so what the notice says is what runs.
"""

from __future__ import annotations

import functools
import importlib.util

from lorapilot import families
from lorapilot.spec.issues import Notice, SpecError, SpecIssue
from lorapilot.spec.model import TrainSpec

CPU_FP16 = (
    "fp16 autocast needs a CUDA GPU; on this CPU the run autocasts in bf16 (bf16 weights too), "
    "which has fp32's range and needs no loss scaling"
)


@functools.cache
def cuda_available() -> bool:
    import torch  # noqa: PLC0415 - torch only for configs that ask for a GPU feature

    return torch.cuda.is_available()


def xformers_installed() -> bool:
    return importlib.util.find_spec("xformers") is not None


def preflight(spec: TrainSpec) -> list[Notice]:
    """Notices for what runs differently on this machine; SpecError for what cannot run at all."""
    notices: list[Notice] = []
    issues: list[SpecIssue] = _sample_sizes(spec)
    t = spec.training
    if t.attention == "xformers" and not (xformers_installed() and cuda_available()):
        why = "is not installed" if not xformers_installed() else "runs on CUDA GPUs only"
        notices.append(Notice("training.attention", f"xformers {why}; PyTorch SDPA attention is used"))
    if t.mixed_precision == "fp16" and not cuda_available():
        notices.append(Notice("training.mixed_precision", CPU_FP16))
    if spec.model.quantize in ("int8", "nf4") and not cuda_available():
        issues.append(
            SpecIssue(
                "model.quantize",
                "bitsandbytes quantises the weights on a CUDA GPU, and this machine has none",
                spec.model.quantize,
                hint="use quantize: float8 (float8 storage on any device) or none",
            )
        )
    if issues:
        raise SpecError(issues)
    return notices


def _sample_sizes(spec: TrainSpec) -> list[SpecIssue]:
    """Sample sides the model can render: multiples of its VAE downscale × patch size."""
    family = families.get(spec.model.family)
    multiple = family.image_multiple
    sides = [(f"sample.{name}", getattr(spec.sample, name)) for name in ("width", "height")]
    for index, prompt in enumerate(spec.sample.prompts):
        sides += [(f"sample.prompts[{index}].{name}", getattr(prompt, name)) for name in ("width", "height")]
    return [
        SpecIssue(
            where,
            f"{family.label} renders sides that are multiples of {multiple}",
            side,
            hint=f"use {side // multiple * multiple} or {(side // multiple + 1) * multiple}",
        )
        for where, side in sides
        if side is not None and side % multiple
    ]
