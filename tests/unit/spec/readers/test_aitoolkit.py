"""ai-toolkit jobs validate to what ai-toolkit itself would train and render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lorapilot.spec.draft import Draft
from lorapilot.spec.readers import aitoolkit

SD15 = "/workspace/models/stable-diffusion-v1-5"
SCHNELL = "/workspace/models/diffusers/FLUX.1-schnell"


def _job(process: dict[str, Any]) -> dict[str, Any]:
    base = {
        "type": "sd_trainer",
        "datasets": [{"folder_path": "/workspace/datasets/images/2_concept_b", "resolution": [512]}],
        "model": {"name_or_path": SD15, "arch": "sd1"},
        "train": {"lr": 1e-4, "steps": 10},
    }
    return {"job": "extension", "config": {"name": "aitk_case", "process": [{**base, **process}]}}


def _validate(validate, workspace, tmp_path: Path, process: dict[str, Any]):
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(_job(process)))
    return validate(config, workspace=workspace)


def _read(process: dict[str, Any]) -> Draft:
    """The job as read, with ai-toolkit's defaults filled in where it leaves keys out."""
    draft = Draft(file="job.yaml")
    aitoolkit.read(_job(process), draft)
    return draft.with_defaults()


def test_a_repeats_named_folder_keeps_num_repeats(validate, guide_workspace, tmp_path):
    dataset = _validate(validate, guide_workspace, tmp_path, {}).spec["datasets"][0]
    assert Path(dataset["folder"]).name == "2_concept_b"
    assert (dataset["repeats"], dataset["class_tokens"]) == (1, None)  # ai-toolkit ignores "2_"


def test_num_repeats_is_read_as_written(validate, guide_workspace, tmp_path):
    datasets = [{"folder_path": "/workspace/datasets/images/2_concept_b", "num_repeats": 3}]
    spec = _validate(validate, guide_workspace, tmp_path, {"datasets": datasets}).spec
    assert spec["datasets"][0]["repeats"] == 3


def test_ui_samples_become_prompts_with_their_own_options(validate, guide_workspace, tmp_path):
    sample = {
        "sample_every": 250,
        "seed": 42,
        "walk_seed": True,
        "samples": [
            {"prompt": "a photo of [trigger]"},
            {"prompt": "a bear", "width": 768, "height": 512, "neg": "blurry", "seed": 7, "sample_steps": 9},
        ],
    }
    result = _validate(validate, guide_workspace, tmp_path, {"sample": sample})
    spec = result.spec["sample"]
    assert spec["prompts"] == [
        {"text": "a photo of [trigger]", "seed": 42},
        {"text": "a bear", "negative_prompt": "blurry", "width": 768, "height": 512, "steps": 9, "seed": 7},
    ]
    assert spec["at_start"] is True  # ai-toolkit renders a baseline before the first step
    assert "no prompts" not in result.err


def test_inline_prompt_flags_are_options_of_that_prompt():
    draft = _read({"sample": {"prompts": ["a cat --n blurry, dark --w 768 --seed 5 --m 1.0"]}})
    assert draft.get(("sample", "prompts")) == [
        {"text": "a cat", "negative_prompt": "blurry, dark", "width": 768, "seed": 5}
    ]
    assert draft.issues == []


@pytest.mark.parametrize(
    ("train", "at_start", "every"),
    [({}, True, 100), ({"skip_first_sample": True}, False, 100), ({"disable_sampling": True}, False, 0)],
)
def test_baseline_sample_follows_skip_and_disable(train, at_start, every):
    draft = _read({"train": {"lr": 1e-4, **train}, "sample": {"prompts": ["a cat"]}})
    assert bool(draft.get(("sample", "at_start"))) is at_start
    assert draft.get(("sample", "every")) == every  # ai-toolkit's sample_every default is 100


@pytest.mark.parametrize(
    ("model", "quantize", "notice"),
    [
        ({"quantize": True}, "float8", None),
        ({"quantize": True, "qtype": "qfloat8"}, "float8", None),
        ({"quantize": True, "qtype": "qint8"}, "int8", "bitsandbytes int8"),
        ({"quantize": True, "qtype": "uint4"}, "nf4", "bitsandbytes nf4"),
        ({"quantize": False, "qtype": "qfloat8"}, None, "applies only with quantize"),
    ],
)
def test_quantize_follows_qtype(model, quantize, notice):
    draft = _read({"model": {"name_or_path": SCHNELL, "arch": "flux", **model}})
    assert draft.get(("model", "quantize")) == quantize
    assert draft.issues == []
    if notice:
        assert any(notice in n.message for n in draft.notices)


def test_a_qtype_without_equivalent_is_refused_by_name():
    draft = _read({"model": {"name_or_path": SCHNELL, "arch": "flux", "quantize": True, "qtype": "uint3"}})
    assert [(i.field, i.value) for i in draft.issues] == [("config.process[0].model.qtype", "uint3")]


