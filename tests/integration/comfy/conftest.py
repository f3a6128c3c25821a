"""A fake ComfyUI (lorapilot.testing.comfyui_server) serving a workspace's models/, and tiny LoRAs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lorapilot.testing.comfyui_server import FakeComfyUI
from lorapilot.workspace import Workspace


@pytest.fixture
def comfy_ws(tmp_path: Path) -> Workspace:
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    (ws.model_dir("checkpoints") / "base-sd15.safetensors").write_bytes(b"not read by the fake")
    for folder, names in {
        "diffusion_models": ["flux1-dev.safetensors"],
        "text_encoders": ["clip_l.safetensors", "clip_g.safetensors", "t5xxl_fp16.safetensors"],
        "vae": ["ae.safetensors"],
    }.items():
        (ws.models / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (ws.models / folder / name).write_bytes(b"x")
    return ws


@pytest.fixture
def fake_comfy(comfy_ws: Workspace, tmp_path: Path) -> Iterator[FakeComfyUI]:
    server = FakeComfyUI(comfy_ws.models, tmp_path / "comfy-out", tmp_path / "comfy-in").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> dict[str, Path]:
    """Two real tiny SD1.5 LoRA runs of the same name (different seeds, so different bytes)."""
    from lorapilot.testing.trained_runs import train_tiny  # noqa: PLC0415

    root = tmp_path_factory.mktemp("runs")
    return {
        "first": train_tiny(root / "a", tiny_models["sd15"], "my_lora", seed=1),
        "second": train_tiny(root / "b", tiny_models["sd15"], "my_lora", seed=2),
    }
