"""The appliance as a Ray node: `LORAPILOT_RAY_ROLE=head|worker` makes supervisord's `ray` program run
`ray start --block` with this machine's GPUs, its name and the ports the user chose.

Two entry points, both `lorapilot-appliance ray-node`: `--exports` (the container entrypoint and
`scripts/run`, before supervisord) prints the shell exports that decide which programs start and how
the daemon reaches Ray; without it, the program itself builds the command line and becomes Ray.
On a worker the trainpilot program stays stopped: the head's daemon runs the one queue and places its
jobs on the worker through Ray, so a second queue there would only compete for the GPUs.

Ray's token authentication is on: a head makes config/ray-auth-token (0600) at its first start; a
worker needs the same token (RAY_AUTH_TOKEN, or that file copied into its own workspace).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lorapilot.atomic_files import write_atomic
from lorapilot.errors import LoraPilotError
from lorapilot.workspace import Workspace

ROLE_ENV = "LORAPILOT_RAY_ROLE"
HEAD_ENV = "LORAPILOT_RAY_HEAD"
PORT_ENV = "LORAPILOT_RAY_PORT"
NODE_IP_ENV = "LORAPILOT_RAY_NODE_IP"
NODE_NAME_ENV = "LORAPILOT_NODE_NAME"
GPUS_ENV = "LORAPILOT_RAY_GPUS"
CPUS_ENV = "LORAPILOT_RAY_CPUS"
DASHBOARD_ENV = "LORAPILOT_RAY_DASHBOARD"
DASHBOARD_HOST_ENV = "LORAPILOT_RAY_DASHBOARD_HOST"
DASHBOARD_PORT_ENV = "LORAPILOT_RAY_DASHBOARD_PORT"
TEMP_DIR_ENV = "LORAPILOT_RAY_TEMP_DIR"
ROLES = ("head", "worker")
DEFAULT_PORT = 6379
# Ray's other listening ports, each settable so a firewall can open exactly these (unset: Ray picks).
PORT_OPTIONS = {
    "LORAPILOT_RAY_NODE_MANAGER_PORT": "--node-manager-port",
    "LORAPILOT_RAY_OBJECT_MANAGER_PORT": "--object-manager-port",
    "LORAPILOT_RAY_MIN_WORKER_PORT": "--min-worker-port",
    "LORAPILOT_RAY_MAX_WORKER_PORT": "--max-worker-port",
    "LORAPILOT_RAY_RUNTIME_ENV_AGENT_PORT": "--runtime-env-agent-port",
    "LORAPILOT_RAY_DASHBOARD_AGENT_LISTEN_PORT": "--dashboard-agent-listen-port",
    "LORAPILOT_RAY_DASHBOARD_AGENT_GRPC_PORT": "--dashboard-agent-grpc-port",
    "LORAPILOT_RAY_METRICS_EXPORT_PORT": "--metrics-export-port",
}
HEAD_PORT_OPTIONS = {"LORAPILOT_RAY_CLIENT_SERVER_PORT": "--ray-client-server-port"}
# Ray's own variables for its token authentication
RAY_AUTH_MODE, RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
EXIT_CONFIG = 78  # EX_CONFIG; supervisord.conf's [program:ray] treats it as expected: no restart
CONFIG_ERROR_HOLD_S = 11.0  # > [program:ray] startsecs, so supervisord records an exit, not a failed start


class RayNodeError(LoraPilotError):
    """The node's settings cannot start Ray; the message names the variable and the fix."""


@dataclass(frozen=True)
class RayNode:
    role: str
    argv: list[str]  # the `ray start` command line
    env: dict[str, str]  # what Ray's processes get on top of the appliance's environment (secrets!)


def role_of(environ: Mapping[str, str]) -> str | None:
    """head, worker, or None when the appliance is no Ray node."""
    role = environ.get(ROLE_ENV, "").strip().lower()
    if not role:
        return None
    if role not in ROLES:
        raise RayNodeError(f"{ROLE_ENV}={role!r}: write head or worker, or leave it unset (no Ray node)")
    return role


def ray_port(environ: Mapping[str, str]) -> int:
    return _port(environ, PORT_ENV) or DEFAULT_PORT


