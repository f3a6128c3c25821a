"""float8 base weights: the frozen denoiser is stored in float8 and computed in the training dtype."""

from __future__ import annotations

import json
import math

import pytest
import torch
from diffusers import DiffusionPipeline

from lorapilot.engine import train
from lorapilot.engine.families import adapter_for
from lorapilot.engine.run_setup import prepare_run

FAMILIES = ("sd15", "sdxl", "sd3", "flux-schnell")


def frozen_bytes(run, adapter) -> int:
    """Bytes of the denoiser's frozen (non-LoRA) parameters as stored."""
    denoiser = run.model[adapter.denoiser_name]
    return sum(p.numel() * p.element_size() for n, p in denoiser.named_parameters() if "lora_" not in n)


@pytest.mark.parametrize("family", FAMILIES)
def test_float8_base_weights_take_about_half_the_memory_of_bf16(family, make_spec, workspace):
    adapter = adapter_for(family)
    sizes = {}
    for quantize in ("none", "float8"):
        spec = make_spec(
            family, name=f"{quantize}-{family}", model={"weight_dtype": "bf16", "quantize": quantize}
        )
        run = prepare_run(spec, workspace, adapter, torch.device("cpu"), show=False)
        sizes[quantize] = frozen_bytes(run, adapter)
        lora = [p for site in run.sites for p in site.parameters()]
        assert lora and all(p.dtype == torch.float32 and p.requires_grad for p in lora)
    denoiser = run.model[adapter.denoiser_name]
    stored = {p.dtype for n, p in denoiser.named_parameters() if "lora_" not in n}
    assert torch.float8_e4m3fn in stored
    # Every linear weight is stored in half the bytes; norms, embeddings and the in/out projections
    # stay bf16, as diffusers recommends (on the tiny models a larger share than on real ones).
    assert sizes["float8"] < 0.7 * sizes["none"], sizes
    linear = [
        m.weight for n, m in denoiser.named_modules() if isinstance(m, torch.nn.Linear) and "lora_" not in n
    ]
    assert sum(w.dtype == torch.float8_e4m3fn for w in linear) > 0.8 * len(linear)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_float8_run_trains_a_lora_that_loads_in_diffusers(family, make_spec, workspace):
    spec = make_spec(
        family,
        name=f"fp8-{family}",
        model={"weight_dtype": "bf16", "quantize": "float8"},
        training={"max_steps": 3, "mixed_precision": "bf16"},
    )
    result = train(spec, workspace, show_progress=False)
    losses = [json.loads(line)["loss"] for line in (result.lora.parent / "_logs" / "metrics.jsonl").open()]
    assert losses and all(math.isfinite(loss) for loss in losses)

    pipe = DiffusionPipeline.from_pretrained(
        workspace.model_dir("diffusers") / f"tiny-{family}", dtype=torch.float32
    )
    pipe.load_lora_weights(str(result.lora), adapter_name="fp8")
    loaded = {name for names in pipe.get_list_adapters().values() for name in names}
    assert "fp8" in loaded, "no adapter was loaded"


def test_dora_cannot_train_over_float8_weights(make_spec):
    with pytest.raises(Exception, match=r"network.type dora.*float8"):
        make_spec(name="dora-fp8", model={"quantize": "float8"}, network={"type": "dora"})
