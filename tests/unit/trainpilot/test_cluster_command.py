"""`trainpilot cluster`: what a user sees with cluster mode off, before the daemon's first snapshot,
with a snapshot of two nodes, and when the snapshot is old."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lorapilot.cluster.nodes import ClusterNode, ClusterView, write_cluster_view
from lorapilot.workspace import Workspace

TRAINPILOT = shutil.which("trainpilot") or str(Path(sys.executable).with_name("trainpilot"))


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace.from_env(tmp_path / "ws").ensure()


def trainpilot(ws: Workspace, *args: str, address: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LORAPILOT_RAY_ADDRESS"}
    env["LORAPILOT_WORKSPACE"] = str(ws.root)
    if address:
        env["LORAPILOT_RAY_ADDRESS"] = address
    return subprocess.run(
        [TRAINPILOT, "cluster", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def two_nodes(ws: Workspace, age_s: float = 1.0) -> None:
    write_cluster_view(
        ws,
        ClusterView(
            ray_address="10.0.0.1:6379",
            updated_at=datetime.now(UTC) - timedelta(seconds=age_s),
            nodes=[
                ClusterNode(
                    name="head-box",
                    node_id="a" * 56,
                    address="10.0.0.1",
                    alive=True,
                    gpus=1,
                    cpus=16,
                    jobs=[],
                ),
                ClusterNode(
                    name="rented-pod-2",
                    node_id="b" * 56,
                    address="10.0.0.7",
                    alive=True,
                    gpus=8,
                    cpus=64,
                    jobs=["portrait", "style-v2"],
                ),
            ],
        ),
    )


def test_cluster_mode_off_says_how_to_turn_it_on(ws):
    done = trainpilot(ws)
    assert done.returncode == 1
    assert "cluster mode is off: set LORAPILOT_RAY_ADDRESS or config/cluster.yaml" in done.stderr
    assert done.stdout == ""
    assert json.loads(trainpilot(ws, "--json").stdout)["enabled"] is False


def test_before_the_daemons_first_snapshot_it_says_so(ws):
    ws.cluster_config.write_text("cluster:\n  ray_address: 10.0.0.1:6379\n")
    done = trainpilot(ws)
    assert done.returncode == 1
    assert "no snapshot of the cluster yet" in done.stderr and "trainpilot daemon" in done.stderr


def test_the_nodes_table_shows_gpus_cpus_and_jobs_of_each_node(ws):
    two_nodes(ws)
    done = trainpilot(ws, address="10.0.0.1:6379")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Ray cluster at 10.0.0.1:6379: snapshot ") and lines[0].endswith(" s old")
    assert lines[1].split() == ["NAME", "ADDRESS", "ALIVE", "GPUS", "CPUS", "JOBS"]
    assert lines[2].split() == ["head-box", "10.0.0.1", "yes", "1", "16", "-"]
    assert lines[3].split() == ["rented-pod-2", "10.0.0.7", "yes", "8", "64", "portrait,", "style-v2"]
    assert done.stderr == ""

    report = json.loads(trainpilot(ws, "--json", address="10.0.0.1:6379").stdout)
    assert report["enabled"] is True and report["stale"] is False
    assert [(n["name"], n["gpus"], n["jobs"]) for n in report["nodes"]] == [
        ("head-box", 1.0, []),
        ("rented-pod-2", 8.0, ["portrait", "style-v2"]),
    ]


def test_an_old_snapshot_is_shown_with_a_warning(ws):
    two_nodes(ws, age_s=600)
    done = trainpilot(ws, address="10.0.0.1:6379")
    assert done.returncode == 0
    assert "snapshot 10 min old" in done.stdout
    assert "the daemon has not updated this snapshot" in done.stderr


def test_a_bad_cluster_file_names_the_field(ws):
    ws.cluster_config.write_text("cluster:\n  max_node_failures: -1\n")
    done = trainpilot(ws)
    assert done.returncode == 2
    assert "cluster.yaml" in done.stderr and "max_node_failures" in done.stderr
    assert "Traceback" not in done.stderr
