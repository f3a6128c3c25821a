"""The cluster's nodes as a workspace file (cache/cluster/nodes.json) that other services read.

Only the trainpilot daemon talks to Ray: it calls `cluster_view` every couple of seconds and writes
the result with `write_cluster_view`; `trainpilot cluster` and ControlPilot read it back with
`read_cluster_view`, so neither needs a Ray connection (or Ray's dashboard port) of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from lorapilot.atomic_files import write_json_atomic
from lorapilot.cluster.settings import load_cluster_settings
from lorapilot.workspace import Workspace

log = logging.getLogger(__name__)

# What `trainpilot cluster` and ControlPilot say when there is nothing to show.
CLUSTER_OFF = "cluster mode is off: set LORAPILOT_RAY_ADDRESS or config/cluster.yaml"
NO_SNAPSHOT = (
    "no snapshot of the cluster yet: the trainpilot daemon writes one every few seconds while it runs "
    "in cluster mode (is it running? see logs/trainpilot.log)"
)


STALE_AFTER_S = 30.0  # the daemon rewrites the snapshot every ~2 s; older than this, it stopped


class ClusterNode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str  # `ray start --node-name` (LORAPILOT_NODE_NAME, default the host name)
    node_id: str  # Ray's node id
    address: str  # the node's IP address as Ray knows it
    alive: bool
    gpus: float
    cpus: float
    jobs: list[str]  # names of the jobs running there


class ClusterView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ray_address: str
    updated_at: datetime
    nodes: list[ClusterNode]

    def age_s(self, now: datetime | None = None) -> float:
        """Seconds since the daemon took this snapshot (a stale one means the daemon stopped)."""
        return max(0.0, ((now or datetime.now(UTC)) - self.updated_at).total_seconds())


def cluster_view(ray_address: str, jobs_on_node: Mapping[str, list[str]]) -> ClusterView:
    """The nodes `ray.nodes()` reports now (the caller is connected), with the jobs on each.

    `jobs_on_node` maps a Ray node id to the names of the jobs running there.
    """
    import ray  # noqa: PLC0415 - only the daemon, in cluster mode, pays for importing Ray

    nodes = [_node(entry, jobs_on_node) for entry in ray.nodes()]
    nodes.sort(key=lambda node: (not node.alive, node.name, node.node_id))
    return ClusterView(ray_address=ray_address, updated_at=datetime.now(UTC), nodes=nodes)


def _node(entry: Mapping[str, Any], jobs_on_node: Mapping[str, list[str]]) -> ClusterNode:
    resources = entry.get("Resources") or {}  # a dead node reports none
    node_id = str(entry.get("NodeID", ""))
    return ClusterNode(
        name=str(entry.get("NodeName") or entry.get("NodeManagerAddress") or node_id[:12]),
        node_id=node_id,
        address=str(entry.get("NodeManagerAddress", "")),
        alive=bool(entry.get("Alive", entry.get("alive", False))),
        gpus=float(resources.get("GPU", 0.0)),
        cpus=float(resources.get("CPU", 0.0)),
        jobs=sorted(jobs_on_node.get(node_id, [])),
    )


def write_cluster_view(workspace: Workspace, view: ClusterView) -> None:
    """Atomically: a reader sees the previous snapshot or this one, never half of one."""
    write_json_atomic(workspace.cluster_view_file, view.model_dump(mode="json"))


def read_cluster_view(workspace: Workspace) -> ClusterView | None:
    """The daemon's last snapshot; None when there is none or it cannot be read (logged)."""
    path = workspace.cluster_view_file
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("%s cannot be read: %s", path, exc)
        return None
    try:
        return ClusterView.model_validate_json(text)
    except ValidationError as exc:
        problems = exc.error_count()
        log.warning("%s is not a cluster snapshot (%d problems); ignored until rewritten", path, problems)
        return None


class ClusterReport(BaseModel):
    """What `trainpilot cluster --json` and ControlPilot's `/api/cluster` answer."""

    enabled: bool  # cluster mode is on (LORAPILOT_RAY_ADDRESS or config/cluster.yaml)
    message: str | None = None  # why there are no nodes to show
    ray_address: str | None = None
    updated_at: datetime | None = None
    age_s: float | None = None  # seconds since the daemon's snapshot
    stale: bool = False  # older than STALE_AFTER_S: the daemon no longer updates it
    nodes: list[ClusterNode] = []


def cluster_report(workspace: Workspace, environ: Mapping[str, str] | None = None) -> ClusterReport:
    """The snapshot when cluster mode is on and the daemon wrote one, else the reason there is none.

    A bad config/cluster.yaml raises ClusterSettingsError, whose message names the field.
    """
    settings = load_cluster_settings(workspace, None if environ is None else dict(environ))
    if not settings.enabled:
        return ClusterReport(enabled=False, message=CLUSTER_OFF)
    view = read_cluster_view(workspace)
    if view is None:
        return ClusterReport(enabled=True, message=NO_SNAPSHOT, ray_address=settings.ray_address)
    age = view.age_s()
    return ClusterReport(
        enabled=True,
        ray_address=view.ray_address,
        updated_at=view.updated_at,
        age_s=round(age, 1),
        stale=age > STALE_AFTER_S,
        nodes=view.nodes,
    )