def test_assistant_lora_path_is_the_models_assistant_lora():
    path = "/workspace/models/loras/FLUX.1-schnell-training-adapter.safetensors"
    draft = _read({"model": {"name_or_path": SCHNELL, "arch": "flux", "assistant_lora_path": path}})
    assert draft.get(("model", "assistant_lora")) == path


def test_a_whole_job_takes_ai_toolkits_defaults_for_what_it_leaves_out(validate, guide_workspace, tmp_path):
    process = {
        "datasets": [{"folder_path": "/workspace/datasets/images/1_my_dataset"}],
        "train": {"steps": 10},
        "network": {"type": "lora", "linear": 8},
        "sample": {"prompts": ["a cat"]},
    }
    result = _validate(validate, guide_workspace, tmp_path, process)
    spec = result.spec
    training = spec["training"]
    assert (training["learning_rate"], training["optimizer"], training["gradient_checkpointing"]) == (
        1e-6,
        "adamw",
        True,
    )
    assert spec["datasets"][0]["resolutions"] == [512]
    assert spec["network"]["alpha"] == 1.0  # linear_alpha defaults to alpha, which defaults to 1
    assert (spec["save"]["every_n_steps"], spec["save"]["keep_last"]) == (1000, 5)
    assert (spec["sample"]["every"], spec["sample"]["width"], spec["sample"]["seed"]) == (100, 512, 0)
    assert "ai-toolkit trains in fp32 by default" in result.err


def test_neutral_values_pass_and_real_ones_are_refused_by_name(validate, guide_workspace, tmp_path):
    neutral = {
        "train": {"lr": 1e-4, "content_or_style": "balanced", "bypass_guidance_embedding": False},
        "datasets": [
            {"folder_path": "/workspace/datasets/images/1_my_dataset", "flip_y": False, "mask_path": None}
        ],
        "network": {"linear": 4, "linear_alpha": 4, "network_kwargs": {"ignore_if_contains": []}},
    }
    assert _validate(validate, guide_workspace, tmp_path, neutral).rc == 0
    changed = {
        "train": {"lr": 1e-4, "content_or_style": "style", "unload_text_encoder": True},
        "datasets": [{"folder_path": "/workspace/datasets/images/1_my_dataset", "flip_y": True}],
    }
    result = _validate(validate, guide_workspace, tmp_path, changed)
    assert result.rc == 2
    for field in ("train.content_or_style", "train.unload_text_encoder", "datasets[0].flip_y"):
        assert f"{field}: not supported by LoRA Pilot" in result.err, field


def test_v_prediction_and_timestep_range_are_honoured():
    draft = _read(
        {
            "model": {"name_or_path": SD15, "arch": "sd1", "is_v_pred": True},
            "train": {"lr": 1e-4, "min_denoising_steps": 100, "max_denoising_steps": 999},
        }
    )
    assert draft.get(("model", "v_parameterization")) is True
    assert draft.get(("training", "min_timestep")) == 100
    assert draft.get(("training", "max_timestep")) is None  # 999 is ai-toolkit's default


def test_the_uis_conv_rank_is_dropped_on_a_transformer_model(validate, guide_workspace, tmp_path):
    process = {
        "model": {"name_or_path": SCHNELL, "arch": "flux"},
        "network": {"type": "lora", "linear": 4, "linear_alpha": 4, "conv": 16, "conv_alpha": 16},
        "sqlite_db_path": "./aitk_db.db",
    }
    result = _validate(validate, guide_workspace, tmp_path, process)
    network = result.spec["network"]
    assert (network["type"], network["conv_dim"]) == ("lora", None)
    assert "no conv layers" in result.err and "sqlite_db_path: ignored" in result.err


def test_a_flow_model_job_samples_timesteps_as_ai_toolkit_does():
    draft = _read({"model": {"name_or_path": SCHNELL, "arch": "flux"}})
    assert draft.get(("training", "timestep_sampling")) == "sigmoid"  # TrainConfig.timestep_type
    written = _read(
        {"model": {"name_or_path": SCHNELL, "arch": "flux"}, "train": {"timestep_type": "linear"}}
    )
    assert written.get(("training", "timestep_sampling")) == "uniform"


def test_a_profile_under_the_job_wins_over_ai_toolkits_defaults(validate, guide_workspace, tmp_path):
    process = {
        "train": {"steps": 10},
        "datasets": [{"folder_path": "/workspace/datasets/images/1_my_dataset"}],
    }
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(_job(process)))
    spec = validate(config, "--profile", "quick_test", workspace=guide_workspace).spec
    assert (spec["save"]["every_n_steps"], spec["training"]["learning_rate"]) == (50, 1e-4)  # quick_test's
    assert spec["datasets"][0]["resolutions"] == [1024]
    assert spec["training"]["max_steps"] == 10  # what the job says wins over the profile
