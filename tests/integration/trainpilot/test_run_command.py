"""`trainpilot run` as the guide's A/B example types it, on a machine where no daemon runs."""

from __future__ import annotations

import json


def test_run_without_a_daemon_trains_in_the_foreground(ws, cli, watch):
    done = cli("run", "--dataset", "demo", "--profile", "tiny", "--name", "test_a")
    assert done.returncode == 0, done.stderr
    assert "no trainpilot daemon is running" in done.stderr
    assert f"LoRA:    {ws.outputs / 'test_a' / 'test_a.safetensors'}" in done.stdout
    assert (ws.outputs / "test_a" / "test_a.safetensors").is_file()
    assert len(watch.jobs()["done"]) == 1
    assert json.loads(cli("status", "test_a", "--json").stdout)["status"]["state"] == "done"
