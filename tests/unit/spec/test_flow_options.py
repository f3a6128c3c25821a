"""Flow-model options (FLUX, SD3) in each dialect, and the combinations that cannot work refused by name."""

from __future__ import annotations

import pytest

FLUX = 'pretrained_model_name_or_path: "/workspace/models/diffusers/FLUX.1-schnell"\n'
SD15 = 'pretrained_model_name_or_path: "/workspace/models/stable-diffusion-v1-5"\n'
DATA = 'train_data_dir: "/workspace/datasets/images/1_my_dataset"\n'


def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_kohya_flow_keys_map_to_the_spec(validate, guide_workspace, tmp_path):
    config = write(
        tmp_path,
        FLUX
        + DATA
        + "timestep_sampling: shift\ndiscrete_flow_shift: 3.1582\nweighting_scheme: sigma_sqrt\n"
        + "sigmoid_scale: 1.5\nblocks_to_swap: 18\nguidance_scale: 1.0\n"
        + "network_module: networks.lora_flux\nmodel_prediction_type: raw\n",
    )
    training = validate(config, workspace=guide_workspace).spec["training"]
    assert training["timestep_sampling"] == "shift" and training["discrete_flow_shift"] == 3.1582
    assert training["loss_weighting"] == "sigma_sqrt" and training["logit_std"] == 1.5
    assert training["blocks_to_swap"] == 18


def test_kohya_logit_normal_weighting_is_a_timestep_density(validate, guide_workspace, tmp_path):
    config = write(tmp_path, FLUX + DATA + "weighting_scheme: logit_normal\nlogit_mean: 0.5\n")
    training = validate(config, workspace=guide_workspace).spec["training"]
    assert (training["timestep_sampling"], training["logit_mean"]) == ("logit_normal", 0.5)


@pytest.mark.parametrize(
    "case",
    [
        ("timestep_sampling: sigmoid\n", SD15, "training.timestep_sampling applies to flow-matching models"),
        ("blocks_to_swap: 4\n", SD15, "training.blocks_to_swap applies to flow-matching models"),
        ("network_args: ['dora_wd=true']\n", FLUX, "ComfyUI does not load DoRA"),
        ("weighting_scheme: mode\n", FLUX, "weighting_scheme: not supported by LoRA Pilot"),
    ],
)
def test_impossible_flow_combinations_are_refused_by_name(case, validate, guide_workspace, tmp_path):
    extra, model, expected = case
    result = validate(write(tmp_path, model + DATA + extra), workspace=guide_workspace)
    assert result.rc == 2, result.out
    assert expected in result.err
    assert "Traceback" not in result.err


def test_kohya_text_encoder_training_on_flux_keeps_the_encoders_frozen_and_says_so(
    validate, guide_workspace, tmp_path
):
    # sd-scripts would train CLIP-L here; FLUX LoRAs in LoRA Pilot train the transformer only.
    result = validate(
        write(tmp_path, FLUX + DATA + "network_train_unet_only: false\n"), workspace=guide_workspace
    )
    assert result.spec["network"]["train_text_encoder"] is False
    assert "where sd-scripts would train a text-encoder LoRA too" in result.err


def test_quantize_and_block_swapping_are_exclusive(validate, guide_workspace, tmp_path):
    config = write(
        tmp_path,
        "job: extension\nconfig:\n  name: q\n  process:\n    - type: sd_trainer\n"
        '      model: {name_or_path: "/workspace/models/diffusers/FLUX.1-schnell", quantize: true}\n'
        '      datasets: [{folder_path: "/workspace/datasets/images/1_my_dataset"}]\n',
    )
    result = validate(config, "--set", "training.blocks_to_swap=4", workspace=guide_workspace)
    assert result.rc == 2 and "blocks_to_swap cannot stream quantised weights" in result.err
