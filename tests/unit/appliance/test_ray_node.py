"""`lorapilot-appliance ray-node`: the `ray start` command line for a head and a worker, built from
the appliance's environment, and the exports that decide which programs start."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lorapilot.appliance.ray_node import (
    EXIT_CONFIG,
    RayNodeError,
    exports,
    gpu_count,
    ray_node,
    run,
)
from lorapilot.workspace import Workspace

APPLIANCE = str(Path(sys.executable).with_name("lorapilot-appliance"))


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace.from_env(tmp_path / "ws").ensure()


def test_a_head_listens_on_its_port_with_its_gpus_and_no_dashboard(ws):
    node = ray_node(
        ws,
        {
            "LORAPILOT_RAY_ROLE": "head",
            "LORAPILOT_RAY_PORT": "6380",
            "LORAPILOT_NODE_NAME": "studio-head",
            "LORAPILOT_RAY_NODE_IP": "10.0.0.1",
            "CUDA_VISIBLE_DEVICES": "0,1",
        },
    )
    assert node.argv == [
        "ray",
        "start",
        "--block",
        "--disable-usage-stats",
        "--head",
        "--port=6380",
        "--node-name=studio-head",
        "--node-ip-address=10.0.0.1",
        "--num-gpus=2",
        "--include-dashboard=false",
    ]
    assert node.env["LORAPILOT_WORKSPACE"] == str(ws.root)


def test_a_worker_joins_the_head_named_after_its_host_with_the_firewall_ports(ws):
    environ = {
        "LORAPILOT_RAY_ROLE": "worker",
        "LORAPILOT_RAY_HEAD": "10.0.0.1:6379",
        "CUDA_VISIBLE_DEVICES": "",
        "LORAPILOT_RAY_NODE_MANAGER_PORT": "6800",
        "LORAPILOT_RAY_OBJECT_MANAGER_PORT": "6801",
        "LORAPILOT_RAY_MIN_WORKER_PORT": "10002",
        "LORAPILOT_RAY_MAX_WORKER_PORT": "10100",
        "LORAPILOT_RAY_RUNTIME_ENV_AGENT_PORT": "6802",
        "LORAPILOT_RAY_DASHBOARD_AGENT_LISTEN_PORT": "6803",
        "LORAPILOT_RAY_DASHBOARD_AGENT_GRPC_PORT": "6804",
        "LORAPILOT_RAY_METRICS_EXPORT_PORT": "6805",
        "LORAPILOT_RAY_CLIENT_SERVER_PORT": "10001",  # a head's port: a worker has none
        "RAY_AUTH_TOKEN": "the-heads-token",
    }
    node = ray_node(ws, environ)
    assert node.argv[:4] == ["ray", "start", "--block", "--disable-usage-stats"]
    assert "--head" not in node.argv and "--address=10.0.0.1:6379" in node.argv
    assert f"--node-name={socket.gethostname()}" in node.argv
    assert "--num-gpus=0" in node.argv
    for option in (
        "--node-manager-port=6800",
        "--object-manager-port=6801",
        "--min-worker-port=10002",
        "--max-worker-port=10100",
        "--runtime-env-agent-port=6802",
        "--dashboard-agent-listen-port=6803",
        "--dashboard-agent-grpc-port=6804",
        "--metrics-export-port=6805",
    ):
        assert option in node.argv
    assert not any(arg.startswith("--ray-client-server-port") for arg in node.argv)
    assert node.env == {"LORAPILOT_WORKSPACE": str(ws.root), "RAY_AUTH_MODE": "token"}
    assert "the-heads-token" not in " ".join(node.argv)


def test_the_dashboard_only_when_asked_bound_where_the_user_says(ws):
    base = {"LORAPILOT_RAY_ROLE": "head", "LORAPILOT_RAY_GPUS": "1"}
    on = ray_node(ws, base | {"LORAPILOT_RAY_DASHBOARD": "1"}).argv
    assert on[-3:] == ["--include-dashboard=true", "--dashboard-host=127.0.0.1", "--dashboard-port=8265"]
    there = {"LORAPILOT_RAY_DASHBOARD": "1", "LORAPILOT_RAY_DASHBOARD_HOST": "0.0.0.0"}
    there["LORAPILOT_RAY_DASHBOARD_PORT"] = "9000"
    assert "--dashboard-host=0.0.0.0" in ray_node(ws, base | there).argv
    assert "--dashboard-port=9000" in ray_node(ws, base | there).argv


def test_gpus_come_from_the_setting_then_cuda_visible_devices():
    assert gpu_count({"LORAPILOT_RAY_GPUS": "3", "CUDA_VISIBLE_DEVICES": "0"}) == 3
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "GPU-1f2e,GPU-3c4d,GPU-5a6b"}) == 3
    assert gpu_count({"CUDA_VISIBLE_DEVICES": "-1"}) == 0
    without = {"PATH": "/nonexistent"}  # no nvidia-smi: a CPU node
    assert gpu_count(without) == 0


def test_bad_settings_name_the_variable_and_the_fix(ws):
    with pytest.raises(RayNodeError, match="LORAPILOT_RAY_ROLE='haed': write head or worker"):
        ray_node(ws, {"LORAPILOT_RAY_ROLE": "haed"})
    with pytest.raises(
        RayNodeError, match="worker needs LORAPILOT_RAY_HEAD: the head's address as host:port"
    ):
        ray_node(ws, {"LORAPILOT_RAY_ROLE": "worker", "RAY_AUTH_TOKEN": "t"})
    with pytest.raises(RayNodeError, match="needs the head's authentication token: set RAY_AUTH_TOKEN"):
        ray_node(ws, {"LORAPILOT_RAY_ROLE": "worker", "LORAPILOT_RAY_HEAD": "10.0.0.1:6379"})
    with pytest.raises(RayNodeError, match="LORAPILOT_RAY_PORT='63 79' is not a port"):
        ray_node(ws, {"LORAPILOT_RAY_ROLE": "head", "LORAPILOT_RAY_PORT": "63 79", "LORAPILOT_RAY_GPUS": "0"})


def test_a_head_makes_its_token_once_private_to_the_appliance(ws):
    environ = {"LORAPILOT_RAY_ROLE": "head", "LORAPILOT_RAY_GPUS": "0"}
    first = exports(ws, environ)
    token = ws.ray_token_file.read_text()
    assert len(token) == 64 and stat.S_IMODE(ws.ray_token_file.stat().st_mode) == 0o600
    assert first["RAY_AUTH_MODE"] == "token" and first["RAY_AUTH_TOKEN_PATH"] == str(ws.ray_token_file)
    assert ray_node(ws, environ).env["RAY_AUTH_TOKEN_PATH"] == str(ws.ray_token_file)
    exports(ws, environ)
    assert ws.ray_token_file.read_text() == token
    assert "RAY_AUTH_MODE" not in exports(ws, environ | {"RAY_AUTH_MODE": "disabled"})


def test_exports_decide_the_programs_and_the_daemons_ray_address(ws, tmp_path):
    assert exports(ws, {}) == {"LORAPILOT_RAY_AUTOSTART": "false", "LORAPILOT_TRAINPILOT_AUTOSTART": "true"}
    head = exports(ws, {"LORAPILOT_RAY_ROLE": "head", "LORAPILOT_RAY_PORT": "7000"})
    assert head["LORAPILOT_RAY_AUTOSTART"] == "true" and head["LORAPILOT_TRAINPILOT_AUTOSTART"] == "true"
    assert head["LORAPILOT_RAY_ADDRESS"] == "127.0.0.1:7000"
    chosen = {"LORAPILOT_RAY_ROLE": "head", "LORAPILOT_RAY_ADDRESS": "10.9.9.9:6379"}
    assert "LORAPILOT_RAY_ADDRESS" not in exports(ws, chosen)
    elsewhere = Workspace.from_env(tmp_path / "worker").ensure()  # no token: its program says so
    worker = exports(elsewhere, {"LORAPILOT_RAY_ROLE": "worker"})
    assert worker == {"LORAPILOT_RAY_AUTOSTART": "true", "LORAPILOT_TRAINPILOT_AUTOSTART": "false"}


def test_the_exports_are_shell_the_entrypoint_can_eval(ws):
    env = {**os.environ, "LORAPILOT_RAY_ROLE": "head", "LORAPILOT_NODE_NAME": "it's mine"}
    env.pop("LORAPILOT_RAY_ADDRESS", None)
    script = (
        f'eval "$({APPLIANCE} ray-node --workspace {ws.root} --exports)" && echo "$LORAPILOT_RAY_ADDRESS"'
    )
    done = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "127.0.0.1:6379"
    bad = subprocess.run(
        [APPLIANCE, "ray-node", "--exports", "--workspace", str(ws.root)],
        env=env | {"LORAPILOT_RAY_ROLE": "haed"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1 and "LORAPILOT_RAY_ROLE='haed'" in bad.stderr and bad.stdout == ""


def test_a_worker_without_its_head_says_so_once_and_exits_78(ws, capsys):
    assert run(ws, {"LORAPILOT_RAY_ROLE": "worker"}, hold_s=0) == EXIT_CONFIG == 78
    assert "LORAPILOT_RAY_ROLE=worker needs LORAPILOT_RAY_HEAD" in capsys.readouterr().err
