"""The `comfyui` supervisord program: with a ComfyUI checkout in the image it starts with the
appliance, reads the workspace's models/ and writes to outputs/comfy/; the bridge finds it on
LORAPILOT_COMFYUI_PORT without any setting.

ComfyUI is not installable from the package registries, so the checkout's main.py here runs the
fake ComfyUI (lorapilot.testing.comfyui_server) on the command line `lorapilot-appliance comfyui`
gives ComfyUI; everything around it — supervisord, the launcher, the model-paths file — is real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from lorapilot.appliance.comfyui import prepare_launch
from lorapilot.comfy.client import ComfyClient
from lorapilot.comfy.settings import PORT_ENV, URL_ENV, load_settings
from lorapilot.testing.supervised_appliance import SupervisedAppliance
from lorapilot.workspace import Workspace

REPO = Path(__file__).resolve().parents[3]
MAIN_PY = "import runpy\nrunpy.run_module('lorapilot.testing.comfyui_server', run_name='__main__')\n"


def test_without_comfyui_the_launcher_says_how_to_get_it(tmp_path):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    with pytest.raises(FileNotFoundError, match="WITH_COMFYUI=1"):
        prepare_launch(ws, "127.0.0.1", 8188, folder=tmp_path / "nothing")


def test_an_installed_comfyui_runs_under_supervisord_on_the_workspace_models(
    tmp_path, tiny_models, monkeypatch
):
    checkout = tmp_path / "ComfyUI"
    checkout.mkdir()
    (checkout / "main.py").write_text(MAIN_PY)

    def a_lora(ws: Workspace) -> None:
        (ws.model_dir("loras") / "someone_elses.safetensors").write_bytes(b"x")

    app = SupervisedAppliance.start(
        tmp_path,
        REPO / "supervisord.conf",
        tiny_models["sd15"],
        env={"LORAPILOT_COMFYUI_DIR": str(checkout), "LORAPILOT_COMFYUI_AUTOSTART": "true"},
        before_start=a_lora,
    )
    try:
        installed = app.run("lorapilot-appliance", "comfyui", "--installed")
        assert installed.stdout.strip() == "true"
        app.wait_until_running("comfyui", "comfybridge")
        url = app.url("comfyui")
        app.wait_for(lambda: requests.get(f"{url}/system_stats", timeout=2).ok, "ComfyUI's /system_stats")
        loras = requests.get(f"{url}/object_info/LoraLoader", timeout=5).json()
        assert "someone_elses.safetensors" in loras["LoraLoader"]["input"]["required"]["lora_name"][0]
        paths = (app.workspace.config / "comfyui" / "extra_model_paths.yaml").read_text()
        assert f"base_path: {app.workspace.models}" in paths and "loras: loras" in paths
        assert (app.workspace.outputs / "comfy").is_dir()
        health = app.run("lorapilot-appliance", "health", "--config", str(app.config), check=False)
        assert f"comfyui: RUNNING {url}/system_stats answered 200" in health.stdout, health.stdout

        # the bridge's default URL is this ComfyUI: supervisord passes the appliance's environment on
        monkeypatch.delenv(URL_ENV, raising=False)
        monkeypatch.setenv(PORT_ENV, app.env[PORT_ENV])
        settings = load_settings(app.workspace)
        assert settings.url == url
        assert ComfyClient(settings.url).system_stats()
        app.ctl("stop", "comfyui")
        assert app.states()["comfyui"] == "STOPPED"
    finally:
        app.stop()
