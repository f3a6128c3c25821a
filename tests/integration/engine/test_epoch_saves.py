"""`save.every_n_epochs`: a LoRA at the end of every N-th epoch, named as kohya-ss names it.

The tiny dataset is 6 images × 2 repeats = 12 items; with batch_size 4 an epoch is 3 steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from safetensors import safe_open
from safetensors.torch import load_file

from lorapilot.engine import StopTraining, train
from lorapilot.spec import load_spec
from lorapilot.testing.interruptions import SimulatedCrashError, crash_at

EPOCH_OF_3_STEPS = {"max_steps": None, "batch_size": 4}


def render(pipe: DiffusionPipeline) -> np.ndarray:
    generator = torch.Generator().manual_seed(7)
    return pipe(
        "lpdemo", num_inference_steps=2, width=64, height=64, generator=generator, output_type="np"
    ).images[0]


def metadata(path):
    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


def saves(result, pattern: str) -> list[str]:
    return sorted(p.name for p in result.lora.parent.glob(pattern))


def same_tensors(a, b) -> bool:
    left, right = load_file(str(a)), load_file(str(b))
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_every_nth_epoch_ends_with_a_lora_named_like_kohyas(make_spec, workspace):
    spec = make_spec(
        name="ep",
        training={**EPOCH_OF_3_STEPS, "epochs": 5},
        save={"every_n_epochs": 2},
    )
    result = train(spec, workspace, show_progress=False)
    assert result.steps == 15
    assert saves(result, "ep-*.safetensors") == ["ep-000002.safetensors", "ep-000004.safetensors"]
    for epoch in (2, 4):
        meta = metadata(result.lora.parent / f"ep-{epoch:06d}.safetensors")
        assert (meta["ss_epoch"], meta["ss_steps"]) == (str(epoch), str(3 * epoch))
        assert meta["ss_num_epochs"] == "5"

    pipe = DiffusionPipeline.from_pretrained(workspace.model_dir("diffusers") / "tiny-sd15")
    pipe.set_progress_bar_config(disable=True)
    base = render(pipe)
    for epoch in (2, 4):
        save = result.lora.parent / f"ep-{epoch:06d}.safetensors"
        pipe.load_lora_weights(str(save))
        assert np.abs(render(pipe) - base).mean() > 1e-4, f"epoch {epoch}'s LoRA did not change the image"
        pipe.unload_lora_weights()


def test_an_epoch_that_ends_inside_an_accumulated_step_is_saved_after_that_step(make_spec, workspace):
    # batch_size 2: 6 batches an epoch; 4 batches a step, so the epochs end in steps 2, 3, 5 and 6.
    spec = make_spec(
        name="accum",
        training={"max_steps": None, "epochs": 3, "gradient_accumulation_steps": 4},
        save={"every_n_epochs": 1},
    )
    result = train(spec, workspace, show_progress=False)
    assert result.steps == 6
    found = {name: metadata(result.lora.parent / name) for name in saves(result, "accum-0*.safetensors")}
    steps = {name: (meta["ss_epoch"], meta["ss_steps"]) for name, meta in found.items()}
    assert steps == {
        "accum-000001.safetensors": ("1", "2"),
        "accum-000002.safetensors": ("2", "3"),
        "accum-000003.safetensors": ("3", "5"),
    }, "epoch 4 ends in the last step, whose LoRA is the final one"


def test_keep_last_prunes_epoch_and_step_saves_each_on_their_own(make_spec, workspace):
    spec = make_spec(
        name="both",
        training={**EPOCH_OF_3_STEPS, "epochs": 4},
        save={"every_n_epochs": 1, "every_n_steps": 2, "keep_last": 2},
    )
    result = train(spec, workspace, show_progress=False)
    assert saves(result, "both-0*.safetensors") == ["both-000002.safetensors", "both-000003.safetensors"]
    assert saves(result, "both-step*.safetensors") == [
        "both-step00000008.safetensors",
        "both-step00000010.safetensors",
    ]


def test_a_run_stopped_as_an_epoch_ends_keeps_that_epochs_save_and_resumes_without_redoing_it(
    make_spec, workspace
):
    options = {"training": {**EPOCH_OF_3_STEPS, "epochs": 4}, "save": {"every_n_epochs": 1}}
    straight = train(make_spec(name="straight", **options), workspace, show_progress=False)
    spec = make_spec(name="stopped", **options)

    def stop_at_3(progress):
        if progress.step == 3:
            raise StopTraining("cancelled by the user")

    stopped = train(spec, workspace, stop_at_3, show_progress=False)
    first = stopped.lora.parent / "stopped-000001.safetensors"
    assert stopped.interrupted and first.is_file()
    written = first.stat().st_mtime_ns
    resumed = train(spec, workspace, show_progress=False)
    assert resumed.steps == 12 and first.stat().st_mtime_ns == written, "epoch 1 was saved again"
    assert saves(resumed, "stopped-0*.safetensors") == [f"stopped-00000{e}.safetensors" for e in (1, 2, 3)]
    for epoch in (1, 2, 3):
        name = f"-{epoch:06d}.safetensors"
        assert same_tensors(straight.lora.parent / f"straight{name}", resumed.lora.parent / f"stopped{name}")
    assert same_tensors(straight.lora, resumed.lora)


def test_a_run_that_crashed_after_an_epoch_save_resumes_and_saves_the_next_epochs_once(make_spec, workspace):
    spec = make_spec(name="crashed", training={**EPOCH_OF_3_STEPS, "epochs": 4}, save={"every_n_epochs": 1})
    with pytest.raises(SimulatedCrashError):
        train(spec, workspace, crash_at(5), show_progress=False)
    folder = workspace.outputs / "crashed"
    assert sorted(p.name for p in folder.glob("crashed-*.safetensors")) == ["crashed-000001.safetensors"]
    written = (folder / "crashed-000001.safetensors").stat().st_mtime_ns
    resumed = train(spec, workspace, show_progress=False)
    assert resumed.steps == 12
    assert saves(resumed, "crashed-0*.safetensors") == [f"crashed-00000{e}.safetensors" for e in (1, 2, 3)]
    assert (folder / "crashed-000001.safetensors").stat().st_mtime_ns == written


def test_a_kohya_toml_with_save_every_n_epochs_gets_its_epoch_saves(workspace):
    config = workspace.root / "kohya_epochs.toml"
    config.write_text(
        """
