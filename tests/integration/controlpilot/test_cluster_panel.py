"""In the browser, on a real ControlPilot process: the Cluster panel stays hidden while cluster mode is
off, and once config/cluster.yaml names a Ray head it shows the daemon's snapshot: two nodes, their
GPUs, and the job running on one of them (a link to its page)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from lorapilot.cluster.nodes import ClusterNode, ClusterView, write_cluster_view
from lorapilot.testing.browser import log_in
from lorapilot.testing.supervised_appliance import free_port
from lorapilot.workspace import Workspace

PASSWORD = "cluster-panel-password"


@pytest.fixture
def controlpilot(tmp_path: Path) -> Iterator[tuple[str, Workspace]]:
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LORAPILOT_RAY_ADDRESS"}
    env |= {"LORAPILOT_PASSWORD": PASSWORD, "HF_HUB_OFFLINE": "1"}
    command = [str(Path(sys.executable).parent / "controlpilot"), f"--port={port}", f"--workspace={ws.root}"]
    log = tmp_path / "controlpilot.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _healthy(url):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url, ws
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).ok
    except requests.RequestException:
        return False


def test_the_cluster_panel_shows_the_nodes_and_the_job_on_each(page, controlpilot):
    from playwright.sync_api import expect  # noqa: PLC0415

    url, ws = controlpilot
    log_in(page, url, PASSWORD)
    expect(page.locator("#jobs-table")).to_be_visible()
    page.wait_for_timeout(500)  # the panel's first answer has come: cluster mode is off
    expect(page.locator("#cluster-panel")).to_be_hidden()

    ws.cluster_config.write_text("cluster:\n  ray_address: 10.0.0.1:6379\n")
    expect(page.locator("#cluster-panel")).to_be_visible(timeout=10_000)
    expect(page.locator("#cluster-summary")).to_contain_text("no snapshot of the cluster yet")

    nodes = [
        ClusterNode(name="head-box", node_id="a1", address="10.0.0.1", alive=True, gpus=1, cpus=16, jobs=[]),
        ClusterNode(
            name="rented-pod-2",
            node_id="b2",
            address="10.0.0.7",
            alive=True,
            gpus=8,
            cpus=64,
            jobs=["portrait"],
        ),
    ]
    taken = datetime.now(UTC)
    write_cluster_view(ws, ClusterView(ray_address="10.0.0.1:6379", updated_at=taken, nodes=nodes))
    rows = page.locator("#cluster-table tbody tr")
    expect(rows).to_have_count(2, timeout=10_000)
    expect(page.locator("#cluster-summary")).to_contain_text("Ray at 10.0.0.1:6379: 2 of 2 nodes up, 9 GPUs")
    expect(rows.nth(0).locator("td")).to_have_text(["head-box", "10.0.0.1", "up", "1", "16", "-"])
    expect(rows.nth(1).locator("td")).to_have_text(["rented-pod-2", "10.0.0.7", "up", "8", "64", "portrait"])
    expect(rows.nth(1).locator("a")).to_have_attribute("href", "/jobs/portrait")
    page.shot("cluster-01-two-nodes")
    assert page.errors == []
