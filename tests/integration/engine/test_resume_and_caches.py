"""Crash-and-resume gives the uninterrupted result; caches make repeated work disappear."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from lorapilot.engine import StopTraining, train
from lorapilot.engine.checkpoint import load_state
from lorapilot.testing.datasets import write_demo_images
from lorapilot.testing.interruptions import SimulatedCrashError, crash_at

# Options that consume every random stream: LoRA dropout (torch), caption shuffle/dropout and flips
# (data order and augmentation), noise offset (noise generator).
STOCHASTIC = {
    "network": {"dim": 4, "alpha": 4, "dropout": 0.1},
    "datasets": [
        {
            "folder": "demo",
            "resolutions": [64],
            "bucket": {"enabled": False},
            "flip": True,
            "shuffle_caption": True,
            "keep_tokens": 1,
            "caption_dropout": 0.2,
        }
    ],
    "training": {"max_steps": 16, "noise_offset": 0.1},
    "save": {"every_n_steps": 8},
}


@pytest.mark.parametrize(("optimizer", "args"), [("adamw", {}), ("adamw8bit", {"min_8bit_size": 0})])
def test_a_run_killed_after_a_save_resumes_to_the_same_lora(optimizer, args, make_spec, workspace):
    options = {
        **STOCHASTIC,
        "training": {**STOCHASTIC["training"], "optimizer": optimizer, "optimizer_args": args},
    }
    straight = train(make_spec(name="straight", **options), workspace, show_progress=False)
    spec = make_spec(name="crashed", **options)
    with pytest.raises(SimulatedCrashError):
        train(spec, workspace, crash_at(11), show_progress=False)
    resumed = train(spec, workspace, show_progress=False)
    assert resumed.steps == 16
    a, b = load_file(str(straight.lora)), load_file(str(resumed.lora))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), atol=1e-6, rtol=1e-5, msg=key)
    steps = [json.loads(line)["step"] for line in (resumed.lora.parent / "_logs" / "metrics.jsonl").open()]
    assert steps == list(range(1, 17)), "the resumed run's metrics must continue, not repeat"


def test_a_stop_request_saves_and_the_next_run_finishes_the_job(make_spec, workspace):
    spec = make_spec(name="stopped", training={"max_steps": 6})

    def stop_at_4(progress):
        if progress.step == 4:
            raise StopTraining("cancelled by the user")

    stopped = train(spec, workspace, stop_at_4, show_progress=False)
    assert stopped.interrupted and stopped.steps == 4
    assert stopped.lora.name == "stopped-step00000004.safetensors" and stopped.lora.is_file()
    assert not (stopped.lora.parent / "stopped.safetensors").exists()  # not mistaken for a finished run
    finished = train(spec, workspace, show_progress=False)
    assert not finished.interrupted and finished.steps == 6 and finished.lora.name == "stopped.safetensors"


def test_restart_ignores_saved_state(make_spec, workspace):
    spec = make_spec(name="again", training={"max_steps": 4}, save={"every_n_steps": 2})
    with pytest.raises(SimulatedCrashError):
        train(spec, workspace, crash_at(3), show_progress=False)
    assert train(spec, workspace, resume=False, show_progress=False).steps == 4


def test_second_run_encodes_nothing_and_a_changed_image_is_encoded_again(make_spec, workspace):
    options = {"training": {"max_steps": 2, "cache_text_encoder_outputs": True}}
    first = train(make_spec(name="first", **options), workspace, show_progress=False)
    assert first.stats["vae_encodes"] == 6 and first.stats["text_encodes"] > 0
    second = train(make_spec(name="second", **options), workspace, show_progress=False)
    assert (second.stats["vae_encodes"], second.stats["text_encodes"]) == (0, 0)
    changed = sorted((workspace.images / "2_demo").glob("*.png"))[3]
    Image.new("RGB", (80, 64), (10, 200, 30)).save(changed)
    third = train(make_spec(name="third", **options), workspace, show_progress=False)
    assert third.stats["vae_encodes"] == 1


def test_flipped_images_are_cached_as_their_own_latents(make_spec, workspace):
    write_demo_images(workspace.images / "1_flip", 3, size=(64, 64), seed=5)
    spec = make_spec(
        name="flip",
        datasets=[{"folder": "flip", "resolutions": [64], "flip": True, "bucket": {"enabled": False}}],
        training={"max_steps": 1},
    )
    assert train(spec, workspace, show_progress=False).stats["vae_encodes"] == 6


def test_a_stop_request_between_logged_steps_is_honoured_at_the_next_step(make_spec, workspace):
    spec = make_spec(name="long", training={"max_steps": 250})  # long runs log every 10th step
    seen = []

    def stop_at_13(progress):
        seen.append(progress.step)
        if progress.step == 13:
            raise StopTraining("cancelled by the user")

    stopped = train(spec, workspace, stop_at_13, show_progress=False)
    assert stopped.interrupted and stopped.steps == 13
    assert stopped.lora.name == "long-step00000013.safetensors"
    assert seen == list(range(10, 14)), "every step after the first logged one reports progress"
    assert load_state(stopped.lora.parent / "state").step == 13
