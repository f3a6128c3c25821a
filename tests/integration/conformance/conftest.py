"""A workspace for the trainer-conformance configs: tiny models at the paths users keep them.

Diffusers folders sit under `models/diffusers/`; the FLUX.1-schnell copy is also kept under a name
without "schnell" in it, so that the family has to be read from the files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lorapilot.testing.datasets import write_demo_images
from lorapilot.workspace import Workspace

CONFORMANCE = Path(__file__).resolve().parents[2] / "fixtures" / "conformance"

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
    shutil.copytree(CONFORMANCE, ws.root / "configs" / "conformance")
    return ws
