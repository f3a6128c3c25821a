"""The cluster snapshot: read from a real local Ray cluster of two named nodes, written and read back
through the workspace file that `trainpilot cluster` and ControlPilot show."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import ray
from ray.cluster_utils import Cluster

from lorapilot.cluster.nodes import (
    ClusterNode,
    ClusterView,
    cluster_view,
    read_cluster_view,
    write_cluster_view,
)
from lorapilot.workspace import Workspace


@pytest.fixture(scope="module")
def two_node_cluster() -> Iterator[object]:
    auth = {k: v for k, v in os.environ.items() if k.startswith("RAY_AUTH_")}  # ray.init sets these
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "node_name": "head-box", "include_dashboard": False},
    )
    cluster.add_node(num_cpus=2, num_gpus=0, node_name="gpu-box-1")
    ray.init(address=cluster.address)
    try:
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        for key in [k for k in os.environ if k.startswith("RAY_AUTH_")]:
            os.environ.pop(key)
        os.environ.update(auth)


def test_the_view_names_each_node_with_its_resources_and_jobs(two_node_cluster, tmp_path):
    ids = {entry["NodeName"]: entry["NodeID"] for entry in ray.nodes()}
    view = cluster_view("127.0.0.1:6379", {ids["gpu-box-1"]: ["portrait-b", "portrait-a"]})

    by_name = {node.name: node for node in view.nodes}
    assert set(by_name) == {"head-box", "gpu-box-1"}
    assert by_name["gpu-box-1"].cpus == 2 and by_name["head-box"].cpus == 1
    assert by_name["gpu-box-1"].jobs == ["portrait-a", "portrait-b"]
    assert by_name["head-box"].jobs == []
    assert all(node.alive and node.address for node in view.nodes)
    assert view.ray_address == "127.0.0.1:6379"
    assert view.age_s() < 30

    ws = Workspace.from_env(tmp_path / "ws")
    write_cluster_view(ws, view)
    assert ws.cluster_view_file == ws.root / "cache" / "cluster" / "nodes.json"
    assert read_cluster_view(ws) == view


def test_no_file_or_a_torn_one_reads_as_no_snapshot(tmp_path, caplog):
    ws = Workspace.from_env(tmp_path / "ws")
    assert read_cluster_view(ws) is None
    ws.cluster_view_file.parent.mkdir(parents=True)
    ws.cluster_view_file.write_text('{"ray_address": "x", "nodes": [')
    assert read_cluster_view(ws) is None
    assert "nodes.json is not a cluster snapshot" in caplog.text


def test_the_file_is_plain_json_with_the_documented_fields(tmp_path):
    ws = Workspace.from_env(tmp_path / "ws")
    taken = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    node = ClusterNode(name="n1", node_id="abc", address="10.0.0.2", alive=False, gpus=4, cpus=32, jobs=[])
    write_cluster_view(ws, ClusterView(ray_address="10.0.0.1:6379", updated_at=taken, nodes=[node]))
    data = json.loads(ws.cluster_view_file.read_text())
    assert data["nodes"][0] == {
        "name": "n1",
        "node_id": "abc",
        "address": "10.0.0.2",
        "alive": False,
        "gpus": 4.0,
        "cpus": 32.0,
        "jobs": [],
    }
    assert read_cluster_view(ws).age_s(taken + timedelta(seconds=90)) == 90
