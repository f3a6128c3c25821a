"""Configs that ask for a GPU feature train on a CPU with what works there, as validate's notices say."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lorapilot.engine import train


def losses(result) -> list[float]:
    with (result.lora.parent / "_logs" / "metrics.jsonl").open() as lines:
        return [json.loads(line)["loss"] for line in lines]


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 autocast runs as asked on a GPU")
@pytest.mark.parametrize(
    ("family", "weights"), [("sd15", "bf16"), ("sd15", "fp16"), ("flux-schnell", "bf16")]
)
def test_fp16_mixed_precision_trains_on_a_cpu(family, weights, make_spec, workspace):
    spec = make_spec(
        family,
        name=f"fp16-{family}-{weights}",
        model={"weight_dtype": weights},
        training={"max_steps": 2, "mixed_precision": "fp16"},
        sample={"every": 2, "prompts": ["lpdemo, a cat"], "steps": 1, "width": 64, "height": 64},
    )
    result = train(spec, workspace, show_progress=False)
    assert result.lora.is_file() and all(math.isfinite(loss) for loss in losses(result))
    assert not result.warnings  # the sample rendered too


@pytest.mark.skipif(torch.cuda.is_available(), reason="xformers may run on a GPU")
def test_xformers_attention_falls_back_to_sdpa_on_a_cpu(make_spec, workspace):
    spec = make_spec(name="xformers-cpu", training={"max_steps": 2, "attention": "xformers"})
    result = train(spec, workspace, show_progress=False)
    assert result.lora.is_file()
    assert "using PyTorch SDPA" in (result.lora.parent / "_logs" / "train.log").read_text()
