"""Issue 20 acceptance 3: on a RunPod pod (RUNPOD_POD_ID set) the links ControlPilot's pages show to
TagPilot and ComfyUI are RunPod's proxy addresses, which open from the user's browser; a public-URL
pattern that cannot make links stops ControlPilot with one line naming the variable.

ControlPilot runs as supervisord runs it (its `controlpilot` command, gunicorn, a real port); the
browser is headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from lorapilot.testing.supervised_appliance import free_port
from lorapilot.workspace import Workspace

BIN = Path(sys.executable).parent
PASSWORD = "public-links-test-password"


def _environment(ws: Workspace, **extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if k not in ("RUNPOD_POD_ID", "LORAPILOT_PUBLIC_URL")}
    return {
        **inherited,
        "LORAPILOT_WORKSPACE": str(ws.root),
        "LORAPILOT_PASSWORD": PASSWORD,
        "LORAPILOT_TAGPILOT_PORT": "7861",
        "LORAPILOT_COMFYUI_PORT": "8188",
        **extra,
    }


@pytest.fixture
def controlpilot_on_a_pod(tmp_path) -> Iterator[str]:
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "controlpilot"), "--host", "127.0.0.1", "--port", str(port), "--workspace", str(ws.root)],
        env=_environment(ws, RUNPOD_POD_ID="abc"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"{url}/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        assert process.poll() is None, f"controlpilot exited {process.returncode}"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_on_a_runpod_pod_the_tagpilot_and_comfyui_links_are_runpod_s_proxy(page, controlpilot_on_a_pod):
    from playwright.sync_api import expect  # noqa: PLC0415

    url = controlpilot_on_a_pod
    page.goto(url + "/login")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(url + "/")
    expect(page.locator("#tagpilot-link")).to_have_attribute("href", "https://abc-7861.proxy.runpod.net/")
    expect(page.locator("#comfyui-link")).to_have_attribute("href", "https://abc-8188.proxy.runpod.net/")
    page.shot("public-links-dashboard")
    page.click("#models-link")
    expect(page).to_have_url(url + "/models")
    expect(page.locator("#tagpilot-link")).to_have_attribute("href", "https://abc-7861.proxy.runpod.net/")
    expect(page.locator("#comfyui-link")).to_have_attribute("href", "https://abc-8188.proxy.runpod.net/")


def test_a_public_url_without_a_port_placeholder_stops_controlpilot_naming_it(tmp_path):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    done = subprocess.run(
        [str(BIN / "controlpilot"), "--port", "0", "--workspace", str(ws.root)],
        env=_environment(ws, LORAPILOT_PUBLIC_URL="https://gpu.example.com/"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "controlpilot: LORAPILOT_PUBLIC_URL='https://gpu.example.com/' cannot make links" in done.stderr
    assert "{port}" in done.stderr and "Traceback" not in done.stderr
