"""`trainpilot run` as the guide's A/B example types it, on a machine where no daemon runs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys


def test_run_without_a_daemon_trains_in_the_foreground(ws, cli, watch):
    done = cli("run", "--dataset", "demo", "--profile", "tiny", "--name", "test_a")
    assert done.returncode == 0, done.stderr
    assert "no trainpilot daemon is running" in done.stderr
    assert f"LoRA:    {ws.outputs / 'test_a' / 'test_a.safetensors'}" in done.stdout
    assert (ws.outputs / "test_a" / "test_a.safetensors").is_file()
    assert len(watch.jobs()["done"]) == 1
    assert json.loads(cli("status", "test_a", "--json").stdout)["status"]["state"] == "done"


def test_a_dataset_with_no_usable_image_fails_with_its_message_and_no_traceback(ws, cli, watch):
    unreadable = ws.images / "1_unreadable"
    unreadable.mkdir()
    for name in ("a.jpg", "b.png"):
        (unreadable / name).write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 10)
    skip = ("--set", "training.skip_bad_images=true")  # skipping every image leaves none: DatasetError
    failed = cli("run", "--dataset", "unreadable", "--profile", "tiny", "--name", "empty", *skip)

    assert failed.returncode == 1
    message = f"dataset folder {unreadable} has no usable images: all 2 could not be read"
    assert f"empty failed: {message}" in failed.stderr
    assert "Traceback" not in failed.stderr and "DatasetError" not in failed.stderr
    [job_id] = watch.jobs()["failed"]
    assert (ws.job_dir("failed") / f"{job_id}.error").read_text().startswith(message)
    assert watch.status("empty")["state"] == "failed" and watch.status("empty")["error"].startswith(message)


def test_output_piped_into_head_ends_quietly(tmp_path):
    """`trainpilot list --json | head -1`: the closed pipe is the reader's choice, not an internal error."""
    env = os.environ | {"LORAPILOT_WORKSPACE": str(tmp_path / "ws")}
    spool = tmp_path / "ws" / "jobs" / "incoming"
    spool.mkdir(parents=True)
    for i in range(400):  # more than a pipe buffer of JSON
        (spool / f"job{i}.yaml").write_text("datasets: [{folder: person}]\n")
    shell = f"{shlex.quote(sys.executable)} -m lorapilot.trainpilot.cli list --json | head -c 10"
    result = subprocess.run(
        ["bash", "-c", shell], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout == '[\n {\n  "id'[:10]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
