"""Cluster mode (issue 18): the daemon runs the spool's jobs on a local multi-node Ray cluster whose
nodes each have their own workspace folder, so a job's files reach its node only through the
project's transfer and its outputs come back to the head's workspace."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lorapilot.workspace import Workspace

ray = pytest.importorskip("ray")

from lorapilot.testing.ray_cluster import LocalCluster, local_cluster  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    """Three single-slot nodes; the daemons and CLI the test starts are in cluster mode."""
    with local_cluster(tmp_path / "nodes", {"node-a": 1, "node-b": 1, "node-c": 1}) as running:
        monkeypatch.setenv("LORAPILOT_RAY_ADDRESS", running.address)
        yield running


def test_nine_jobs_run_once_each_spread_over_three_nodes_with_the_loras_on_the_head(
    ws: Workspace, cli, daemons, watch, cluster: LocalCluster
) -> None:
    names = [f"c{i}" for i in range(9)]
    for name in names:
        submitted = cli("submit", "--dataset", "demo", "--profile", "tiny", "--name", name)
        assert submitted.returncode == 0, submitted.stderr
    daemon = daemons.start()
    watch.until(lambda: len(watch.jobs()["done"]) == 9 or watch.jobs()["failed"], timeout=400, what="9 jobs")
    assert watch.jobs()["failed"] == [], daemons.log()
    assert daemon.poll() is None
    nodes = Counter()
    for name in names:
        status = watch.status(name)
        assert status["state"] == "done" and status["attempt"] == 1, status
        assert [a["node"] for a in status["attempts"]] == [status["node"]]
        nodes[status["node"]] += 1
        lora = ws.outputs / name / f"{name}.safetensors"
        assert lora.is_file()
        node_copy = cluster.workspace(status["node"]) / "cache/cluster/workspace/outputs" / name / lora.name
        assert node_copy.read_bytes() == lora.read_bytes()  # trained there, mirrored here
        metrics = json.loads((ws.outputs / name / "_logs" / "metrics.json").read_text())
        assert metrics["step"] == [1, 2, 3, 4]
    assert set(nodes) == {"node-a", "node-b", "node-c"}, nodes
    # the node received the dataset and model through the transfer, not from the head's folders
    staged = cluster.workspace("node-a") / "cache/cluster/workspace"
    assert sorted(p.name for p in (staged / "datasets/images/1_demo").glob("*.png"))
    assert (staged / "models/diffusers/tiny-sd15/model_index.json").is_file()
