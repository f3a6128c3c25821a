"""The services API against a real supervisord (a small config with two programs) over its unix socket."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lorapilot.appliance.health import supervisor_proxy
from lorapilot.controlpilot import create_app

BIN = Path(sys.executable).parent
PASSWORD = "controlpilot-unit-password"  # the app fixture's (conftest.py)
CONFIG = """\
[unix_http_server]
file=%(here)s/.run/supervisor.sock
chmod=0700

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/.run/supervisord.pid
childlogdir=%(here)s
nodaemon=true
silent=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/.run/supervisor.sock

[program:sleeper]
command={python} -c "import time; print('sleeper up', flush=True); time.sleep(600)"
startsecs=1
stopwaitsecs=5
stdout_logfile=%(here)s/sleeper.log
redirect_stderr=true

[program:idle]
command={python} -c "import time; time.sleep(600)"
autostart=false
startsecs=0
stdout_logfile=%(here)s/idle.log
"""


@pytest.fixture(scope="module")
def supervisor_config():
    here = Path(tempfile.mkdtemp(prefix="cp-sv-"))  # short: a unix socket path is at most ~107 bytes
    (here / ".run").mkdir()
    config = here / "supervisord.conf"
    config.write_text(CONFIG.format(python=sys.executable))
    process = subprocess.Popen(
        [str(BIN / "supervisord"), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if supervisor_proxy(config).supervisor.getProcessInfo("sleeper")["statename"] == "RUNNING":
                    break
            except OSError:
                pass
            time.sleep(0.1)
        yield config
    finally:
        try:
            supervisor_proxy(config).supervisor.shutdown()
            process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        shutil.rmtree(here, ignore_errors=True)


@pytest.fixture
def services_session(ws, supervisor_config, login):
    config = {"LORAPILOT_PASSWORD": PASSWORD, "CONTROLPILOT_SUPERVISOR_CONFIG": str(supervisor_config)}
    return login(create_app(config, workspace=ws))


def _states(session) -> dict[str, str]:
    return {s["name"]: s["state"] for s in session.ok("GET", "/api/services")["services"]}


def test_status_lists_every_program_with_its_state(services_session):
    assert _states(services_session) == {"sleeper": "RUNNING", "idle": "STOPPED"}
    one = services_session.ok("GET", "/api/services/sleeper")
    assert one["pid"] > 0 and one["description"].startswith("pid ")


def test_start_stop_restart_change_the_state_in_supervisord(services_session, supervisor_config):
    rpc = supervisor_proxy(supervisor_config).supervisor
    assert services_session.ok("POST", "/api/services/idle/start")["state"] == "RUNNING"
    assert rpc.getProcessInfo("idle")["statename"] == "RUNNING"
    conflict = services_session.call("POST", "/api/services/idle/start")
    assert conflict.status_code == 409 and "already running" in conflict.get_json()["error"]
    pid = rpc.getProcessInfo("idle")["pid"]
    restarted = services_session.ok("POST", "/api/services/idle/restart")
    assert restarted["state"] == "RUNNING" and restarted["pid"] != pid
    assert services_session.ok("POST", "/api/services/idle/stop")["state"] == "STOPPED"
    assert rpc.getProcessInfo("idle")["statename"] == "STOPPED"
    again = services_session.call("POST", "/api/services/idle/stop")
    assert again.status_code == 409 and "not running" in again.get_json()["error"]


def test_log_tail_and_unknown_names(services_session):
    log = services_session.ok("GET", "/api/services/sleeper/log?bytes=100")
    assert "sleeper up" in log["log"]
    for path in ("/api/services/nope", "/api/services/nope/log"):
        reply = services_session.call("GET", path)
        assert reply.status_code == 404 and "no program 'nope'" in reply.get_json()["error"]
    assert services_session.call("POST", "/api/services/sleeper/explode").status_code == 404


def test_without_a_supervisor_config_the_api_says_why(session):
    reply = session.call("GET", "/api/services")
    assert reply.status_code == 503 and "--supervisor-config" in reply.get_json()["error"]


def test_an_unreachable_supervisord_is_503(ws, tmp_path, login):
    config = tmp_path / "supervisord.conf"
    config.write_text("[supervisorctl]\nserverurl=unix://%(here)s/none.sock\n")
    session = login(
        create_app({"LORAPILOT_PASSWORD": PASSWORD, "CONTROLPILOT_SUPERVISOR_CONFIG": config}, workspace=ws)
    )
    answer = session.call("GET", "/api/services")
    assert answer.status_code == 503 and "not reachable" in answer.get_json()["error"]
