"""What the idle-stop watcher counts as busy besides the queue: a prompt in ComfyUI's `/queue` (the
fake ComfyUI over HTTP, at the URL of config/comfy.yaml) and TagPilot's captioning mark; a ComfyUI
that does not answer runs nothing."""

from __future__ import annotations

from lorapilot.appliance.idle_stop import Observer
from lorapilot.testing.comfyui_server import FakeComfyUI
from lorapilot.web.activity import CAPTIONING, ActivityLog
from lorapilot.web.state_db import WebStateDb
from lorapilot.workspace import Workspace


def test_a_running_comfyui_prompt_and_captioning_keep_the_appliance_busy(tmp_path, monkeypatch):
    monkeypatch.delenv("LORAPILOT_COMFY_URL", raising=False)
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    comfy = FakeComfyUI(ws.models, tmp_path / "out", tmp_path / "in").start()
    try:
        (ws.config / "comfy.yaml").write_text(f"url: {comfy.url}\n")
        observer = Observer(ws)
        assert observer.observe().busy == {}
        comfy.running["p1"] = [0, "p1", {}, {}, []]  # what `/queue` lists while a prompt runs
        assert observer.observe().busy == {"comfyui": "ComfyUI is running a prompt"}
        comfy.running.clear()
        with ActivityLog(WebStateDb.of(ws)).busy(CAPTIONING):
            assert observer.observe().busy == {CAPTIONING: "TagPilot is captioning"}
    finally:
        comfy.stop()
    assert observer.observe().busy == {}  # ComfyUI gone: nothing running there
