"""One appliance for this folder's tests, under the repo's own supervisord.conf on a throwaway
workspace (lorapilot.testing.supervised_appliance); the tests drive ControlPilot, which reaches
supervisord through the copied config's own socket. A fake ComfyUI (ComfyUI itself is not
installable from the package registries) serves the workspace's models, so the ComfyUI bridge
publishes and test-renders each finished job.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lorapilot.testing.comfyui_server import FakeComfyUI
from lorapilot.testing.supervised_appliance import SupervisedAppliance
from lorapilot.workspace import Workspace

REPO = Path(__file__).resolve().parents[3]
BASE_CHECKPOINT = "tiny-sd15.safetensors"


@pytest.fixture(scope="package")
def comfyui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeComfyUI]:
    root = tmp_path_factory.mktemp("comfyui")
    models = root / "models"  # re-pointed at the workspace's models once the appliance has one
    server = FakeComfyUI(models, root / "output", root / "input").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def stack(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path], comfyui: FakeComfyUI
) -> Iterator[SupervisedAppliance]:
    def comfy_settings(ws: Workspace) -> None:
        comfyui.models = ws.models  # ComfyUI's models path is the workspace's models/ folder
        (ws.model_dir("checkpoints") / BASE_CHECKPOINT).write_bytes(b"read by ComfyUI, not by the tests")
        (ws.config / "comfy.yaml").write_text(
            f"strengths: [0, 0.5, 1.0]\nbases:\n  sd15: {{ckpt_name: {BASE_CHECKPOINT}}}\n", encoding="utf-8"
        )

    app = SupervisedAppliance.start(
        tmp_path_factory.mktemp("cp"),
        REPO / "supervisord.conf",
        tiny_models["sd15"],
        password="controlpilot-test-password",
        env={"LORAPILOT_COMFY_URL": comfyui.url},
        before_start=comfy_settings,
    )
    try:
        app.wait_for(lambda: app.healthz("controlpilot") == 200, "ControlPilot's /healthz")
        app.wait_until_running("trainpilot", "tagpilot", "controlpilot", "comfybridge")
        yield app
    finally:
        app.stop()
