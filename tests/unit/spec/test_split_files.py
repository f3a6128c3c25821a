"""Split-file models in ComfyUI's folders: the family is read from the transformer file, whatever a
dialect's flag says, and missing component files are found in models/clip|text_encoders and vae.

The files here are real safetensors files holding the tensor names (and shapes) that tell a
component apart; validation reads headers only, so they need no real weights. The encoders have the
released vocabularies; T5's tokenizer lies beside its files, as it must without ComfyUI installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lorapilot.testing.datasets import write_demo_images
from lorapilot.testing.tiny_tokenizers import t5_tokenizer
from lorapilot.workspace import Workspace

DEV = "models/unet/flux-a.safetensors"
SCHNELL = "models/diffusion_models/flux-b.safetensors"
FLUX_BLOCK = {"double_blocks.0.img_attn.qkv.weight": torch.zeros(3, 1)}
FILES = {
    DEV: {**FLUX_BLOCK, "guidance_in.in_layer.weight": torch.zeros(1)},
    SCHNELL: FLUX_BLOCK,
    "models/clip/clip_l.safetensors": {"text_model.embeddings.token_embedding.weight": torch.zeros(49408, 1)},
    "models/clip/t5xxl_fp16.safetensors": {"shared.weight": torch.zeros(32128, 1)},
    "models/text_encoders/t5xxl_fp8_e4m3fn.safetensors": {"shared.weight": torch.zeros(32128, 1)},
    "models/vae/ae.safetensors": {"decoder.conv_in.weight": torch.zeros(1, 16, 1, 1)},
    "models/vae/sdxl_vae.safetensors": {"decoder.conv_in.weight": torch.zeros(1, 4, 1, 1)},
}


@pytest.fixture
def comfy(tmp_path: Path) -> Workspace:
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    for rel, tensors in FILES.items():
        (ws.root / rel).parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(ws.root / rel))
        if "t5xxl" in rel:
            t5_tokenizer().save_pretrained(ws.root / rel.removesuffix(".safetensors"))
    write_demo_images(ws.images / "1_person", 2, caption="a photo")
    return ws


def _native(tmp_path: Path, path: str, **model: str) -> Path:
    config = tmp_path / "run.yaml"
    lines = [f"  {key}: {value}" for key, value in model.items()]
    config.write_text(
        "\n".join(
            [
                "spec_version: 1",
                "model:",
                f"  path: /workspace/{path}",
                *lines,
                "datasets: [{folder: person}]",
                "output: {name: split}",
            ]
        )
        + "\n"
    )
    return config


def test_a_transformer_file_alone_gets_comfyuis_component_files(validate, comfy, tmp_path):
    result = validate(_native(tmp_path, DEV), workspace=comfy)
    model = result.spec["model"]
    assert model["family"] == "flux-dev"
    assert model["source"] == "single_file"
    assert model["clip_l"] == str(comfy.root / "models/clip/clip_l.safetensors")
    assert model["t5xxl"] == str(comfy.root / "models/clip/t5xxl_fp16.safetensors")  # fp16 before fp8
    assert model["vae"] == str(comfy.root / "models/vae/ae.safetensors")
    assert "using /workspace/models/clip/clip_l.safetensors as clip_l" in result.err + result.out


def test_the_family_is_read_from_the_transformer_file(validate, comfy, tmp_path):
    assert validate(_native(tmp_path, SCHNELL), workspace=comfy).spec["model"]["family"] == "flux-schnell"


def test_ai_toolkit_is_flux_on_a_schnell_file_trains_schnell_with_a_notice(validate, comfy, tmp_path):
    config = tmp_path / "aitk.yaml"
    config.write_text(
        "job: extension\nconfig:\n  name: aitk\n  process:\n    - type: sd_trainer\n"
        "      datasets: [{folder_path: /workspace/datasets/images/1_person}]\n"
        f"      model: {{name_or_path: /workspace/{SCHNELL}, is_flux: true}}\n"
    )
    result = validate(config, workspace=comfy)
    assert result.spec["model"]["family"] == "flux-schnell"
    assert "is_flux: the model files are FLUX.1 schnell; trained as FLUX.1 schnell" in result.out + result.err


def test_kohya_flux_component_arguments_name_the_files(validate, comfy, tmp_path):
    config = tmp_path / "flux.toml"
    config.write_text(
        f'pretrained_model_name_or_path = "/workspace/{DEV}"\n'
        'clip_l = "/workspace/models/clip/clip_l.safetensors"\n'
        't5xxl = "/workspace/models/text_encoders/t5xxl_fp8_e4m3fn.safetensors"\n'
        'ae = "/workspace/models/vae/ae.safetensors"\n'
        'train_data_dir = "/workspace/datasets/images"\noutput_name = "kohya_flux"\n'
    )
    model = validate(config, workspace=comfy).spec["model"]
    assert model["family"] == "flux-dev"
    assert model["t5xxl"] == str(comfy.root / "models/text_encoders/t5xxl_fp8_e4m3fn.safetensors")
    assert model["vae"] == str(comfy.root / "models/vae/ae.safetensors")


def test_kohya_component_file_that_is_absent_is_named(validate, comfy, tmp_path):
    config = tmp_path / "flux.toml"
    config.write_text(
        f'pretrained_model_name_or_path = "/workspace/{DEV}"\n'
        'clip_l = "/workspace/models/clip/clip_L_missing.safetensors"\n'
        'train_data_dir = "/workspace/datasets/images"\noutput_name = "kohya_flux"\n'
    )
    result = validate(config, workspace=comfy)
    assert result.rc != 0
    assert "clip_l: file not found" in result.err


def test_several_candidates_without_comfyuis_names_ask_for_the_field(validate, comfy, tmp_path):
    (comfy.models / "clip" / "t5xxl_fp16.safetensors").rename(
        comfy.models / "clip" / "t5-v1_1-xxl-a.safetensors"
    )
    (comfy.models / "text_encoders" / "t5xxl_fp8_e4m3fn.safetensors").rename(
        comfy.models / "text_encoders" / "t5-v1_1-xxl-b.safetensors"
    )
    result = validate(_native(tmp_path, DEV), workspace=comfy)
    assert result.rc != 0
    assert "several t5xxl files" in result.err
    assert "set model.t5xxl" in result.err


def test_an_sd_vae_is_not_taken_for_flux_and_an_absent_one_is_named(validate, comfy, tmp_path):
    (comfy.models / "vae" / "ae.safetensors").rename(comfy.models / "vae" / "flux_vae.safetensors")
    model = validate(_native(tmp_path, DEV), workspace=comfy).spec["model"]
    assert model["vae"] == str(comfy.models / "vae" / "flux_vae.safetensors")  # 16 latent channels

    (comfy.models / "vae" / "flux_vae.safetensors").unlink()
    result = validate(_native(tmp_path, DEV), workspace=comfy)
    assert result.rc != 0
    assert "its vae file was not found" in result.err
    assert "ae.safetensors" in result.err


def test_an_explicit_family_must_match_the_files(validate, comfy, tmp_path):
    result = validate(_native(tmp_path, SCHNELL, family="flux-dev"), workspace=comfy)
    assert result.rc != 0
    assert "the model at this path is flux-schnell" in result.err


def test_a_t5_file_without_a_tokenizer_offline_is_refused_by_validate(validate, comfy, tmp_path):
    shutil.rmtree(comfy.models / "clip" / "t5xxl_fp16")
    result = validate(_native(tmp_path, DEV), workspace=comfy)
    assert result.rc != 0
    assert "model.t5xxl: no T5 tokenizer for t5xxl_fp16.safetensors offline" in result.err
    assert "/t5xxl_fp16/" in result.err and "install ComfyUI" in result.err


def test_fluxs_ae_is_never_taken_for_an_sd3_checkpoint_without_a_vae(validate, comfy, tmp_path):
    sd3 = comfy.models / "checkpoints" / "sd3-mmdit-only.safetensors"
    save_file({"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": torch.zeros(3, 1)}, str(sd3))
    for name, rows in (("clip_g", 49408), ("clip_l", 49408)):
        tensor = {"text_model.embeddings.token_embedding.weight": torch.zeros(rows, 1)}
        save_file(tensor, str(comfy.models / "clip" / f"{name}.safetensors"))
    result = validate(_native(tmp_path, "models/checkpoints/sd3-mmdit-only.safetensors"), workspace=comfy)
    assert result.rc != 0
    assert "model.vae" in result.err and "its vae file was not found" in result.err


def test_an_all_in_one_sd3_file_needs_no_component_files_but_a_t5_tokenizer(validate, comfy, tmp_path):
    rel = "models/checkpoints/sd3-all-in-one.safetensors"
    save_file(
        {
            "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": torch.zeros(3, 1),
            "first_stage_model.decoder.conv_in.weight": torch.zeros(1, 16, 1, 1),
            "text_encoders.clip_l.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(
                49408, 1
            ),
            "text_encoders.clip_g.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(
                49408, 1
            ),
            "text_encoders.t5xxl.transformer.shared.weight": torch.zeros(32128, 1),
        },
        str(comfy.root / rel),
    )
    result = validate(_native(tmp_path, rel), workspace=comfy)
    assert result.rc != 0
    assert "its t5xxl: no T5 tokenizer for sd3-all-in-one.safetensors offline" in result.err
    assert "/sd3-all-in-one/t5xxl/" in result.err

    t5_tokenizer().save_pretrained(comfy.root / "models/checkpoints/sd3-all-in-one/t5xxl")
    model = validate(_native(tmp_path, rel), workspace=comfy).spec["model"]
    assert (model["family"], model["clip_l"], model["t5xxl"], model["vae"]) == ("sd3", None, None, None)
