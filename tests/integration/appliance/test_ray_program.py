"""The `ray` supervisord program: with LORAPILOT_RAY_ROLE=head the repo's supervisord.conf runs a real
Ray head (`ray start --block`) that a driver joins with the token the head made (its raylet sees the
workspace and requires the token), on the node name and
port the environment gives; stopping it through supervisord leaves none of Ray's processes behind
(never `ray stop`, which would end every Ray cluster on the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

from lorapilot.appliance.ray_node import exports
from lorapilot.testing.supervised_appliance import SupervisedAppliance, free_port
from lorapilot.workspace import Workspace

REPO = Path(__file__).resolve().parents[3]
JOIN = """
import json, os, ray
ray.init(address=os.environ["LORAPILOT_RAY_ADDRESS"], include_dashboard=False)
nodes = [{"name": n["NodeName"], "alive": n["Alive"], "resources": n["Resources"]} for n in ray.nodes()]
print(json.dumps(nodes))
ray.shutdown()
"""


def test_a_head_appliance_runs_ray_that_a_driver_joins_and_supervisord_stops_it(tmp_path, tiny_models):
    port = free_port()
    role = {
        "LORAPILOT_RAY_ROLE": "head",
        "LORAPILOT_RAY_PORT": str(port),
        "LORAPILOT_NODE_NAME": "test-head",
        "LORAPILOT_RAY_GPUS": "0",
        "LORAPILOT_RAY_CPUS": "1",
    }
    env = role | exports(Workspace.from_env(tmp_path / "ws"), role)  # what the entrypoint exports
    assert env["LORAPILOT_RAY_ADDRESS"] == f"127.0.0.1:{port}"
    app = SupervisedAppliance.start(tmp_path, REPO / "supervisord.conf", tiny_models["sd15"], env=env)
    ray_processes: list[psutil.Process] = []
    try:
        app.wait_until_running("ray", timeout=120)
        ray_processes = psutil.Process(app.states_pid("ray")).children(recursive=True)
        assert any("gcs_server" in p.name() for p in ray_processes), [p.name() for p in ray_processes]
        driver = {k: v for k, v in app.env.items() if not k.startswith("RAY_AUTH_TOKEN")}
        driver["RAY_AUTH_TOKEN"] = app.workspace.ray_token_file.read_text()
        joined = subprocess.run(
            [sys.executable, "-c", JOIN], env=driver, capture_output=True, text=True, timeout=120, check=False
        )
        assert joined.returncode == 0, joined.stderr[-3000:]
        nodes = json.loads(joined.stdout.strip().splitlines()[-1])
        assert [(n["name"], n["alive"], n["resources"]["CPU"]) for n in nodes] == [("test-head", True, 1.0)]
        assert "GPU" not in nodes[0]["resources"]

        log = (app.workspace.logs / "ray.log").read_text()
        assert "[lorapilot] Ray head: ray start --block" in log and f"--port={port}" in log
        assert "--include-dashboard=false" in log
        assert app.workspace.ray_token_file.read_text() not in log  # the token is never logged

        names = {p: Path(p.cmdline()[0]).name for p in ray_processes if p.is_running()}
        raylet = next((p for p, name in names.items() if name == "raylet"), None)
        assert raylet is not None, sorted(names.values())
        seen = raylet.environ()  # jobs run in the workspace's cache/cluster/workspace; Ray checks tokens
        assert seen["LORAPILOT_WORKSPACE"] == str(app.workspace.root)
        assert seen["RAY_AUTH_MODE"] == "token"
        assert seen["RAY_AUTH_TOKEN_PATH"] == str(app.workspace.ray_token_file)
    finally:
        app.stop()
    _, alive = psutil.wait_procs(ray_processes, timeout=30)
    assert not alive, [p.pid for p in alive]
