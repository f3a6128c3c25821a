"""The tiny models stand in for real ones everywhere, so they must load, render and convert like them."""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import CLIPTokenizer

from lorapilot import families
from lorapilot.testing import tiny_models
from lorapilot.testing.ldm_checkpoint import SINGLE_FILE_FAMILIES, unet_to_ldm
from lorapilot.testing.tiny_models import (
    MARKER,
    TINY_FAMILIES,
    TinyModelError,
    build_tiny_model,
    single_file_path,
)

# The pipeline class each registered family's diffusers folders name.
PIPELINES = {f.id: getattr(diffusers, f.recognition.pipeline_classes[0]) for f in families.all_families()}


def test_every_family_has_a_tiny_model():
    assert set(TINY_FAMILIES) == set(PIPELINES)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_folder_loads_as_its_family_pipeline(tiny_models, family):
    generic = diffusers.DiffusionPipeline.from_pretrained(tiny_models[family])
    specific = PIPELINES[family].from_pretrained(tiny_models[family])
    assert type(generic) is PIPELINES[family]
    assert type(specific) is PIPELINES[family]


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_pipeline_renders_a_64px_image(tiny_models, family):
    pipeline = diffusers.DiffusionPipeline.from_pretrained(tiny_models[family])
    pipeline.set_progress_bar_config(disable=True)
    image = pipeline(
        "a photo of a sks dog",
        height=64,
        width=64,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    pixels = np.asarray(image, dtype=np.float32)
    assert image.size == (64, 64)
    assert pixels.std() > 1.0, "the image is a flat colour"


@pytest.mark.parametrize(
    ("family", "component", "key", "value"),
    [
        ("sd2", "scheduler", "prediction_type", "v_prediction"),
        ("sd2", "text_encoder", "hidden_act", "gelu"),
        ("sd15", "scheduler", "prediction_type", "epsilon"),
        ("sdxl", "unet", "addition_embed_type", "text_time"),
        ("flux-dev", "transformer", "guidance_embeds", True),
        ("flux-schnell", "transformer", "guidance_embeds", False),
        ("flux-dev", "scheduler", "use_dynamic_shifting", True),
    ],
)
def test_family_traits_match_the_real_configs(tiny_models, family, component, key, value):
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    config = json.loads((tiny_models[family] / component / name).read_text())
    assert config[key] == value


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_same_seed_builds_bit_identical_weights(tmp_path, family):
    first = build_tiny_model(family, tmp_path / "first", seed=3)
    second = build_tiny_model(family, tmp_path / "second", seed=3)
    weights = sorted(p.relative_to(first) for p in first.rglob("*.safetensors"))
    assert weights
    assert weights == sorted(p.relative_to(second) for p in second.rglob("*.safetensors"))
    for relative in weights:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


def test_another_seed_builds_other_weights(tmp_path):
    first = build_tiny_model("sd15", tmp_path / "first", seed=0)
    second = build_tiny_model("sd15", tmp_path / "second", seed=1)
    unet = Path("unet/diffusion_pytorch_model.safetensors")
    assert (first / unet).read_bytes() != (second / unet).read_bytes()


def test_matching_folder_is_reused_and_other_seed_rebuilt(tmp_path):
    dest = build_tiny_model("flux-schnell", tmp_path / "tiny")
    weights = dest / "transformer" / "diffusion_pytorch_model.safetensors"
    before = weights.stat().st_ino
    build_tiny_model("flux-schnell", dest)
    assert weights.stat().st_ino == before, "a matching folder was rebuilt"
    build_tiny_model("flux-schnell", dest, seed=5)
    assert json.loads((dest / MARKER).read_text())["seed"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"], "a temporary build folder was left behind"


def test_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def crash(family, seed, folder):
        (folder / "unet").mkdir()
        raise RuntimeError("killed mid-build")

    monkeypatch.setattr(tiny_models, "_save_pipeline", crash)
    with pytest.raises(RuntimeError):
        build_tiny_model("sd15", tmp_path / "tiny")
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(TinyModelError, match="not a tiny model folder"):
        build_tiny_model("sd15", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_unknown_family_and_single_file_without_layout_are_refused(tmp_path):
    with pytest.raises(TinyModelError, match="unknown family"):
        build_tiny_model("sd4", tmp_path / "x")
    with pytest.raises(TinyModelError, match="single_file"):
        build_tiny_model("flux-dev", tmp_path / "x", single_file=True)


def test_clip_tokenizer_pads_to_77_and_loads_from_classic_files(tiny_models, tmp_path):
    folder = tiny_models["sd15"] / "tokenizer"
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    ids = tokenizer("a photo of a café", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.eos_token_id in ids
    for name in ("vocab.json", "merges.txt"):  # what transformers 4 reads when tokenizer.json is absent
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    classic = CLIPTokenizer(vocab=str(tmp_path / "vocab.json"), merges=str(tmp_path / "merges.txt"))
    assert classic("a photo of a café").input_ids == tokenizer("a photo of a café").input_ids


def test_t5_tokenizer_ends_prompts_with_eos(tiny_models):
    pipeline = diffusers.FluxPipeline.from_pretrained(tiny_models["flux-dev"])
    ids = pipeline.tokenizer_2("a photo of a café").input_ids
    assert ids[-1] == pipeline.tokenizer_2.eos_token_id == 1
    assert pipeline.tokenizer_2.unk_token_id in ids  # "é" is outside the tiny vocabulary


LDM_PREFIXES = {
    "sd15": ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.text_model."),
    "sd2": ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.model."),
    "sdxl": (
        "model.diffusion_model.",
        "first_stage_model.",
        "conditioner.embedders.0.transformer.text_model.",
        "conditioner.embedders.1.model.",
    ),
}


@pytest.mark.parametrize("family", SINGLE_FILE_FAMILIES)
def test_single_file_uses_the_original_checkpoint_layout(tiny_models, family):
    path = single_file_path(tiny_models[family])
    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
    prefixes = LDM_PREFIXES[family]
    assert [key for key in keys if not key.startswith(prefixes)] == []
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in keys), prefix
    assert "model.diffusion_model.input_blocks.0.0.weight" in keys
    if family != "sd15":  # OpenCLIP encoders keep q, k and v fused
        assert any(key.endswith(".transformer.resblocks.0.attn.in_proj_weight") for key in keys)
    assert path.stat().st_mode & 0o044 == 0o044, "other users (ComfyUI) must be able to read it"


@pytest.mark.parametrize("family", SINGLE_FILE_FAMILIES)
def test_single_file_loads_back_with_identical_weights(tiny_models, family):
    folder = tiny_models[family]
    original = PIPELINES[family].from_pretrained(folder)
    loaded = PIPELINES[family].from_single_file(
        str(single_file_path(folder)), config=str(folder), local_files_only=True
    )
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if getattr(original, name, None) is None:
            continue
        expected, actual = getattr(original, name).state_dict(), getattr(loaded, name).state_dict()
        assert expected.keys() == actual.keys(), name
        different = [key for key in expected if not torch.equal(expected[key], actual[key])]
        assert not different, f"{name}: {different[:5]}"


def test_unet_layout_follows_other_depths(tmp_path):
    """SD1.5's real shape (attention in the upsampling blocks, other depths) converts as well."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
    )
    unet.save_pretrained(tmp_path)
    checkpoint = {
        f"model.diffusion_model.{k}": v for k, v in unet_to_ldm(unet.state_dict(), unet.config).items()
    }
    assert "model.diffusion_model.output_blocks.3.2.conv.weight" in checkpoint  # upsampler after attention
    loaded = diffusers.UNet2DConditionModel.from_single_file(
        checkpoint, config=str(tmp_path), local_files_only=True
    )
    expected, actual = unet.state_dict(), loaded.state_dict()
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
