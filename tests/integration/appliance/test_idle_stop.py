"""Idle stop on the running appliance (acceptance 1 of issue 20): the real supervisord, trainpilot
daemon, idle-stop watcher and ControlPilot on the tiny model. Turned on from ControlPilot with a
short idle time and a command that appends to a marker file: queued jobs finish, a job submitted
during the countdown cancels it, then the marker is written once, after trainpilot was stopped
(every job saved); a job queued afterwards on the still-running machine starts trainpilot again,
and the dashboard's banner counts down and cancels."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import expect

from lorapilot.testing.browser import log_in
from lorapilot.testing.supervised_appliance import TINY_SD15, SupervisedAppliance

REPO = Path(__file__).resolve().parents[3]
IDLE_MINUTES = 0.15  # 9 s
MARKER = "idle-marker"
JOB = {
    "spec_version": 1,
    "model": {"family": "sd15", "path": TINY_SD15, "weight_dtype": "fp32"},
    "network": {"dim": 4, "alpha": 4},
    "datasets": [{"folder": "demo", "resolutions": [64], "bucket": {"enabled": False}}],
    "training": {"max_steps": 2, "batch_size": 1, "optimizer": "adamw", "mixed_precision": "no"},
    "save": {"every_n_steps": 2},
}


@pytest.fixture
def appliance(tmp_path: Path, tiny_models: dict[str, Path]):
    app = SupervisedAppliance.start(
        tmp_path, REPO / "supervisord.conf", tiny_models["sd15"], env={"LORAPILOT_IDLE_CHECK_S": "0.5"}
    )
    try:
        app.wait_until_running("trainpilot", "controlpilot", "idlestop")
        app.wait_for(lambda: app.healthz("controlpilot") == 200, "ControlPilot's /healthz")
        yield app
    finally:
        app.stop()


def submit(client, name: str) -> None:
    client.ok("POST", "/api/jobs", json={"config": yaml.safe_dump(JOB), "name": name})


def done(app: SupervisedAppliance, *names: str) -> bool:
    finished = {path.stem for path in app.workspace.job_dir("done").glob("*.yaml")}
    return len(finished) >= len(names) and all(
        (app.workspace.outputs / n / f"{n}.safetensors").exists() for n in names
    )


def idle(client) -> dict:
    return client.ok("GET", "/api/idle-stop")


def phase(client) -> str | None:
    state = idle(client)["state"]
    return state["phase"] if state else None


def test_idle_stop_runs_once_after_the_queue_and_a_job_during_the_countdown_cancels_it(appliance, page):
    client = appliance.client("controlpilot")
    marker = appliance.workspace.root / MARKER
    appliance.wait_for(lambda: phase(client) == "off", "the watcher's first check")

    refused = client.call("PUT", "/api/idle-stop/settings", json={"mode": "idle", "idle_minutes": 1})
    assert refused.status_code == 400
    assert "idle stop has no action" in refused.json()["error"] and "poweroff" in refused.json()["error"]

    for k in range(3):
        submit(client, f"queued{k}")
    command = f'echo fired >> "$LORAPILOT_WORKSPACE/{MARKER}"'
    saved = client.ok(
        "PUT",
        "/api/idle-stop/settings",
        json={"mode": "idle", "idle_minutes": IDLE_MINUTES, "command": command},
    )
    assert saved["saved"] == "/workspace/config/idle.yaml"
    assert appliance.wait_for(lambda: phase(client) == "busy", "the queue holding idle stop back")
    assert "queued or running" in " ".join(idle(client)["state"]["busy"])

    appliance.wait_for(
        lambda: done(appliance, "queued0", "queued1", "queued2"), "three jobs done", timeout=240
    )
    first = appliance.wait_for(
        lambda: (v := idle(client)["state"]) and v["phase"] == "countdown" and v, "the countdown", every=0.1
    )
    assert not marker.exists()
    submit(client, "during")
    appliance.wait_for(lambda: phase(client) == "busy", "the new job cancelling the countdown", every=0.1)
    appliance.wait_for(
        lambda: done(appliance, "queued0", "queued1", "queued2", "during"), "4 jobs", timeout=180
    )
    finished = time.time()

    appliance.wait_for(marker.exists, "the marker file", timeout=90)
    assert marker.stat().st_mtime > first["deadline"] + 1  # the first countdown never ran out
    assert marker.stat().st_mtime >= finished + IDLE_MINUTES * 60 - 2
    assert appliance.states()["trainpilot"] == "STOPPED"  # jobs saved before the command ran
    assert phase(client) == "stopped"
    time.sleep(3)  # six more checks
    assert marker.read_text() == "fired\n"

    # the machine is still up: a new job starts trainpilot again, and the next countdown shows in the page
    submit(client, "after")
    appliance.wait_for(lambda: done(appliance, "queued0", "queued1", "queued2", "during", "after"), "job 5")
    appliance.wait_for(lambda: phase(client) == "countdown", "the second countdown", every=0.1)
    client.ok("POST", "/api/idle-stop/postpone", json={"minutes": 30})
    log_in(page, appliance.url("controlpilot"), appliance.password)
    banner = page.locator("#idle-banner")
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_contain_text("Idle stop: in 3")  # 30 minutes and change
    expect(banner).to_contain_text("run the configured command")
    page.shot("idle-stop-countdown")
    page.locator("#idle-cancel").click()
    expect(banner).to_be_hidden()
    appliance.wait_for(lambda: phase(client) == "cancelled", "the watcher honouring the cancel")
    assert marker.read_text() == "fired\n"
    assert page.errors == []
