"""A workspace with the tiny SD1.5 model, a demo dataset and a `tiny` profile, plus real daemons.

Daemons run as real `trainpilot daemon` processes in their own process group; every one a test
starts is stopped by its id when the test ends (SIGTERM, then SIGKILL of its group), so no
training process outlives a test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lorapilot.testing.datasets import write_demo_images
from lorapilot.workspace import Workspace

TRAINPILOT = shutil.which("trainpilot") or str(Path(sys.executable).with_name("trainpilot"))
TINY_PROFILE = """# the tiny SD1.5 model at 64 px: a few training steps take well under a second on a CPU
spec_version: 1
model:
  family: sd15
  path: /workspace/models/diffusers/tiny-sd15
  weight_dtype: fp32
network: {dim: 4, alpha: 4}
dataset_defaults:
  resolutions: [64]
  bucket: {enabled: false}
training:
  max_steps: 4
  batch_size: 1
  optimizer: adamw
  learning_rate: 1.0e-3
  mixed_precision: "no"
save:
  every_n_steps: 2
"""


def environment(ws: Workspace) -> dict[str, str]:
    # One BLAS/OpenMP thread: on a busy 2-core machine, spinning OpenMP threads make a tiny step
    # take seconds instead of milliseconds.
    return {
        **os.environ,
        "LORAPILOT_WORKSPACE": str(ws.root),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def ws(tmp_path: Path, tiny_models: dict[str, Path]) -> Workspace:
    workspace = Workspace.from_env(tmp_path / "ws").ensure()
    shutil.copytree(tiny_models["sd15"], workspace.model_dir("diffusers") / "tiny-sd15")
    write_demo_images(workspace.images / "1_demo", 4, size=(64, 64), caption="lpdemo,")
    (workspace.profiles / "tiny.yaml").write_text(TINY_PROFILE)
    return workspace


@pytest.fixture
def env(ws: Workspace) -> dict[str, str]:
    """The environment the test's trainpilot processes run in."""
    return environment(ws)


@pytest.fixture
def cli(ws: Workspace) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `trainpilot ARGS` as a user would."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TRAINPILOT, *args],
            capture_output=True,
            text=True,
            env=environment(ws),
            timeout=timeout,
            check=False,
        )

    return run


class Daemons:
    """Starts `trainpilot daemon` processes and guarantees they are gone afterwards."""

    def __init__(self, ws: Workspace, logs: Path) -> None:
        self.ws = ws
        self.logs = logs
        self.started: list[subprocess.Popen] = []

    def start(self, slots: str = "cpu", *options: str) -> subprocess.Popen:
        log = self.logs / f"daemon-{len(self.started)}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [TRAINPILOT, "daemon", "--gpus", slots, "--poll", "0.1", *options],
                env=environment(self.ws),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the teardown can reach its children
            )
        self.started.append(process)
        return process

    def log(self, index: int = -1) -> str:
        return (self.logs / f"daemon-{index % len(self.started)}.log").read_text()

    def stop(self, process: subprocess.Popen, timeout: float = 60) -> int:
        """SIGTERM, as supervisord stops it; the exit code once it has exited."""
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout)

    def wait_group_gone(self, process: subprocess.Popen, timeout: float = 60) -> None:
        """Wait until nothing of a dead daemon's process group is left (its training processes
        stop by themselves when their daemon dies)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError(f"processes of daemon {process.pid} still run {timeout:.0f} s after it died")

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)
            # whatever is left of its group: the fork server, a training process
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            if process.poll() is None:
                process.wait(timeout=10)


@pytest.fixture
def daemons(ws: Workspace, tmp_path: Path) -> Iterator[Daemons]:
    manager = Daemons(ws, tmp_path)
    try:
        yield manager
    finally:
        manager.close()


class Watch:
    """Reads the spool and the run folders the way a user's tools do, and waits on them."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def until(self, check: Callable[[], object], timeout: float = 120, what: str = "condition") -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def jobs(self) -> dict[str, list[str]]:
        """Job ids per spool folder."""
        return {
            state: sorted(p.stem for p in self.ws.job_dir(state).iterdir() if p.suffix == ".yaml")
            for state in ("incoming", "running", "done", "failed", "cancelled")
        }

    def status(self, name: str) -> dict:
        try:
            return json.loads((self.ws.outputs / name / "status.json").read_text())
        except (OSError, ValueError):
            return {}


@pytest.fixture
def watch(ws: Workspace) -> Watch:
    return Watch(ws)
