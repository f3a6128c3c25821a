"""A real TagPilot process (gunicorn, the `tagpilot` console script) on a free loopback port.

One server per test session; tests make their own datasets. It runs with small limits so the
limit tests stay fast, a short captioner idle time so release-when-idle is observable, and TMPDIR
pointed at an empty folder outside the workspace that must stay empty.
"""

from __future__ import annotations

import os
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

from lorapilot.testing.web_client import ApplianceClient
from lorapilot.workspace import Workspace

PASSWORD = "tagpilot-test-password-4711"
MAX_UPLOAD_MB, MAX_IMAGE_MB, MAX_ZIP_MB = 12, 4, 32
CAPTIONER_IDLE_S = 3


@dataclass
class Server:
    url: str
    pid: int
    workspace: Workspace
    tmpdir: Path
    log: Path
    password: str = PASSWORD
    max_upload_mb: int = MAX_UPLOAD_MB
    max_image_mb: int = MAX_IMAGE_MB
    captioner_idle_s: float = CAPTIONER_IDLE_S


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("tagpilot")
    workspace = Workspace.from_env(root / "ws").ensure()
    tmpdir = root / "system-tmp"
    tmpdir.mkdir()
    port = _free_port()
    log = root / "tagpilot.log"
    command = [
        str(Path(sys.executable).parent / "tagpilot"),
        f"--port={port}",
        f"--workspace={workspace.root}",
        f"--max-upload-mb={MAX_UPLOAD_MB}",
        f"--max-image-mb={MAX_IMAGE_MB}",
        f"--max-zip-mb={MAX_ZIP_MB}",
        f"--captioner-idle-s={CAPTIONER_IDLE_S}",
    ]
    env = os.environ | {"LORAPILOT_PASSWORD": PASSWORD, "TMPDIR": str(tmpdir), "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, process, log)
        yield Server(url, process.pid, workspace, tmpdir, log)
    finally:
        _stop(process)
    # over the whole session: the system temp folder stayed empty, and nothing appeared beside the workspace
    assert list(tmpdir.iterdir()) == []
    assert sorted(path.name for path in root.iterdir()) == ["system-tmp", "tagpilot.log", "ws"]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tagpilot exited with {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"tagpilot did not answer /healthz within 60 s:\n{log.read_text()}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM by PID (gunicorn stops its worker), SIGKILL if it lingers; never by name."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@pytest.fixture
def client(server: Server) -> ApplianceClient:
    client = ApplianceClient(server.url)
    assert client.login(server.password).ok
    return client
