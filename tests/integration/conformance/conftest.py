"""A workspace for the trainer-conformance configs: tiny models at the paths users keep them.

Diffusers folders sit under `models/diffusers/`; the FLUX.1-schnell copy is also kept under a name
without "schnell" in it, so that the family has to be read from the files. FLUX.1 is also there as
ComfyUI keeps split files: dev in `models/unet`, schnell in `models/diffusion_models` (neither name
says which), `clip_l` and `t5xxl_fp16` in `models/clip`, the fp8 T5 in `models/text_encoders`, `ae`
in `models/vae` (the tiny dev and schnell share their encoders and VAE, as the real ones do).
SD3 is there as Stability ships it for ComfyUI (see SD3_FILE).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lorapilot.testing.datasets import write_demo_images
from lorapilot.testing.split_files import (
    write_flux_split_files,
    write_flux_transformer,
    write_fp8,
    write_sd3_files,
)
from lorapilot.workspace import Workspace

CONFORMANCE = Path(__file__).resolve().parents[2] / "fixtures" / "conformance"

# The split-file FLUX transformers: file names that do not say dev or schnell.
FLUX_DEV_FILE = "flux1-tiny-a.safetensors"
FLUX_SCHNELL_FILE = "flux1-tiny-b.safetensors"
# SD3 as Stability ships it: MMDiT + VAE in models/checkpoints, text encoders in models/clip
# (sd3_clip_l, sd3_clip_g, sd3_t5xxl), and an all-in-one <stem>_incl_clips_t5xxl.safetensors.
SD3_FILE = "sd3-tiny.safetensors"
SD35_FILE = "sd35m-tiny.safetensors"  # SD3.5 Medium, its encoders in models/text_encoders
# Dataset folders the conformance configs name (kohya's <repeats>_<name> folders included).
DATASETS = {
    "images/2_person": 4,
    "images/person": 4,
    "images/style": 3,
    "reg/1_person": 2,
}


@pytest.fixture(scope="session")
def conformance_workspace(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> Workspace:
    ws = Workspace.from_env(tmp_path_factory.mktemp("conformance")).ensure()
    for rel, count in DATASETS.items():
        write_demo_images(ws.datasets / rel, count, size=(64, 64), caption="lpdemo, a photo")
    for family in ("sd15", "sdxl", "sd3", "flux-dev", "flux-schnell"):
        shutil.copytree(tiny_models[family], ws.model_dir("diffusers") / f"tiny-{family}")
    shutil.copytree(tiny_models["flux-schnell"], ws.model_dir("diffusers") / "my-flux-model")
    split = write_flux_split_files(tiny_models["flux-dev"], ws.models, FLUX_DEV_FILE, fp8_t5=False)
    write_flux_transformer(tiny_models["flux-schnell"], ws.models / "diffusion_models" / FLUX_SCHNELL_FILE)
    write_fp8(split["t5xxl"], ws.models / "text_encoders" / "t5xxl_fp8_e4m3fn.safetensors")
    write_sd3_files(tiny_models["sd3"], ws.models, SD3_FILE)
    write_sd3_files(tiny_models["sd35-medium"], ws.models, SD35_FILE, clip_dir="text_encoders")
    shutil.copytree(CONFORMANCE, ws.root / "configs" / "conformance")
    return ws
