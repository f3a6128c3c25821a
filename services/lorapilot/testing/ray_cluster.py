"""A Ray cluster of several nodes on this machine, each node with its own workspace folder, for the
cluster-mode tests and scripts/benchmark-cluster (Ray's own `ray.cluster_utils.Cluster`).

The head node holds no CPU, so every job runs on a worker node; a node's workspace is where its
raylet's LORAPILOT_WORKSPACE points, never the head's, so files reach it only through the transfer.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NODE_OBJECT_STORE = 120 * 1024 * 1024  # bytes: plenty for tiny models, little memory on a CI box


@dataclass
class LocalCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    root: Path
    nodes: dict[str, Any] = field(default_factory=dict)  # name → Ray's node object

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add(self, name: str, cpus: int = 1, workspace: Path | None = None) -> Path:
        """A worker node named `name` with `cpus` CPU slots and its own workspace folder (or
        `workspace`: e.g. the head's, as nodes on a shared filesystem have it)."""
        workspace = workspace or self.root / name
        workspace.mkdir(parents=True, exist_ok=True)
        self.nodes[name] = self.cluster.add_node(
            num_cpus=cpus,
            node_name=name,
            object_store_memory=NODE_OBJECT_STORE,
            env_vars={"LORAPILOT_WORKSPACE": str(workspace), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        )
        return workspace

    def kill(self, name: str, pids: list[int] = ()) -> None:  # type: ignore[assignment]
        """The node dies as a preempted pod does: its processes (and `pids` on it) get SIGKILL."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.cluster.remove_node(self.nodes.pop(name), allow_graceful=False)

    def workspace(self, name: str) -> Path:
        return self.root / name


@contextlib.contextmanager
def local_cluster(root: Path, nodes: dict[str, int]) -> Iterator[LocalCluster]:
    """Head (no CPU) + the named worker nodes with their CPU slots; everything stops at the end."""
    from ray.cluster_utils import Cluster  # noqa: PLC0415 - Ray only where a cluster is wanted

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, "object_store_memory": NODE_OBJECT_STORE},
    )
    local = LocalCluster(cluster, root)
    try:
        for name, cpus in nodes.items():
            local.add(name, cpus)
        cluster.wait_for_nodes()
        yield local
    finally:
        cluster.shutdown()
