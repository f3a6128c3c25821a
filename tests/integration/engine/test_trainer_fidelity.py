"""Data and optimisation options trained with the source trainers' semantics, in short real runs."""

from __future__ import annotations

import json

import numpy as np
from diffusers import DiffusionPipeline
from safetensors import safe_open

from lorapilot.engine import train
from lorapilot.testing.datasets import write_demo_images


def tensors_and_meta(path):
    with safe_open(str(path), "pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata()  # noqa: SIM118


def up_norm(tensors) -> float:
    return float(
        sum(t.float().norm() ** 2 for k, t in tensors.items() if k.endswith("lora_up.weight")) ** 0.5
    )


def test_loraplus_up_matrices_learn_at_ratio_times_the_lr_and_the_lora_loads_in_diffusers(
    make_spec, workspace
):
    training = {"max_steps": 4, "max_grad_norm": 0}
    plain = train(make_spec(name="plain", training=training), workspace, show_progress=False)
    plus_spec = make_spec(name="plus", training={**training, "loraplus_lr_ratio": 16})
    plus = train(plus_spec, workspace, show_progress=False)
    plain_tensors, _ = tensors_and_meta(plain.lora)
    plus_tensors, meta = tensors_and_meta(plus.lora)
    # up (B) starts at zero and Adam steps scale with the LR: 16× the LR moves it about 16× as far
    assert up_norm(plus_tensors) > 8 * up_norm(plain_tensors) > 0
    assert json.loads(meta["ss_network_args"]) == {"loraplus_lr_ratio": "16.0"}

    pipe = DiffusionPipeline.from_pretrained(workspace.model_dir("diffusers") / "tiny-sd15")
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(plus.lora), adapter_name="plus")
    image = pipe("lpdemo", num_inference_steps=2, width=64, height=64, output_type="np").images[0]
    assert np.isfinite(image).all()


def test_two_datasets_with_batch_sizes_2_and_3_train_in_batches_of_2_and_of_3(make_spec, workspace):
    write_demo_images(workspace.images / "pairs", 6, size=(64, 64), seed=1)
    write_demo_images(workspace.images / "triples", 6, size=(64, 64), seed=2)
    datasets = [
        {"folder": "pairs", "resolutions": [64], "bucket": {"enabled": False}, "batch_size": 2},
        {"folder": "triples", "resolutions": [64], "bucket": {"enabled": False}, "batch_size": 3},
    ]
    spec = make_spec(name="per-dataset", datasets=datasets, training={"max_steps": None, "epochs": 2})
    result = train(spec, workspace, show_progress=False)
    meta = tensors_and_meta(result.lora)[1]
    # 6 / 2 + 6 / 3 = 5 batches an epoch; one batch size of 2 for both would make 6
    assert (meta["ss_num_batches_per_epoch"], result.steps) == ("5", 10)
    assert [d["batch_size_per_device"] for d in json.loads(meta["ss_datasets"])] == [2, 3]


def test_balanced_regularization_trains_as_many_reg_as_train_images_and_keeps_kohyas_counts(
    make_spec, workspace
):
    write_demo_images(workspace.images / "four", 4, size=(64, 64), seed=1)
    write_demo_images(workspace.reg / "two", 2, size=(64, 64), seed=2, caption="a shape")
    datasets = [
        {"folder": "four", "repeats": 10, "resolutions": [64], "bucket": {"enabled": False}},
        {"folder": "two", "is_reg": True, "resolutions": [64], "bucket": {"enabled": False}},
    ]
    training = {"max_steps": None, "epochs": 1, "batch_size": 8, "balance_reg": True}
    result = train(
        make_spec(name="balanced", datasets=datasets, training=training), workspace, show_progress=False
    )
    meta = tensors_and_meta(result.lora)[1]
    # 40 train + 40 reg items (the 2 reg images 20 times each) at batch 8: 10 batches
    assert (meta["ss_num_batches_per_epoch"], result.steps) == ("10", 10)
    # kohya's metadata counts the reg images as found, before balancing
    assert (meta["ss_num_train_images"], meta["ss_num_reg_images"]) == ("40", "2")
    assert json.loads(meta["ss_reg_dataset_dirs"]) == {"two": {"n_repeats": 1, "img_count": 2}}


def test_max_steps_with_epochs_ends_at_whichever_comes_first(make_spec, workspace):
    # the demo dataset: 6 images × 2 repeats at batch 2 = 6 steps an epoch
    by_steps = train(
        make_spec(name="steps-first", training={"max_steps": 4, "epochs": 2}), workspace, show_progress=False
    )
    by_epochs = train(
        make_spec(name="epochs-first", training={"max_steps": 100, "epochs": 1}),
        workspace,
        show_progress=False,
    )
    steps_meta, epochs_meta = tensors_and_meta(by_steps.lora)[1], tensors_and_meta(by_epochs.lora)[1]
    assert (by_steps.steps, steps_meta["ss_max_train_steps"], steps_meta["ss_num_epochs"]) == (4, "4", "1")
    assert (by_epochs.steps, epochs_meta["ss_max_train_steps"], epochs_meta["ss_num_epochs"]) == (6, "6", "1")
