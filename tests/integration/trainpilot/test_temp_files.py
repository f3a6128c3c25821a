"""The trainer's temporary files stay in the workspace, and what a killed daemon left is swept."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

KILLS = 3


def _entries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


def _temp_folders(ws) -> list[str]:
    """The multiprocessing and per-process temp folders under the workspace's temp area."""
    return sorted(str(p.relative_to(ws.tmp)) for p in ws.tmp.rglob("pymp-*"))


@pytest.mark.slow
def test_killed_daemons_leave_nothing_in_tmpdir_and_the_next_start_sweeps_theirs(
    ws, cli, daemons, watch, monkeypatch
):
    """Issue 16 finding 7: each SIGKILLed daemon left a /tmp/pymp-* folder behind."""
    private = ws.root.parent / "private-tmp"  # outside the workspace: nothing may land here
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    args = ["--profile", "tiny", "--dataset", "demo", "--name", "killed", "--set", "training.max_steps=400"]
    assert cli("submit", *args, "--set", "save.every_n_steps=2").returncode == 0

    for round_ in range(KILLS + 1):
        started = time.time()
        daemon = daemons.start()

        def training_in_this_round(started: float = started) -> bool:
            status = watch.status("killed")
            updated = status.get("updated_at")
            fresh = updated is not None and datetime.fromisoformat(updated).timestamp() > started
            return fresh and bool(status.get("pid")) and status.get("step", 0) > 0

        watch.until(training_in_this_round, timeout=180, what=f"training in round {round_}")
        if round_ < KILLS:
            daemon.kill()  # SIGKILL: no finaliser runs
            daemon.wait(timeout=30)
            daemons.wait_group_gone(daemon)

    leftovers = _entries(private)
    assert not leftovers, f"the trainer wrote to the system temp folder: {leftovers}"
    live = _temp_folders(ws)
    assert len(live) == 1, f"expected the live daemon's process pool folder only: {live}"
    assert daemons.stop(daemon) == 0
    assert _temp_folders(ws) == [], "a daemon that stopped cleanly left its temp folder"
    assert _entries(private) == [], "a clean stop wrote to the system temp folder"
