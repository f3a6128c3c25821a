"""The appliance under the repo's own supervisord.conf on a throwaway workspace, for tests.

The config file is copied byte for byte into a temporary folder beside its own `.run/` socket
folder (supervisord keeps its socket next to the config, and ControlPilot reaches it through
`%(here)s`), so a test never meets a natively running appliance's socket. Every web service gets a
free port; the tiny SD1.5 model and a small demo dataset are in the workspace. Stopping goes over
the socket, and by process group if supervisord hangs, so nothing is left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from lorapilot.appliance.health import supervisor_proxy
from lorapilot.testing.datasets import write_demo_images
from lorapilot.testing.web_client import ApplianceClient
from lorapilot.workspace import Workspace

BIN = Path(sys.executable).parent
TINY_SD15 = "/workspace/models/diffusers/tiny-sd15"  # where the demo model sits, as job configs name it
PORTS = {
    "tagpilot": "LORAPILOT_TAGPILOT_PORT",
    "controlpilot": "LORAPILOT_CONTROLPILOT_PORT",
    "comfyui": "LORAPILOT_COMFYUI_PORT",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SupervisedAppliance:
    workspace: Workspace
    config: Path
    env: dict[str, str]
    process: subprocess.Popen
    password: str

    @classmethod
    def start(
        cls,
        root: Path,
        supervisord_conf: Path,
        tiny_sd15: Path,
        *,
        password: str = "appliance-test-password",
        env: dict[str, str] | None = None,
        before_start: Callable[[Workspace], Any] | None = None,
    ) -> SupervisedAppliance:
        """Bootstrap a workspace under `root`, add the tiny model and demo images, start supervisord.

        `before_start` runs on the bootstrapped workspace before any program starts (settings files).
        """
        ws = Workspace.from_env(root / "ws")
        here = root / "sv"
        (here / ".run").mkdir(parents=True)
        config = here / "supervisord.conf"
        shutil.copyfile(supervisord_conf, config)
        full_env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "LORAPILOT_WORKSPACE": str(ws.root),
            "LORAPILOT_BIND": "127.0.0.1",
            **{variable: str(free_port()) for variable in PORTS.values()},
            "LORAPILOT_COMFYUI_AUTOSTART": "false",
            "LORAPILOT_SSH_AUTOSTART": "false",
            "LORAPILOT_RAY_AUTOSTART": "false",
            "LORAPILOT_TRAINPILOT_AUTOSTART": "true",
            "LORAPILOT_PASSWORD": password,
            "HF_HUB_OFFLINE": "1",
            **(env or {}),
        }
        boot = subprocess.run(
            [str(BIN / "lorapilot-appliance"), "bootstrap", "--workspace", str(ws.root)],
            env=full_env,
            capture_output=True,
            text=True,
            check=False,
        )
        if boot.returncode != 0:
            raise AssertionError(f"lorapilot-appliance bootstrap failed:\n{boot.stderr}")
        shutil.copytree(tiny_sd15, ws.model_dir("diffusers") / "tiny-sd15")
        write_demo_images(ws.images / "1_demo", 4, size=(64, 64), caption="lpdemo,")
        if before_start is not None:
            before_start(ws)
        process = subprocess.Popen(
            [str(BIN / "supervisord"), "-c", str(config)],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return cls(ws, config, full_env, process, password)

    def stop(self) -> None:
        try:
            supervisor_proxy(self.config).supervisor.shutdown()
            self.process.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    # -- talking to it ----------------------------------------------------------------------------
    def url(self, program: str) -> str:
        return f"http://127.0.0.1:{self.env[PORTS[program]]}"

    def client(self, program: str = "controlpilot") -> ApplianceClient:
        client = ApplianceClient(self.url(program))
        reply = client.login(self.password)
        if not reply.ok:
            raise AssertionError(f"login to {program} failed: {reply.status_code} {reply.text}")
        return client

    def healthz(self, program: str) -> int | None:
        try:
            return requests.get(f"{self.url(program)}/healthz", timeout=2).status_code
        except requests.RequestException:
            return None

    def states(self) -> dict[str, str]:
        try:
            infos = supervisor_proxy(self.config).supervisor.getAllProcessInfo()
        except OSError:  # the socket is not there yet
            return {}
        return {info["name"]: info["statename"] for info in infos}

    def states_pid(self, program: str) -> int:
        """The process id supervisord reports for `program` (0 when it is not running)."""
        return int(supervisor_proxy(self.config).supervisor.getProcessInfo(program)["pid"])

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

    def wait_for(self, predicate: Callable[[], Any], what: str, timeout: float = 120.0, every: float = 0.25):
        """Poll until `predicate` is truthy; fail with the program states and the logs' tails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except (OSError, requests.ConnectionError):
                value = None
            if value:
                return value
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"supervisord exited ({code}) while waiting for {what}")
            time.sleep(every)
        raise AssertionError(f"timed out waiting for {what}; states {self.states()}\n{self.log_tails()}")

    def wait_until_running(self, *programs: str, timeout: float = 120.0) -> dict[str, str]:
        return self.wait_for(
            lambda: (s := self.states()) and all(s.get(p) == "RUNNING" for p in programs) and s,
            f"{', '.join(programs)} RUNNING",
            timeout=timeout,
        )

    def log_tails(self, chars: int = 2000) -> str:
        tails = []
        for log in sorted(self.workspace.logs.glob("*.log")):
            tails.append(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(tails)
