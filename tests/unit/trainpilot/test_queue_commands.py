"""The queue commands without a daemon: what a user sees when submitting and managing jobs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lorapilot.testing.datasets import write_demo_images
from lorapilot.workspace import Workspace

TRAINPILOT = shutil.which("trainpilot") or str(Path(sys.executable).with_name("trainpilot"))
QUICK = ("--profile", "quick_test", "--dataset", "demo")  # a hub model id: nothing to load here


@pytest.fixture
def ws(tmp_path) -> Workspace:
    workspace = Workspace.from_env(tmp_path / "ws").ensure()
    write_demo_images(workspace.images / "2_demo", 2)
    return workspace


@pytest.fixture
def cli(ws):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LORAPILOT_WORKSPACE": str(ws.root), "HF_HUB_OFFLINE": "1"}
        return subprocess.run(
            [TRAINPILOT, *args], check=False, capture_output=True, text=True, env=env, timeout=120
        )

    return run


def test_submit_queues_a_valid_config_and_prints_its_id(ws, cli):
    done = cli("submit", *QUICK, "--name", "first", "--priority", "3")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    assert (ws.job_dir("incoming") / f"{job_id}.yaml").is_file()
    view = json.loads(cli("status", "first", "--json").stdout)
    assert view["id"] == job_id and view["state"] == "queued" and view["position"] == 1
    assert view["priority"] == 3 and view["folder"] == str(ws.outputs / "first")


def test_an_invalid_config_is_refused_with_exit_2_and_nothing_is_queued(ws, cli):
    done = cli("submit", *QUICK, "--name", "bad", "--set", "training.learning_rate=-1")
    assert done.returncode == 2
    assert "learning_rate" in done.stderr and "Traceback" not in done.stderr
    assert not list(ws.job_dir("incoming").iterdir())


def test_a_name_clash_is_a_clear_error(cli):
    assert cli("submit", *QUICK, "--name", "same").returncode == 0
    again = cli("run", *QUICK, "--name", "same", "--detach")
    assert again.returncode == 2
    assert "a job named 'same' already exists (queued" in again.stderr
    assert "choose another --name" in again.stderr


def test_list_shows_queued_jobs_with_their_place_in_the_queue(cli):
    cli("submit", *QUICK, "--name", "low")
    cli("submit", *QUICK, "--name", "high", "--priority", "10")
    table = cli("list")
    assert table.returncode == 0
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0][:4] == ["ID", "NAME", "STATE", "PROGRESS"]
    assert [(r[1], r[2], r[3]) for r in rows[1:]] == [("low", "queued", "#2"), ("high", "queued", "#1")]
    views = json.loads(cli("list", "--json").stdout)
    assert [(v["name"], v["position"]) for v in views] == [("low", 2), ("high", 1)]


def test_cancel_then_retry_a_queued_job(ws, cli):
    cli("submit", *QUICK, "--name", "maybe")
    cancelled = cli("cancel", "maybe")
    assert cancelled.returncode == 0 and "cancelled maybe" in cancelled.stdout
    assert json.loads(cli("status", "maybe", "--json").stdout)["state"] == "cancelled"
    assert cli("cancel", "maybe").returncode == 2  # already cancelled
    retried = cli("retry", "maybe")
    assert retried.returncode == 0, retried.stderr
    assert [v["state"] for v in json.loads(cli("list", "--json").stdout)] == ["queued"]
    assert cli("retry", "maybe").returncode == 2  # only failed or cancelled jobs


def test_unknown_jobs_and_logs_of_queued_jobs_say_so(cli):
    missing = cli("status", "nothing")
    assert missing.returncode == 2 and "no job has the id or name 'nothing'" in missing.stderr
    cli("submit", *QUICK, "--name", "waiting")
    logs = cli("logs", "waiting")
    assert logs.returncode == 0 and "waiting has no log yet (queued)" in logs.stderr


def test_help_lists_every_command():
    done = subprocess.run([TRAINPILOT, "--help"], check=False, capture_output=True, text=True, timeout=60)
    commands = ("run", "submit", "list", "status", "logs", "cancel", "retry", "validate", "train", "daemon")
    assert all(command in done.stdout for command in commands)
