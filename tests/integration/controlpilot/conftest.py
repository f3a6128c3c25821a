"""The appliance under the repo's own supervisord.conf (trainpilot daemon, TagPilot, ControlPilot,
the ComfyUI bridge) on a throwaway workspace; the tests drive ControlPilot.

Like tests/integration/appliance/conftest.py: the config is copied byte for byte beside its own
`.run/` socket folder, so ControlPilot's `--supervisor-config %(here)s/...` points at the copy.
Everything is stopped over the socket (or by process group if supervisord hangs).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from lorapilot.appliance.health import supervisor_proxy
from lorapilot.testing.datasets import write_demo_images
from lorapilot.testing.web_client import ApplianceClient
from lorapilot.workspace import Workspace

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
PASSWORD = "controlpilot-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    url: str
    workspace: Workspace
    config: Path
    env: dict[str, str]
    password: str = PASSWORD

    def states(self) -> dict[str, str]:
        infos = supervisor_proxy(self.config).supervisor.getAllProcessInfo()
        return {info["name"]: info["statename"] for info in infos}

    def client(self) -> ApplianceClient:
        client = ApplianceClient(self.url)
        assert client.login(self.password).ok
        return client


def wait_for(predicate, what: str, timeout: float = 60.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, requests.ConnectionError):
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="package")  # one appliance for this folder's tests
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("cp")
    ws = Workspace.from_env(root / "ws")
    here = root / "sv"
    (here / ".run").mkdir(parents=True)
    config = here / "supervisord.conf"
    shutil.copyfile(REPO / "supervisord.conf", config)
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "LORAPILOT_WORKSPACE": str(ws.root),
        "LORAPILOT_BIND": "127.0.0.1",
        "LORAPILOT_TAGPILOT_PORT": str(free_port()),
        "LORAPILOT_CONTROLPILOT_PORT": str(port),
        "LORAPILOT_COMFYUI_PORT": str(free_port()),
        "LORAPILOT_PASSWORD": PASSWORD,
        "HF_HUB_OFFLINE": "1",
    }
    boot = subprocess.run(
        [str(BIN / "lorapilot-appliance"), "bootstrap", "--workspace", str(ws.root)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert boot.returncode == 0, boot.stderr
    shutil.copytree(tiny_models["sd15"], ws.model_dir("diffusers") / "tiny-sd15")
    write_demo_images(ws.images / "1_demo", 4, size=(64, 64), caption="lpdemo,")
    supervisord = subprocess.Popen(
        [str(BIN / "supervisord"), "-c", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    stack = Stack(f"http://127.0.0.1:{port}", ws, config, env)
    try:
        wait_for(lambda: requests.get(f"{stack.url}/healthz", timeout=2).ok, "ControlPilot's /healthz")
        wait_for(
            lambda: (
                (s := stack.states())
                and s.get("trainpilot") == s.get("tagpilot") == s.get("controlpilot") == "RUNNING"
            ),
            "trainpilot, tagpilot and controlpilot RUNNING",
        )
        yield stack
    finally:
        try:
            supervisor_proxy(config).supervisor.shutdown()
            supervisord.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(supervisord.pid, signal.SIGKILL)
            supervisord.wait(timeout=10)
        log = ws.logs / "controlpilot.log"  # supervisord runs ControlPilot as a program of its own
        if log.is_file():
            sys.stderr.write(log.read_text()[-2000:])
