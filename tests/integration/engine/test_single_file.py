"""Single-file checkpoints of the released architectures load offline from the configs we carry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from lorapilot.engine.families import adapter_for
from lorapilot.engine.families.reference_configs import (
    MODELS,
    SD15_REFERENCE,
    SD21_BASE_REFERENCE,
    SDXL_REFERENCE,
    materialize,
)
from lorapilot.spec.model import ModelSpec
from lorapilot.testing.ldm_checkpoint import write_ldm_checkpoint

# Published parameter counts of the released models' components.
PARAMETERS = {
    SD15_REFERENCE: {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    SD21_BASE_REFERENCE: {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    SDXL_REFERENCE: {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    },
}
BUILDERS = {
    "unet": lambda d: UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(d)),
    "vae": lambda d: AutoencoderKL.from_config(AutoencoderKL.load_config(d)),
    "text_encoder": lambda d: CLIPTextModel(CLIPTextConfig.from_pretrained(d)),
    "text_encoder_2": lambda d: CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(d)),
}


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_reference_configs_build_the_released_architectures(name, tmp_path):
    folder = materialize(name, tmp_path / name)
    for component, expected in PARAMETERS[name].items():
        with torch.device("meta"):
            model = BUILDERS[component](folder / component)
        assert sum(p.numel() for p in model.parameters()) == expected, component


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reference_tokenizers_are_clips(name, tmp_path):
    folder = materialize(name, tmp_path / name)
    for tokenizer in MODELS[name]["tokenizers"]:
        ids = CLIPTokenizer.from_pretrained(folder / tokenizer)("a photo of a cat").input_ids
        assert ids == [49406, 320, 1125, 539, 320, 2368, 49407]  # OpenAI CLIP's ids for this prompt


@pytest.mark.slow
def test_a_full_size_sd15_checkpoint_loads_offline_without_a_config_folder(tmp_path):
    folder = materialize(SD15_REFERENCE, tmp_path / "sd15-weights")
    torch.manual_seed(0)
    probes = {}
    for component in ("unet", "vae", "text_encoder"):
        with torch.device("meta"):
            model = BUILDERS[component](folder / component)
        model = model.to_empty(device="cpu").to(torch.float16)
        for param in model.parameters():
            param.data.uniform_(-0.05, 0.05)
        probes[component] = {
            n: p.detach().clone() for i, (n, p) in enumerate(model.named_parameters()) if i % 97 == 0
        }
        model.save_pretrained(folder / component)
        del model
    checkpoint = write_ldm_checkpoint(folder, "sd15", tmp_path / "my-sd15-finetune.safetensors")
    shutil.rmtree(folder)
    spec = ModelSpec(family="sd15", path=str(checkpoint), source="single_file", weight_dtype="fp16")

    loaded = adapter_for("sd15").load(spec, torch.float16, tmp_path / "config-cache")

    for component, tensors in probes.items():
        params = dict(loaded[component].named_parameters())
        for name, expected in tensors.items():
            torch.testing.assert_close(params[name], expected, msg=f"{component}.{name}")
    assert loaded["tokenizer"]("a cat").input_ids == [49406, 320, 2368, 49407]
    assert Path(tmp_path / "config-cache" / SD15_REFERENCE / "unet" / "config.json").is_file()