def exports(workspace: Workspace, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables supervisord's programs need for this role: which programs start, where the
    daemon finds Ray (a head's own, unless LORAPILOT_RAY_ADDRESS says otherwise), Ray's token."""
    role = role_of(environ)
    values = {
        "LORAPILOT_RAY_AUTOSTART": "true" if role else "false",
        "LORAPILOT_TRAINPILOT_AUTOSTART": "false" if role == "worker" else "true",
    }
    if role == "head":
        if not environ.get("LORAPILOT_RAY_ADDRESS", "").strip():
            values["LORAPILOT_RAY_ADDRESS"] = f"{environ.get(NODE_IP_ENV) or '127.0.0.1'}:{ray_port(environ)}"
        values |= auth_env(workspace, environ, role)
    elif role == "worker":
        # a worker without the head's token: the ray program says so in its log; the container starts
        with contextlib.suppress(RayNodeError):
            values |= auth_env(workspace, environ, role)
    return values


def auth_env(workspace: Workspace, environ: Mapping[str, str], role: str) -> dict[str, str]:
    """Ray's token settings for this node: the user's RAY_AUTH_* when set, else the workspace's
    token file (a head makes it once, 0600; a worker must have been given the head's)."""
    if environ.get(RAY_AUTH_MODE, "").strip().lower() == "disabled":
        return {}  # the user opted out explicitly (a private network they trust)
    if environ.get(RAY_AUTH_TOKEN, "").strip() or environ.get(RAY_AUTH_TOKEN_PATH, "").strip():
        return {RAY_AUTH_MODE: "token"}
    path = workspace.ray_token_file
    if not path.is_file():
        if role == "worker":
            raise RayNodeError(
                f"a Ray worker needs the head's authentication token: set {RAY_AUTH_TOKEN} to the contents "
                f"of the head's /workspace/config/ray-auth-token, or copy that file to {path}"
            )
        write_atomic(path, os.urandom(32).hex().encode(), mode=0o600)
    return {RAY_AUTH_MODE: "token", RAY_AUTH_TOKEN_PATH: str(path)}


def ray_node(workspace: Workspace, environ: Mapping[str, str]) -> RayNode:
    """The `ray start --block` command line for this appliance's role, from its environment."""
    role = role_of(environ)
    if role is None:
        raise RayNodeError(f"{ROLE_ENV} is not set: this appliance is no Ray node (set head or worker)")
    argv = ["ray", "start", "--block", "--disable-usage-stats"]
    if role == "head":
        argv += ["--head", f"--port={ray_port(environ)}"]
        argv += _port_options(environ, HEAD_PORT_OPTIONS)
    else:
        head = environ.get(HEAD_ENV, "").strip()
        if not head:
            raise RayNodeError(
                f"{ROLE_ENV}=worker needs {HEAD_ENV}: the head's address as host:port "
                f"(its {PORT_ENV}, default {DEFAULT_PORT}), e.g. {HEAD_ENV}=10.0.0.1:{DEFAULT_PORT}"
            )
        argv.append(f"--address={head}")
    argv.append(f"--node-name={environ.get(NODE_NAME_ENV, '').strip() or socket.gethostname()}")
    if node_ip := environ.get(NODE_IP_ENV, "").strip():
        argv.append(f"--node-ip-address={node_ip}")
    argv.append(f"--num-gpus={gpu_count(environ)}")
    if cpus := environ.get(CPUS_ENV, "").strip():
        argv.append(f"--num-cpus={_count(CPUS_ENV, cpus)}")
    argv += _dashboard_options(environ)
    argv += _port_options(environ, PORT_OPTIONS)
    if temp_dir := environ.get(TEMP_DIR_ENV, "").strip():
        argv.append(f"--temp-dir={temp_dir}")
    env = {"LORAPILOT_WORKSPACE": str(workspace.root)} | auth_env(workspace, environ, role)
    return RayNode(role, argv, env)


def gpu_count(environ: Mapping[str, str]) -> int:
    """LORAPILOT_RAY_GPUS, else the GPUs CUDA_VISIBLE_DEVICES lists, else those `nvidia-smi -L`
    lists, else 0 (a CPU node)."""
    if configured := environ.get(GPUS_ENV, "").strip():
        return _count(GPUS_ENV, configured)
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
        return 0 if not entries or entries[0] in ("-1", "NoDevFiles", "none", "void") else len(entries)
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0
    if listing.returncode != 0:
        return 0
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


def _dashboard_options(environ: Mapping[str, str]) -> list[str]:
    """Ray's dashboard is off unless LORAPILOT_RAY_DASHBOARD=1; on, it binds where the user says
    (loopback by default: it has no login of the appliance's)."""
    if environ.get(DASHBOARD_ENV, "").strip().lower() not in ("1", "true", "yes", "on"):
        return ["--include-dashboard=false"]
    host = environ.get(DASHBOARD_HOST_ENV, "").strip() or "127.0.0.1"
    return [
        "--include-dashboard=true",
        f"--dashboard-host={host}",
        f"--dashboard-port={_dashboard_port(environ)}",
    ]


def _dashboard_port(environ: Mapping[str, str]) -> int:
    return _port(environ, DASHBOARD_PORT_ENV) or 8265


def _port_options(environ: Mapping[str, str], options: Mapping[str, str]) -> list[str]:
    return [f"{option}={port}" for variable, option in options.items() if (port := _port(environ, variable))]


def _port(environ: Mapping[str, str], variable: str) -> int | None:
    text = environ.get(variable, "").strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise RayNodeError(f"{variable}={text!r} is not a port: write a number from 1 to 65535")
    return int(text)


def _count(variable: str, text: str) -> int:
    if not text.isdigit():
        raise RayNodeError(f"{variable}={text!r}: write a whole number (0 or more)")
    return int(text)


def print_exports(workspace: Workspace, environ: Mapping[str, str]) -> None:
    for name, value in exports(workspace, environ).items():
        print(f"export {name}={shlex.quote(value)}")


def run(workspace: Workspace, environ: Mapping[str, str], hold_s: float = CONFIG_ERROR_HOLD_S) -> int:
    """Become `ray start --block` (supervisord then signals Ray itself). On a settings error, say so
    once and exit EXIT_CONFIG after `hold_s`, so supervisord does not start it again in a loop."""
    try:
        node = ray_node(workspace, environ)
    except RayNodeError as exc:
        print(f"lorapilot-appliance ray-node: {exc}", file=sys.stderr, flush=True)
        time.sleep(hold_s)
        return EXIT_CONFIG
    ray = Path(sys.executable).with_name("ray")
    argv = [str(ray) if ray.is_file() else "ray", *node.argv[1:]]
    print(f"[lorapilot] Ray {node.role}: {shlex.join(node.argv)}", flush=True)  # no secret in argv
    os.execvpe(argv[0], argv, {**environ, **node.env})
    return 0  # not reached
