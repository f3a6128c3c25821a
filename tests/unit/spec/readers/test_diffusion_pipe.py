"""diffusion-pipe configs validate to what diffusion-pipe itself would train."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SDXL = "/workspace/models/stable-diffusion-xl-base-1.0"
SCHNELL = "/workspace/models/diffusers/FLUX.1-schnell"
DATASET = "resolutions = [512]\n\n[[directory]]\npath = '/workspace/datasets/images/2_concept_b'\n"


def _main(model: str, *, top: str = "epochs = 4\n", adapter: str = "", optimizer: str = "") -> str:
    return (
        "output_dir = '/workspace/outputs/dp_case'\ndataset = 'dataset.toml'\n"
        f"micro_batch_size_per_gpu = 1\nsave_every_n_epochs = 1\n{top}\n"
        f"[model]\n{model}\n[adapter]\ntype = 'lora'\nrank = 8\n{adapter}\n"
        f"[optimizer]\ntype = 'adamw_optimi'\nlr = 2e-5\n{optimizer}"
    )


def _validate(validate, workspace, tmp_path: Path, main: str, dataset: str = DATASET):
    (tmp_path / "dataset.toml").write_text(dataset)
    (tmp_path / "main.toml").write_text(main)
    return validate(tmp_path / "main.toml", workspace=workspace)


def _sdxl(extra: str = "") -> str:
    return f"type = 'sdxl'\ncheckpoint_path = '{SDXL}'\ndtype = 'bfloat16'\n{extra}"


def _flux(extra: str = "") -> str:
    return f"type = 'flux'\ndiffusers_path = '{SCHNELL}'\ndtype = 'bfloat16'\n{extra}"


def test_sdxl_trains_both_text_encoders_at_their_lr(validate, guide_workspace, tmp_path):
    main = _main(_sdxl("unet_lr = 4e-5\ntext_encoder_1_lr = 1e-5\ntext_encoder_2_lr = 1e-5\n"))
    spec = _validate(validate, guide_workspace, tmp_path, main).spec
    assert spec["network"]["train_text_encoder"] is True
    training = spec["training"]
    assert (training["learning_rate"], training["unet_lr"], training["text_encoder_lr"]) == (2e-5, 4e-5, 1e-5)


def test_sdxl_text_encoders_default_to_the_optimizer_lr(validate, guide_workspace, tmp_path):
    spec = _validate(validate, guide_workspace, tmp_path, _main(_sdxl())).spec
    assert spec["network"]["train_text_encoder"] is True
    assert spec["training"]["text_encoder_lr"] is None  # i.e. learning_rate, the optimizer's lr


def test_sdxl_text_encoders_at_zero_lr_stay_frozen(validate, guide_workspace, tmp_path):
    main = _main(_sdxl("text_encoder_1_lr = 0\ntext_encoder_2_lr = 0\n"))
    spec = _validate(validate, guide_workspace, tmp_path, main).spec
    assert spec["network"]["train_text_encoder"] is False


def test_two_different_text_encoder_lrs_are_refused_with_the_fix(validate, guide_workspace, tmp_path):
    main = _main(_sdxl("text_encoder_1_lr = 1e-5\ntext_encoder_2_lr = 3e-5\n"))
    result = _validate(validate, guide_workspace, tmp_path, main)
    assert result.rc == 2
    assert (
        "model.text_encoder_2_lr: LoRA Pilot trains both SDXL text encoders at one learning rate"
        in result.err
    )


def test_epochs_with_max_steps_keeps_both(validate, guide_workspace, tmp_path):
    result = _validate(
        validate, guide_workspace, tmp_path, _main(_flux(), top="epochs = 100\nmax_steps = 30\n")
    )
    training = result.spec["training"]
    assert (training["epochs"], training["max_steps"]) == (100, 30)
    assert "whichever ends first" in result.err


@pytest.mark.parametrize(("dtype", "quantize"), [("float8", "float8"), ("float8_e5m2", "float8")])
def test_transformer_dtype_quantises_and_keeps_the_compute_dtype(
    dtype, quantize, validate, guide_workspace, tmp_path
):
    main = _main(_flux(f"transformer_dtype = '{dtype}'\n"))
    model = _validate(validate, guide_workspace, tmp_path, main).spec["model"]
    assert (model["quantize"], model["weight_dtype"]) == (quantize, "bf16")


def test_transformer_dtype_nf4_is_bitsandbytes_nf4_which_needs_cuda(validate, guide_workspace, tmp_path):
    main = _main(_flux("transformer_dtype = 'nf4'\n"))
    result = _validate(validate, guide_workspace, tmp_path, main)
    if torch.cuda.is_available():
        assert result.spec["model"]["quantize"] == "nf4"
    else:
        assert result.rc != 0 and "quantize" in result.err and "float8" in result.err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", ("logit_normal", 3.0)),  # diffusion-pipe's default: logit-normal, no shift
        ("flux_shift = true\n", ("flux_shift", 3.0)),
        ("shift = 2.5\n", ("shift", 2.5)),
        ("timestep_sample_method = 'uniform'\n", ("uniform", 3.0)),
    ],
)
def test_timestep_sampling_follows_diffusion_pipe(extra, expected, validate, guide_workspace, tmp_path):
    training = _validate(validate, guide_workspace, tmp_path, _main(_flux(extra))).spec["training"]
    assert (training["timestep_sampling"], training["discrete_flow_shift"]) == expected


def test_a_shift_on_uniform_timesteps_is_refused(validate, guide_workspace, tmp_path):
    main = _main(_flux("timestep_sample_method = 'uniform'\nflux_shift = true\n"))
    result = _validate(validate, guide_workspace, tmp_path, main)
    assert result.rc == 2 and "model.flux_shift: not supported" in result.err


def test_dataset_defaults_follow_diffusion_pipe(validate, guide_workspace, tmp_path):
    dataset = DATASET + "shuffle_tags = true\ncaption_prefix = 'sks person, '\n"
    spec = _validate(validate, guide_workspace, tmp_path, _main(_sdxl()), dataset).spec
    entry = spec["datasets"][0]
    assert Path(entry["folder"]).name == "2_concept_b"
    assert (entry["repeats"], entry["class_tokens"]) == (1, None)  # no kohya folder-name repeats
    assert entry["bucket"]["enabled"] is False  # enable_ar_bucket defaults to false
    assert (entry["shuffle_caption"], entry["trigger_word"]) == (True, "sks person")


def test_optimi_adamw_defaults_and_model_dtype(validate, guide_workspace, tmp_path):
    main = _main(_sdxl().replace("bfloat16", "float32"))
    training = _validate(validate, guide_workspace, tmp_path, main).spec["training"]
    assert training["optimizer_args"] == {"betas": [0.9, 0.99], "eps": 1e-6}
    assert training["mixed_precision"] == "no"  # diffusion-pipe autocasts in [model] dtype


def test_adapter_alpha_is_refused_as_diffusion_pipe_does(validate, guide_workspace, tmp_path):
    result = _validate(validate, guide_workspace, tmp_path, _main(_sdxl(), adapter="alpha = 8\n"))
    assert result.rc == 2 and "adapter.alpha: not supported" in result.err


def test_without_save_dtype_the_lora_is_saved_in_the_adapter_dtype(validate, guide_workspace, tmp_path):
    main = _main(_sdxl(), adapter="dtype = 'float32'\n")
    assert _validate(validate, guide_workspace, tmp_path, main).spec["save"]["dtype"] == "fp32"
    main = _main(_sdxl())  # the adapter's dtype defaults to [model] dtype
    assert _validate(validate, guide_workspace, tmp_path, main).spec["save"]["dtype"] == "bf16"


def test_per_resolution_batch_sizes_are_refused_with_a_hint(validate, guide_workspace, tmp_path):
    main = _main(_sdxl()).replace(
        "micro_batch_size_per_gpu = 1", "micro_batch_size_per_gpu = [[512, 4], [1024, 1]]"
    )
    result = _validate(validate, guide_workspace, tmp_path, main)
    assert result.rc == 2
    assert "micro_batch_size_per_gpu: not supported by LoRA Pilot: a batch size per resolution" in result.err
