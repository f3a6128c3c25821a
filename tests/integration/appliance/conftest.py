"""The appliance under the repo's own supervisord.conf, on a throwaway workspace.

The config file is copied byte for byte into a temporary folder beside its `.run/` socket folder
(supervisord keeps its socket next to the config), so a test never meets a natively running
appliance's socket.
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

from lorapilot.testing.datasets import write_demo_images
from lorapilot.workspace import Workspace

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Appliance:
    workspace: Workspace
    config: Path
    env: dict[str, str]
    process: subprocess.Popen

    def ctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.run("supervisorctl", "-c", str(self.config), *args, check=check)

    def run(self, program: str, *args: str, check: bool = True, timeout: float = 300):
        command = [str(BIN / program), *args]
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def states(self) -> dict[str, str]:
        lines = self.ctl("status").stdout.splitlines()
        return {line.split()[0]: line.split()[1] for line in lines if len(line.split()) > 1}

    def wait_for(self, predicate, what: str, timeout: float = 120.0, every: float = 0.25):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"supervisord exited ({code}) while waiting for {what}")
            time.sleep(every)
        log = self.workspace.logs / "trainpilot.log"
        tail = log.read_text()[-3000:] if log.is_file() else "(no trainpilot log)"
        raise AssertionError(f"timed out waiting for {what}; states {self.states()}\n{tail}")


@pytest.fixture
def appliance(tmp_path: Path, tiny_models: dict[str, Path]) -> Iterator[Appliance]:
    ws = Workspace.from_env(tmp_path / "ws")
    here = tmp_path / "sv"
    (here / ".run").mkdir(parents=True)
    config = here / "supervisord.conf"
    shutil.copyfile(REPO / "supervisord.conf", config)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "LORAPILOT_WORKSPACE": str(ws.root),
        "LORAPILOT_BIND": "127.0.0.1",
        "LORAPILOT_TAGPILOT_PORT": str(free_port()),
        "LORAPILOT_CONTROLPILOT_PORT": str(free_port()),
        "LORAPILOT_COMFYUI_PORT": str(free_port()),
        "LORAPILOT_PASSWORD": "appliance-test-password",
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
    process = subprocess.Popen(
        [str(BIN / "supervisord"), "-c", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    app = Appliance(ws, config, env, process)
    try:
        yield app
    finally:
        app.ctl("shutdown")
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
