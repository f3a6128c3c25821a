"""Training runs on the tiny built-in models, in throwaway workspaces."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from lorapilot.spec import TrainSpec, load_spec
from lorapilot.testing.datasets import write_demo_images
from lorapilot.testing.tiny_models import single_file_path
from lorapilot.workspace import Workspace

TRAINED_FAMILIES = ("sd15", "sd2", "sdxl", "sd3", "flux-dev", "flux-schnell")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


@pytest.fixture
def workspace(tmp_path: Path, tiny_models: dict[str, Path]) -> Workspace:
    """A fresh workspace with every tiny model (and SD1.5's single file) in models/."""
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    for family in TRAINED_FAMILIES:
        shutil.copytree(tiny_models[family], ws.model_dir("diffusers") / f"tiny-{family}")
    shutil.copyfile(
        single_file_path(tiny_models["sd15"]), ws.model_dir("diffusers") / "tiny-sd15.safetensors"
    )
    write_demo_images(ws.images / "2_demo", 6, size=(80, 64), caption="lpdemo,")
    return ws


@pytest.fixture
def make_spec(workspace: Workspace):
    """A TrainSpec read through the real spec reader: small defaults, then the test's overrides."""

    def build(family: str = "sd15", name: str = "run", **overrides: Any) -> TrainSpec:
        doc = {
            "spec_version": 1,
            "model": {
                "family": family,
                "path": f"/workspace/models/diffusers/tiny-{family}",
                "weight_dtype": "fp32",
            },
            "network": {"dim": 4, "alpha": 4},
            "datasets": [{"folder": "demo", "resolutions": [64], "bucket": {"enabled": False}}],
            "training": {
                "max_steps": 30,
                "batch_size": 2,
                "optimizer": "adamw",
                "learning_rate": 1e-3,
                "mixed_precision": "no",
                "max_grad_norm": 1.0,
            },
        }
        config = workspace.root / f"{name}.yaml"
        config.write_text(yaml.safe_dump(deep_merge(doc, overrides)))
        return load_spec(config, workspace=workspace).spec

    return build
