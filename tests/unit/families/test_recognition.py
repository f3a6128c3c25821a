"""A model's family is told from its files (folder configs, single-file tensor names) or its name,
by the registry's facts alone."""

from __future__ import annotations

import json

import pytest

from lorapilot import families
from lorapilot.families.recognition import (
    family_of_tensor_names,
    guess_from_name,
    probe_folder,
    probe_single_file,
)
from lorapilot.testing.ldm_checkpoint import SINGLE_FILE_FAMILIES
from lorapilot.testing.tiny_models import single_file_path


@pytest.mark.parametrize("family", families.ids())
def test_every_tiny_model_folder_is_recognised_as_its_family(family, tiny_models):
    assert probe_folder(tiny_models[family]) is families.get(family)


@pytest.mark.parametrize("family", SINGLE_FILE_FAMILIES)
def test_every_single_file_checkpoint_is_recognised_as_its_family(family, tiny_models):
    assert probe_single_file(single_file_path(tiny_models[family])) is families.get(family)


UNET = "model.diffusion_model.input_blocks.0.0.weight"


@pytest.mark.parametrize(
    ("keys", "family"),
    [
        (["double_blocks.0.img_attn.qkv.weight", "guidance_in.in_layer.weight"], families.FLUX_DEV),
        (["model.diffusion_model.double_blocks.0.img_attn.qkv.weight"], families.FLUX_SCHNELL),
        (["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"], families.SD3),
        (
            ["joint_blocks.0.x_block.attn.qkv.weight", "joint_blocks.0.x_block.attn.ln_q.weight"],
            families.SD35_LARGE,
        ),
        (
            [
                "model.diffusion_model.joint_blocks.0.x_block.attn.ln_q.weight",
                "model.diffusion_model.joint_blocks.0.x_block.attn2.qkv.weight",
            ],
            families.SD35_MEDIUM,
        ),
        (
            [
                "model.diffusion_model.input_blocks.0.0.weight",
                "conditioner.embedders.1.model.ln_final.weight",
            ],
            families.SDXL,
        ),
        (
            [UNET, "cond_stage_model.model.ln_final.weight"],
            families.SD2,
        ),
        ([UNET, "cond_stage_model.transformer.x"], families.SD15),
        (["first_stage_model.encoder.conv_in.weight"], None),  # a VAE alone
    ],
)
def test_single_file_tensor_names_tell_the_family(keys, family):
    assert family_of_tensor_names(keys) is family


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("black-forest-labs/FLUX.1-schnell", families.FLUX_SCHNELL),
        ("flux1-dev-fp8.safetensors", families.FLUX_DEV),
        ("stabilityai/stable-diffusion-3-medium-diffusers", families.SD3),
        ("ponyDiffusionV6XL.safetensors", families.SDXL),
        ("stabilityai/stable-diffusion-2-1", families.SD2),
        ("runwayml/stable-diffusion-v1-5", families.SD15),
        ("my-model.safetensors", None),
    ],
)
def test_a_name_suggests_the_family(name, family):
    assert guess_from_name(name) is family


def test_a_folder_marker_picks_among_families_of_one_pipeline_class(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    assert probe_folder(tmp_path) is families.SD15  # no marker: the family without markers
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text('{"prediction_type": "v_prediction"}')
    assert probe_folder(tmp_path) is families.SD2


def test_a_folder_of_an_untrained_pipeline_or_no_folder_is_not_recognised(tmp_path):
    assert probe_folder(tmp_path) is None
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    assert probe_folder(tmp_path) is None
