"""Real configs of each trainer validate, and the normalised spec carries what they say."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from lorapilot.testing.tiny_models import single_file_path

CONFIGS = Path(__file__).resolve().parents[2] / "fixtures" / "configs"


def test_kohya_args_toml_with_dataset_config_of_two_subsets(validate, guide_workspace):
    result = validate(CONFIGS / "kohya_args.toml", workspace=guide_workspace)
    spec = result.spec
    assert spec["model"] == {**spec["model"], "family": "sdxl", "source": "folder"}
    assert spec["network"] == {
        **spec["network"],
        "type": "locon",
        "dim": 8,
        "alpha": 4.0,
        "conv_dim": 4,
        "conv_alpha": 2.0,
        "train_text_encoder": False,
    }
    training = spec["training"]
    assert training["optimizer"] == "adamw8bit"
    assert training["optimizer_args"] == {"weight_decay": 0.01, "betas": [0.9, 0.99]}
    assert (training["learning_rate"], training["unet_lr"]) == (2e-4, 2e-4)
    assert (training["lr_scheduler"], training["lr_cycles"], training["warmup_steps"]) == (
        "cosine_with_restarts",
        3,
        20,
    )
    assert (training["max_steps"], training["batch_size"], training["seed"]) == (400, 1, 1234)
    assert (training["noise_offset"], training["min_snr_gamma"], training["attention"]) == (0.05, 5.0, "sdpa")
    assert spec["save"]["every_n_steps"] == 50 and spec["save"]["keep_last"] == 3
    assert spec["save"]["dtype"] == "bf16"
    assert spec["sample"]["every"] == 100
    assert spec["sample"]["prompts"] == [
        {
            "text": "sks person on a beach",
            "negative_prompt": "blurry",
            "width": 768,
            "height": 768,
            "seed": 1,
        },
        {"text": "portrait of sks person, studio light", "guidance_scale": 6.5},
    ]
    assert spec["output"] == {"name": "kohya_run", "folder": str(guide_workspace.outputs / "kohya_run")}

    train, reg = spec["datasets"]
    assert Path(train["folder"]).name == "1_my_dataset" and Path(reg["folder"]).name == "1_person"
    assert (train["repeats"], train["class_tokens"], train["is_reg"]) == (10, "sks person", False)
    assert (reg["repeats"], reg["class_tokens"], reg["is_reg"]) == (1, "person", True)
    assert train["resolutions"] == reg["resolutions"] == [768]
    assert train["batch_size"] == reg["batch_size"] == 2  # the dataset's own batch size, as in sd-scripts
    assert training["balance_reg"] is True
    assert train["bucket"] == {
        "enabled": True,
        "min_resolution": 384,
        "max_resolution": 1024,
        "step": 64,
        "no_upscale": False,
    }
    assert (train["shuffle_caption"], train["keep_tokens"], reg["keep_tokens"]) == (True, 1, 0)
    assert (train["caption_dropout"], train["flip"], reg["flip"]) == (0.1, True, False)
    assert train["caption_extension"] == reg["caption_extension"] == ".txt"
    for ignored in (
        "logging_dir",
        "log_with",
        "max_data_loader_n_workers",
        "save_model_as",
        "sample_sampler",
    ):
        assert f"{ignored}: ignored" in result.err


def test_kohya_dataset_toml_alone_defaults_to_caption_files(validate, guide_workspace, tmp_path):
    config = tmp_path / "ds.toml"
    config.write_text(
        '[[datasets]]\n[[datasets.subsets]]\nimage_dir = "/workspace/datasets/images/1_my_dataset"\n'
    )
    spec = validate(config, "--profile", "quick_test", workspace=guide_workspace).spec
    assert spec["datasets"][0]["caption_extension"] == ".caption"  # kohya's default for dataset configs
    assert spec["datasets"][0]["repeats"] == 1


def test_kohya_flat_args_keep_kohyas_alpha_default(validate, guide_workspace, tmp_path):
    config = tmp_path / "flat.toml"
    config.write_text(
        'pretrained_model_name_or_path = "/workspace/models/stable-diffusion-v1-5"\n'
        'train_data_dir = "/workspace/datasets/images"\nnetwork_dim = 16\nmax_train_epochs = 3\n'
    )
    result = validate(config, workspace=guide_workspace)
    spec = result.spec
    assert spec["network"]["alpha"] == 1.0
    assert "kohya's default of 1" in result.err
    assert spec["training"]["epochs"] == 3 and spec["training"]["max_steps"] is None
    # train_data_dir follows kohya's <repeats>_<name> convention: one dataset per sub-folder.
    names = {Path(d["folder"]).name: d["repeats"] for d in spec["datasets"]}
    assert names["2_concept_b"] == 2 and names["3_concept_c"] == 3 and len(names) == 7


def test_kohya_save_last_n_epochs_counts_saves_and_save_last_n_steps_counts_steps(
    validate, guide_workspace, tmp_path
):
    head = (
        'pretrained_model_name_or_path = "/workspace/models/stable-diffusion-v1-5"\n'
        'train_data_dir = "/workspace/datasets/images/1_my_dataset"\nnetwork_dim = 4\nnetwork_alpha = 4\n'
    )
    epochs, steps = tmp_path / "epochs.toml", tmp_path / "steps.toml"
    epochs.write_text(head + "max_train_epochs = 9\nsave_every_n_epochs = 3\nsave_last_n_epochs = 2\n")
    steps.write_text(head + "save_every_n_steps = 50\nsave_last_n_steps = 150\n")
    by_epochs = validate(epochs, workspace=guide_workspace).spec["save"]
    assert (by_epochs["every_n_epochs"], by_epochs["keep_last"]) == (3, 2)  # kohya keeps 2 saves
    by_steps = validate(steps, workspace=guide_workspace).spec["save"]
    assert (by_steps["every_n_steps"], by_steps["keep_last"]) == (50, 3)  # the saves within 150 steps


def test_kohya_single_file_checkpoint_is_recognised(validate, guide_workspace, tiny_models, tmp_path):
    target = guide_workspace.model_dir("checkpoints") / "tiny-sdxl.safetensors"
    shutil.copyfile(single_file_path(tiny_models["sdxl"]), target)
    config = tmp_path / "single.toml"
    config.write_text(
        'pretrained_model_name_or_path = "/workspace/models/checkpoints/tiny-sdxl.safetensors"\n'
        'train_data_dir = "/workspace/datasets/images/1_my_dataset"\nnetwork_dim = 4\nnetwork_alpha = 4\n'
    )
    spec = validate(config, workspace=guide_workspace).spec
    assert (spec["model"]["family"], spec["model"]["source"]) == ("sdxl", "single_file")


def test_aitoolkit_flux_example(validate, guide_workspace):
    result = validate(CONFIGS / "aitoolkit_flux.yaml", workspace=guide_workspace)
    spec = result.spec
    assert spec["model"]["family"] == "flux-schnell"  # the folder is schnell, whatever the name says
    assert (spec["model"]["quantize"], spec["model"]["weight_dtype"]) == ("float8", "bf16")  # qfloat8
    assert (spec["network"]["dim"], spec["network"]["alpha"]) == (16, 16.0)
    assert (spec["save"]["dtype"], spec["save"]["every_n_steps"], spec["save"]["keep_last"]) == (
        "fp16",
        250,
        4,
    )
    dataset = spec["datasets"][0]
    assert dataset["resolutions"] == [512, 768, 1024]
    assert (dataset["caption_extension"], dataset["caption_dropout"], dataset["trigger_word"]) == (
        ".txt",
        0.05,
        "p3r5on",
    )
    training = spec["training"]
    assert (training["max_steps"], training["learning_rate"], training["ema_decay"]) == (2000, 1e-4, 0.99)
    assert training["gradient_checkpointing"] is True and training["mixed_precision"] == "bf16"
    sample = spec["sample"]
    assert (sample["every"], sample["width"], sample["guidance_scale"], sample["steps"]) == (
        250,
        1024,
        4.0,
        20,
    )
    # walk_seed: ai-toolkit renders prompt i with seed + i; and a baseline before the first step
    assert [(p["text"][:9], p["seed"]) for p in sample["prompts"]] == [("[trigger]", 42), ("a woman h", 43)]
    assert sample["at_start"] is True
    assert spec["output"] == {
        "name": "my_first_flux_lora_v1",
        "folder": str(guide_workspace.outputs / "my_first_flux_lora_v1"),
    }
    assert "config.process[0].device: ignored" in result.err


def test_diffusion_pipe_main_and_dataset_toml(validate, guide_workspace):
    result = validate(CONFIGS / "dp_main.toml", workspace=guide_workspace)
    spec = result.spec
    assert (spec["model"]["family"], spec["model"]["weight_dtype"]) == ("sdxl", "bf16")
    training = spec["training"]
    assert (training["epochs"], training["max_steps"], training["batch_size"]) == (20, None, 2)
    assert (training["gradient_accumulation_steps"], training["max_grad_norm"]) == (2, 1.0)
    assert (training["warmup_steps"], training["lr_scheduler"], training["gradient_checkpointing"]) == (
        10,
        "linear",
        True,
    )
    assert (training["optimizer"], training["learning_rate"], training["unet_lr"]) == ("adamw", 2e-5, 4e-5)
    assert training["text_encoder_lr"] == 2e-5 and training["min_snr_gamma"] == 5.0
    assert training["optimizer_args"] == {"betas": [0.9, 0.99], "weight_decay": 0.01, "eps": 1e-8}
    assert (spec["network"]["dim"], spec["network"]["alpha"]) == (32, 32.0)
    assert (spec["save"]["every_n_epochs"], spec["save"]["dtype"]) == (2, "bf16")
    assert [(Path(d["folder"]).name, d["repeats"], d["resolutions"]) for d in spec["datasets"]] == [
        ("1_concept_a", 1, [512]),
        ("2_concept_b", 5, [512]),
    ]
    assert spec["output"]["name"] == "dp_sdxl"
    assert "checkpoint_every_n_minutes: ignored" in result.err


def test_dialect_can_be_forced(validate, guide_workspace):
    forced = validate(CONFIGS / "aitoolkit_flux.yaml", "--dialect", "kohya", workspace=guide_workspace)
    assert forced.rc == 2
    assert "job: unknown key" in forced.err


def test_aitoolkit_dora_network_type_validates_to_dora(validate, guide_workspace, tmp_path):
    document = yaml.safe_load((CONFIGS / "aitoolkit_flux.yaml").read_text())
    process = document["config"]["process"][0]
    process["model"] = {"name_or_path": str(guide_workspace.models / "stable-diffusion-xl-base-1.0")}
    process["network"] = {"type": "dora", "linear": 8, "linear_alpha": 8}
    config = tmp_path / "dora.yaml"
    config.write_text(yaml.safe_dump(document))
    result = validate(config, workspace=guide_workspace)
    assert result.rc == 0, result.err
    network = result.spec["network"]
    assert (network["type"], network["dora"], network["dim"]) == ("dora", True, 8)
