"""Sample renders: per-prompt options, a render before the first step, renders per epoch, and
failed renders that warn instead of failing the run."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lorapilot.engine import train


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def sample_steps(result) -> list[int]:
    return sorted({int(p.name[4:12]) for p in (result.lora.parent / "samples").glob("step*.png")})


def test_each_prompt_renders_with_its_own_options_over_the_sections(make_spec, workspace):
    cat = "lpdemo, a cat"
    spec = make_spec(
        name="options",
        training={"max_steps": 1},
        sample={
            "every": 1,
            "seed": 42,
            "steps": 2,
            "guidance_scale": 5.0,
            "prompts": [
                cat,
                {"text": cat, "seed": 42},  # the seed prompt 0 gets from the section
                {"text": cat, "seed": 5},
                {"text": cat, "seed": 42, "negative_prompt": "blurry, dark"},
                {"text": cat, "seed": 42, "steps": 1},
                {"text": cat, "seed": 42, "guidance_scale": 1.0},
                {"text": cat, "width": 96, "height": 64},
            ],
        },
    )
    result = train(spec, workspace, show_progress=False)
    shots = [result.lora.parent / "samples" / f"step00000001_{k}.png" for k in range(7)]
    base = pixels(shots[0])
    assert (pixels(shots[1]) == base).all(), "the same seed renders the same image"
    for k, option in ((2, "seed"), (3, "negative_prompt"), (4, "steps"), (5, "guidance_scale")):
        assert (pixels(shots[k]) != base).any(), f"the prompt's own {option} was not used"
    assert Image.open(shots[0]).size == (64, 64)
    assert Image.open(shots[6]).size == (96, 64)


def test_at_start_renders_before_the_first_step_and_not_again_on_resume(make_spec, workspace):
    sample = {"at_start": True, "prompts": ["lpdemo, a cat"], "steps": 2, "width": 64, "height": 64}
    first = train(
        make_spec(name="first", training={"max_steps": 2}, sample=sample), workspace, show_progress=False
    )
    assert sample_steps(first) == [0]

    (first.lora.parent / "samples" / "step00000000_0.png").unlink()
    resumed = train(
        make_spec(name="first", training={"max_steps": 4}, sample=sample), workspace, show_progress=False
    )
    assert resumed.steps == 4
    assert sample_steps(resumed) == [], "a resumed run rendered its start samples again"


def test_every_n_epochs_renders_after_each_nth_epoch(make_spec, workspace):
    # 6 images × 2 repeats in batches of 2: 6 steps per epoch, 3 epochs.
    spec = make_spec(
        name="epochs",
        training={"max_steps": None, "epochs": 3},
        sample={"every_n_epochs": 2, "prompts": ["lpdemo, a cat"], "steps": 1, "width": 64, "height": 64},
    )
    result = train(spec, workspace, show_progress=False)
    assert result.steps == 18
    assert sample_steps(result) == [12, 18]  # after epoch 2, and the final render


def test_a_failing_render_after_the_final_lora_is_a_warning(make_spec, workspace):
    spec = make_spec(
        name="late-fail",
        training={"max_steps": 2},
        sample={"every": 2, "prompts": ["lpdemo, a cat"], "steps": 1, "width": 64, "height": 64},
    )
    blocked = workspace.outputs / "late-fail" / "samples" / "step00000002_0.png"
    blocked.mkdir(parents=True)  # a folder where the render goes: writing it fails
    result = train(spec, workspace, show_progress=False)

    assert result.lora.is_file() and result.steps == 2
    assert len(result.warnings) == 1 and "sample render at step 2 failed" in result.warnings[0]
    log = (result.lora.parent / "_logs" / "train.log").read_text()
    assert "sample render at step 2 failed" in log and "the LoRA is written" in log


def test_a_failing_render_during_the_run_is_a_warning_and_training_continues(make_spec, workspace):
    spec = make_spec(
        name="mid-fail",
        training={"max_steps": 4},
        sample={"every": 2, "prompts": ["lpdemo, a cat"], "steps": 1, "width": 64, "height": 64},
    )
    (workspace.outputs / "mid-fail" / "samples" / "step00000002_0.png").mkdir(parents=True)
    result = train(spec, workspace, show_progress=False)

    assert result.steps == 4 and result.lora.is_file()
    assert (result.lora.parent / "samples" / "step00000004_0.png").is_file()
    assert [w.split(":")[0] for w in result.warnings] == ["sample render at step 2 failed"]
    assert "training continues" in (result.lora.parent / "_logs" / "train.log").read_text()