pretrained_model_name_or_path = "/workspace/models/diffusers/tiny-sd15"
network_module = "networks.lora"
network_dim = 4
network_alpha = 4
optimizer_type = "AdamW"
learning_rate = 1e-3
train_data_dir = "/workspace/datasets/images"
resolution = "64,64"
enable_bucket = false
train_batch_size = 4
max_train_epochs = 8
mixed_precision = "no"
save_precision = "fp16"
output_dir = "/workspace/outputs/kohya_epochs"
output_name = "kohya_epochs"
save_every_n_epochs = 2
save_last_n_epochs = 2
"""
    )
    spec = load_spec(config, workspace=workspace).spec
    assert (spec.save.every_n_epochs, spec.save.keep_last, spec.model.family) == (2, 2, "sd15")
    result = train(spec, workspace, show_progress=False)
    assert result.steps == 24
    assert saves(result, "kohya_epochs*.safetensors") == [
        "kohya_epochs-000004.safetensors",
        "kohya_epochs-000006.safetensors",
        "kohya_epochs.safetensors",
    ], "epochs 2, 4 and 6 are saved and the last two kept, as kohya does; epoch 8 is the final LoRA"
    assert metadata(result.lora.parent / "kohya_epochs-000006.safetensors")["ss_epoch"] == "6"
