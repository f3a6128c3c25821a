"""Every family's workflow uses only node classes and inputs of the object_info document built from
ComfyUI's published node definitions
(lorapilot.testing.comfyui_nodes), and the fake server accepts each one."""

from __future__ import annotations

import pytest

from lorapilot import families
from lorapilot.comfy.client import ComfyClient
from lorapilot.comfy.workflows import Base, LoraUse, Render, build, check
from lorapilot.testing.comfyui_nodes import object_info

# A file the fake ComfyUI lists for each loader input (comfy_ws): every family's bases from these.
FILE_FOR_INPUT = {
    "ckpt_name": "base-sd15.safetensors",
    "unet_name": "flux1-dev.safetensors",
    "clip_name1": "clip_l.safetensors",
    "clip_name2": "t5xxl_fp16.safetensors",
    "clip_name3": "t5xxl_fp16.safetensors",
    "vae_name": "ae.safetensors",
}
BASES = {f.id: {key: FILE_FOR_INPUT[key] for key in f.comfy.files} for f in families.all_families()}
BLEND = (LoraUse("a.safetensors", 1.0), LoraUse("b.safetensors", 0.6))


@pytest.fixture
def loras(comfy_ws):
    for name in ("a.safetensors", "b.safetensors"):
        (comfy_ws.model_dir("loras") / name).write_bytes(b"lora")


@pytest.mark.parametrize("family", families.ids())
def test_each_family_fits_object_info_and_runs(family, comfy_ws, loras, fake_comfy):
    workflow = build(family, Render("lpdemo", BLEND, width=64, height=64), Base(BASES[family]))
    assert check(workflow, object_info(comfy_ws.models)) == []
    loaders = [n for n in workflow.values() if n["class_type"].startswith("LoraLoader")]
    assert [(n["inputs"]["lora_name"], n["inputs"]["strength_model"]) for n in loaders] == [
        ("a.safetensors", 1.0),
        ("b.safetensors", 0.6),
    ]
    assert loaders[1]["inputs"]["model"][0] != loaders[0]["inputs"]["model"][0]  # chained, not parallel
    assert len(ComfyClient(fake_comfy.url).run(workflow, timeout=30)) == 1


def test_flux_and_sd_graphs_use_their_loaders():
    flux = {n["class_type"] for n in build("flux-dev", Render("x", BLEND), Base(BASES["flux-dev"])).values()}
    assert {"UNETLoader", "DualCLIPLoader", "VAELoader", "LoraLoaderModelOnly", "FluxGuidance"} <= flux
    sd3 = {n["class_type"] for n in build("sd3", Render("x", BLEND), Base(BASES["sd3"])).values()}
    assert {"TripleCLIPLoader", "LoraLoaderModelOnly", "EmptySD3LatentImage"} <= sd3
    sdxl = [n["class_type"] for n in build("sdxl", Render("x", BLEND), Base(BASES["sdxl"])).values()]
    assert sdxl == [
        "CheckpointLoaderSimple",
        "LoraLoader",
        "LoraLoader",
        "CLIPTextEncode",
        "CLIPTextEncode",
        "EmptyLatentImage",
        "KSampler",
        "VAEDecode",
        "SaveImage",
    ]


def test_check_finds_what_comfyui_would_reject(comfy_ws, loras):
    workflow = build("sd15", Render("x", BLEND), Base(BASES["sd15"]))
    workflow["1"]["class_type"] = "CheckpointLoaderFancy"
    del workflow["7"]["inputs"]["seed"]
    workflow["7"]["inputs"]["sampler_name"] = "nonsense"
    workflow["8"]["inputs"]["vae"] = ["4", 0]  # CLIPTextEncode's CONDITIONING into a VAE input
    workflow["5"]["inputs"]["colour"] = "red"
    problems = "\n".join(check(workflow, object_info(comfy_ws.models)))
    assert "node 1: class 'CheckpointLoaderFancy' is not installed" in problems
    assert "node 7 (KSampler): required input 'seed' is missing" in problems
    assert "'nonsense' is not one of its choices" in problems
    assert "input 'vae': expects VAE, gets CONDITIONING from node 4" in problems
    assert "node 5 (CLIPTextEncode): input 'colour' does not exist" in problems


def test_a_missing_base_file_says_which_setting():
    from lorapilot.comfy.errors import SettingsError  # noqa: PLC0415

    with pytest.raises(SettingsError, match=r"bases.flux-dev.vae_name in config/comfy.yaml"):
        build("flux-dev", Render("x"), Base({"unet_name": "u", "clip_name1": "c", "clip_name2": "t"}))
