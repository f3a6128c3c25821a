"""model.assistant_lora (ai-toolkit's assistant_lora_path): merged into the base while training, left
out of the samples and of the saved LoRA."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from PIL import Image
from safetensors.torch import load_file

from lorapilot.engine import train
from lorapilot.engine.families.loading import ModelLoadError

SAMPLE = {"at_start": True, "prompts": ["lpdemo, a cat"], "steps": 2, "width": 64, "height": 64}


def first_loss(result) -> float:
    with (result.lora.parent / "_logs" / "metrics.jsonl").open() as lines:
        return json.loads(next(lines))["loss"]


def start_sample(result) -> np.ndarray:
    return np.asarray(Image.open(result.lora.parent / "samples" / "step00000000_0.png"), dtype=np.int16)


def render(pipe) -> np.ndarray:
    out = pipe(
        prompt="lpdemo, a cat",
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    return (out.images[0] * 255).round().astype(np.int16)


# FLUX LoRAs are written in diffusers' layout, SD1.5 ones in kohya's: both are read.
@pytest.mark.parametrize("family", ["flux-schnell", "sd15"])
def test_an_assistant_lora_trains_with_the_base_but_stays_out_of_samples_and_the_lora(
    family, make_spec, workspace
):
    helper = train(
        make_spec(family, name=f"helper-{family}", training={"max_steps": 3, "learning_rate": 5e-2}),
        workspace,
        show_progress=False,
    )
    assistant = workspace.model_dir("loras") / f"assistant-{family}.safetensors"
    shutil.copyfile(helper.lora, assistant)

    plain = train(
        make_spec(family, name=f"plain-{family}", training={"max_steps": 2}, sample=SAMPLE),
        workspace,
        show_progress=False,
    )
    assisted = train(
        make_spec(
            family,
            name=f"assisted-{family}",
            model={"assistant_lora": f"/workspace/models/loras/{assistant.name}"},
            training={"max_steps": 2},
            sample=SAMPLE,
        ),
        workspace,
        show_progress=False,
    )

    assert first_loss(assisted) != pytest.approx(first_loss(plain), rel=1e-4), "the assistant was not merged"
    assert set(load_file(assisted.lora)) == set(load_file(plain.lora))
    # Before the first step the trained LoRA is a no-op: both start samples are the base model's.
    assert np.abs(start_sample(assisted) - start_sample(plain)).max() <= 2

    pipe = DiffusionPipeline.from_pretrained(workspace.model_dir("diffusers") / f"tiny-{family}")
    pipe.set_progress_bar_config(disable=True)
    base = render(pipe)
    pipe.load_lora_weights(str(assistant))
    assert np.abs(render(pipe) - base).max() > 2, "the assistant is too weak to show in a render"


def test_a_file_that_is_no_lora_of_the_model_is_a_clear_error(make_spec, workspace):
    sd15 = train(
        make_spec("sd15", name="sd15-lora", training={"max_steps": 1}), workspace, show_progress=False
    )
    spec = make_spec(
        "flux-schnell",
        name="wrong-assistant",
        model={"assistant_lora": str(sd15.lora)},
        training={"max_steps": 1},
    )
    with pytest.raises(ModelLoadError, match=r"model\.assistant_lora"):
        train(spec, workspace, show_progress=False)
