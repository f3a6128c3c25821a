"""Where the Ray cluster is: `LORAPILOT_RAY_ADDRESS`, else `cluster.ray_address` in config/cluster.yaml.

Without either, cluster mode is off and nothing changes: the daemon runs jobs as child processes.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lorapilot.errors import LoraPilotError
from lorapilot.settings_file import read_settings_yaml
from lorapilot.workspace import Workspace

ADDRESS_ENV = "LORAPILOT_RAY_ADDRESS"
NAMESPACE = "lorapilot"  # every actor of the appliance lives in this Ray namespace


class ClusterSettingsError(LoraPilotError):
    """config/cluster.yaml cannot be used; the message names the file and the field."""


class ClusterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ray_address: str | None = Field(
        None, description="the head's address (`host:6379`, `ray://host:10001` or `auto`)"
    )
    max_node_failures: int = Field(
        3, ge=0, le=100, description="times a job resumes elsewhere after its node is lost, then it fails"
    )
    sync_interval_s: float = Field(
        1.0, gt=0, le=60, description="how often a node sends the files its job wrote back to the head"
    )

    @property
    def enabled(self) -> bool:
        return bool(self.ray_address)


class _ClusterFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: ClusterSettings = ClusterSettings()


def load_cluster_settings(workspace: Workspace, environ: dict[str, str] | None = None) -> ClusterSettings:
    """The settings in effect: the file's, with the address from the environment when it is set."""
    env = os.environ if environ is None else environ
    settings = _read(workspace.cluster_config, workspace.display(workspace.cluster_config))
    address = env.get(ADDRESS_ENV, "").strip()
    if address:
        settings = settings.model_copy(update={"ray_address": address})
    return settings


def _read(path: Path, shown: str) -> ClusterSettings:
    data = read_settings_yaml(path, shown, ClusterSettingsError) or {}
    try:
        return _ClusterFile.model_validate(data).cluster
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        )
        raise ClusterSettingsError(f"{shown}: {problems} (see docs/operations.md, 'A fleet')") from None
