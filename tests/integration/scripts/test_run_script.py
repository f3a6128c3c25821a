"""`scripts/run` on a fresh workspace, as a new user's first command: every line it prints is progress or
an action, the logs hold no third-party noise, and the demo trains on real photographs that TagPilot
auto-captioned.

The script runs from a copy of the checkout's run files (the script and `supervisord.conf`, with
this test's `.venv`), so its supervisord socket is the copy's own and an appliance a developer runs
from the checkout is never touched. `scripts/bootstrap` is skipped: the suite's venv is already set up.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lorapilot.appliance.demo_dataset import DEMO_DATASET_ENV

REPO = Path(__file__).resolve().parents[3]
VENV = Path(sys.executable).parent.parent

# Each line scripts/run may print: its own progress, the workspace bootstrap, supervisorctl's status
# table, `trainpilot run` following the job, and the closing list of addresses and commands.
ALLOWED_OUTPUT = [
    r"\[run\] .+",
    r"\[lorapilot\] .+",
    r"(comfybridge|comfyui|controlpilot|idlestop|ray|sshd|tagpilot|trainpilot)"
    r" +(RUNNING|STOPPED|STARTING) .*",
    r"queued demo-\S+ \(id \S+\)",
    r"demo-\S+: .*",  # the job's state and its progress bar
    r"(LoRA|samples|logs): +/\S+",
    r"  (TagPilot|ControlPilot|password|queue a run|services|stop it all): .+",
    r"",
]
# What the programs' logs may hold: LoRA Pilot's own records and gunicorn's.
ALLOWED_LOG = [
    r"\d{4}-\d\d-\d\d [\d:,]+ [A-Z]+ lorapilot\.\S+: .*",  # the daemon's and TagPilot's records
    r"[A-Z]+ job \S+: lorapilot\.\S+: .*",  # a job's records, relayed by the daemon
    r"\[\d{4}-\d\d-\d\d [\d:]+ [+-]\d{4}\] \[\d+\] \[[A-Z]+\] .*",  # gunicorn
    r"127\.0\.0\.1 - - \[.*\] \"[A-Z]+ /\S* HTTP/1\.1\" \d{3} .*",  # gunicorn's access log
    r"",
]


def unexpected(lines: list[str], allowed: list[str]) -> list[str]:
    patterns = [re.compile(pattern) for pattern in allowed]
    return [line for line in lines if not any(p.fullmatch(line) for p in patterns)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def checkout_copy(root: Path) -> Path:
    """The files scripts/run uses from its checkout, beside the suite's venv."""
    checkout = root / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "run", checkout / "scripts" / "run")
    shutil.copy2(REPO / "supervisord.conf", checkout / "supervisord.conf")
    (checkout / ".venv").symlink_to(VENV)
    return checkout


def run_env(workspace: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("LORAPILOT_PASSWORD", "LORAPILOT_DEMO_MODEL", DEMO_DATASET_ENV)
        and not key.startswith("PYTEST")
    }
    return env | {
        "PYTHONPATH": str(REPO / "services"),
        "LORAPILOT_SKIP_BOOTSTRAP": "1",
        "LORAPILOT_WORKSPACE": str(workspace),
        "LORAPILOT_TAGPILOT_PORT": str(free_port()),
        "LORAPILOT_CONTROLPILOT_PORT": str(free_port()),
        "LORAPILOT_COMFYUI_PORT": str(free_port()),
        **extra,
    }


def stop_appliance(checkout: Path, env: dict[str, str], run_group: int) -> None:
    """supervisorctl shutdown, then wait for supervisord by its PID; kill its process group if it hangs."""
    pid_file = checkout / ".run" / "supervisord.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    subprocess.run(
        [str(VENV / "bin" / "supervisorctl"), "-c", str(checkout / "supervisord.conf"), "shutdown"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(run_group, signal.SIGKILL)  # supervisord was started inside scripts/run's process group


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_first_run_prints_only_progress_and_actions_and_trains_on_captioned_photos(tmp_path):
    checkout = checkout_copy(tmp_path)
    workspace = tmp_path / "workspace"
    env = run_env(workspace)
    process = subprocess.Popen(
        [str(checkout / "scripts" / "run")],
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=1100)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stop_appliance(checkout, env, process.pid)

    assert process.returncode == 0, output[-5000:]
    lines = re.split(r"\r\n|\r|\n", output)
    assert unexpected(lines, ALLOWED_OUTPUT) == [], output[-5000:]
    for log in ("trainpilot.log", "tagpilot.log"):
        logged = (workspace / "logs" / log).read_text().splitlines()
        assert unexpected(logged, ALLOWED_LOG) == [], log

    # The demo: the 20 sample photographs went through TagPilot and were auto-captioned there.
    assert "[run] uploaded 20/20 (20 in the dataset)" in lines
    assert "[run] captioned 20 of the 20 images without a caption" in lines
    exported = workspace / "datasets" / "images" / "8_demo"
    assert sorted(path.stem for path in exported.glob("*.txt")) == sorted(
        path.stem for path in exported.iterdir() if path.suffix != ".txt"
    )
    assert {"astronaut", "chelsea", "coffee", "rocket"} <= {path.stem for path in exported.iterdir()}
    assert all("photo" in path.read_text() for path in exported.glob("*.txt"))  # the tagger's tags
    [lora] = [Path(line.split()[1]) for line in lines if line.startswith("LoRA:")]
    assert lora.parent.parent == workspace / "outputs" and lora.stat().st_size > 0


def test_a_wrong_demo_dataset_stops_the_run_before_anything_starts(tmp_path):
    checkout = checkout_copy(tmp_path)
    empty = tmp_path / "my-photos"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image\n")
    env = run_env(tmp_path / "workspace", **{DEMO_DATASET_ENV: str(empty)})

    done = subprocess.run(
        [str(checkout / "scripts" / "run")],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1
    assert f"{DEMO_DATASET_ENV}={empty}: no images in it" in done.stderr
    assert not (checkout / ".run").exists() and not (tmp_path / "workspace").exists()  # nothing started
