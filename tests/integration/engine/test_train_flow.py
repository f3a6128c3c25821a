"""FLUX.1 and SD3 LoRA training on the tiny models: files the real pipelines load, loss that falls."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch
from diffusers import DiffusionPipeline
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from lorapilot.engine import train
from lorapilot.engine.families import adapter_for
from lorapilot.engine.run_setup import prepare_run
from lorapilot.spec import SpecError, load_spec
from lorapilot.testing.datasets import write_demo_images
from lorapilot.testing.interruptions import SimulatedCrashError, crash_at

SEED = Path(__file__).parents[2] / "fixtures" / "seed"

FLOW_FAMILIES = ("flux-dev", "flux-schnell", "sd3")


def render(pipe, seed: int = 3):
    out = pipe(
        prompt="lpdemo, a red square",
        num_inference_steps=2,
        guidance_scale=3.5 if pipe.__class__.__name__ == "FluxPipeline" else 2.0,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return torch.from_numpy(out.images[0])


@pytest.mark.parametrize("family", FLOW_FAMILIES)
def test_flow_lora_loads_in_diffusers_and_changes_the_image(family, workspace, make_spec):
    spec = make_spec(family, name=f"flow-{family}", training={"max_steps": 20, "learning_rate": 5e-3})
    result = train(spec, workspace, show_progress=False)
    assert result.lora.is_file()

    pipe = DiffusionPipeline.from_pretrained(
        workspace.model_dir("diffusers") / f"tiny-{family}", dtype=torch.float32
    )
    pipe.set_progress_bar_config(disable=True)
    base = render(pipe)
    pipe.load_lora_weights(str(result.lora), adapter_name="trained")
    assert "trained" in pipe.get_list_adapters().get("transformer", []), "no adapter was loaded"
    with_lora = render(pipe)
    assert (with_lora - base).abs().max() > 1e-3, "the LoRA does not change the image"
    pipe.set_adapters(["trained"], adapter_weights=[0.0])
    assert torch.allclose(render(pipe), base, atol=1e-5), "scale 0 does not restore the base model"


def losses_of(result) -> list[float]:
    lines = (result.lora.parent / "_logs" / "metrics.jsonl").open()
    return [json.loads(line)["loss"] for line in lines]


@pytest.mark.parametrize("family", FLOW_FAMILIES)
def test_loss_falls_on_a_one_colour_dataset(family, make_spec, workspace):
    folder = workspace.images / "1_red"
    folder.mkdir(exist_ok=True)
    for i in range(4):
        Image.new("RGB", (64, 64), (220, 20, 30)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("red")
    spec = make_spec(
        family,
        name=f"red-{family}",
        network={"dim": 8, "alpha": 8},
        datasets=[{"folder": "red", "resolutions": [64], "bucket": {"enabled": False}}],
        training={"max_steps": 60, "batch_size": 4, "learning_rate": 5e-3},
    )
    losses = losses_of(train(spec, workspace, show_progress=False))
    assert len(losses) == 60
    first, last = statistics.mean(losses[:10]), statistics.mean(losses[-10:])
    assert last < 0.85 * first, f"loss did not fall: first 10 steps {first:.3f}, last 10 {last:.3f}"


def assert_same_lora(a_path, b_path):
    a, b = load_file(str(a_path)), load_file(str(b_path))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), atol=1e-6, rtol=1e-5, msg=key)


@pytest.mark.parametrize("family", FLOW_FAMILIES)
def test_a_run_killed_after_a_save_resumes_to_the_same_lora(family, make_spec, workspace):
    options = {
        "network": {"dim": 4, "alpha": 2, "dropout": 0.1},
        "datasets": [
            {"folder": "demo", "resolutions": [64], "bucket": {"enabled": False}, "caption_dropout": 0.3}
        ],
        "training": {"max_steps": 12, "noise_offset": 0.05, "optimizer": "adamw8bit"},
        "save": {"every_n_steps": 6},
    }
    options["training"]["optimizer_args"] = {"min_8bit_size": 0}
    straight = train(make_spec(family, name=f"straight-{family}", **options), workspace, show_progress=False)
    spec = make_spec(family, name=f"crashed-{family}", **options)
    with pytest.raises(SimulatedCrashError):
        train(spec, workspace, crash_at(9), show_progress=False)
    resumed = train(spec, workspace, show_progress=False)
    assert resumed.steps == 12
    assert_same_lora(straight.lora, resumed.lora)


def test_low_vram_unloads_the_text_encoders_after_caching_and_still_samples(make_spec, workspace):
    spec = make_spec(
        "flux-dev",
        name="lowvram",
        training={"max_steps": 4, "low_vram": True},
        sample={"every": 2, "prompts": ["[trigger] a red square"], "steps": 2},
        datasets=[
            {"folder": "demo", "resolutions": [64], "bucket": {"enabled": False}, "trigger_word": "lpdemo"}
        ],
    )
    family = adapter_for(spec.model.family)
    run = prepare_run(spec, workspace, family, torch.device("cpu"), show=False)
    for name in family.text_encoder_names():
        assert run.model[name] is None, f"{name} is still loaded after caching"
    assert "lpdemo a red square" in run.text or "lpdemo, a red square" in run.text
    assert next(run.model["vae"].parameters()).device.type == "cpu"

    result = train(spec, workspace, show_progress=False)
    samples = sorted((result.lora.parent / "samples").glob("*.png"))
    assert len(samples) == 2, samples  # step 2 and the end
    assert all(Image.open(p).size == (64, 64) for p in samples)


def test_block_swapping_trains_the_same_lora(make_spec, workspace):
    common = {"training": {"max_steps": 4, "gradient_checkpointing": True}}
    plain = train(make_spec("flux-dev", name="resident", **common), workspace, show_progress=False)
    swapped_spec = make_spec("flux-dev", name="swapped", training={"max_steps": 4, "blocks_to_swap": 2})
    swapped = train(swapped_spec, workspace, show_progress=False)
    assert_same_lora(plain.lora, swapped.lora)
    log = (swapped.lora.parent / "_logs" / "train.log").read_text()
    assert "block swapping: 2 blocks" in log


def test_the_guides_flux_block_trains_with_a_local_model(workspace):
    text = (SEED / "02_aitoolkit_flux.yaml").read_text()
    local = text.replace(
        '"black-forest-labs/FLUX.1-schnell"', '"/workspace/models/diffusers/tiny-flux-schnell"'
    )
    write_demo_images(workspace.images / "1_your_dataset", 3, size=(96, 96), caption="a photo")
    config = workspace.root / "flux.yaml"
    config.write_text(local)
    # As written, except what a CPU cannot do in a test: 3000 steps at 1024².
    overrides = ["training.max_steps=2", "datasets[0].resolutions=[64]", "model.weight_dtype=fp32"]
    spec = load_spec(config, workspace=workspace, overrides=overrides).spec
    result = train(spec, workspace, show_progress=False)
    assert (
        result.lora
        == workspace.outputs / "ai-toolkit" / "flux_lora_training" / "flux_lora_training.safetensors"
    )
    meta = safe_open(str(result.lora), "pt").metadata()
    assert meta["ss_base_model_version"] == "flux1"
    assert meta["ss_network_dim"] == "32" and meta["modelspec.trigger_phrase"] == "your_trigger_word"


def test_quantize_without_a_gpu_is_a_clear_error(make_spec, workspace):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the quantised runs are tested below")
    with pytest.raises(
        SpecError, match=r"model\.quantize: bitsandbytes quantises the weights on a CUDA GPU"
    ) as err:
        make_spec("flux-dev", name="nf4-cpu", model={"quantize": "nf4"}, training={"max_steps": 1})
    assert "quantize: float8" in str(err.value)  # the fix


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bitsandbytes quantises weights on CUDA only")
@pytest.mark.parametrize("family", ["flux-dev", "sd3"])
@pytest.mark.parametrize("quantize", ["nf4", "int8"])
def test_quantized_base_weights_train_and_sample(quantize, family, make_spec, workspace):
    spec = make_spec(
        family,
        name=f"{quantize}-{family}",
        model={"quantize": quantize, "weight_dtype": "bf16"},
        training={"max_steps": 4, "mixed_precision": "bf16", "optimizer": "adamw8bit"},
        sample={"every": 2, "prompts": ["lpdemo"], "steps": 2},
    )
    result = train(spec, workspace, show_progress=False)
    assert len(list((result.lora.parent / "samples").glob("*.png"))) == 2
    pipe = DiffusionPipeline.from_pretrained(workspace.model_dir("diffusers") / f"tiny-{family}")
    pipe.load_lora_weights(str(result.lora), adapter_name="q")
    assert "q" in pipe.get_list_adapters()["transformer"]
