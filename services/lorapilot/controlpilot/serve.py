"""`controlpilot`: serve ControlPilot with gunicorn (one worker, threads), as supervisord runs it.

One worker process on purpose: the login throttle, NVML and the telemetry history live in that
process; threads serve concurrent requests.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from lorapilot.workspace import Workspace

DEFAULT_PORT = 7878


class _Gunicorn(BaseApplication):
    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self.application, self.options = app, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # settings newer than the installed gunicorn are skipped
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="controlpilot", description="ControlPilot dashboard, jobs API, monitor and services"
    )
    parser.add_argument("--host", default=os.environ.get("CONTROLPILOT_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CONTROLPILOT_PORT", DEFAULT_PORT)))
    parser.add_argument("--workspace", default=None, help="workspace root (default $LORAPILOT_WORKSPACE)")
    parser.add_argument(
        "--supervisor-config",
        default=os.environ.get("CONTROLPILOT_SUPERVISOR_CONFIG"),
        help="supervisord.conf whose unix socket the services panel uses (default: services panel off)",
    )
    parser.add_argument("--threads", type=int, default=8)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workspace = Workspace.from_env(args.workspace).ensure()
    workspace.tmp.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(workspace.tmp)  # temp files land in the workspace, not /tmp
    tempfile.tempdir = None
    from lorapilot.controlpilot.app import create_app  # noqa: PLC0415 - after logging and TMPDIR are set

    app = create_app({"CONTROLPILOT_SUPERVISOR_CONFIG": args.supervisor_config}, workspace=workspace)
    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": args.threads,
        "timeout": 600,  # a LoRA download may hold a thread for a while
        "graceful_timeout": 10,
        "accesslog": "-",
        "errorlog": "-",
        "control_socket_disable": True,  # gunicorn 24+ would otherwise create ~/.gunicorn/gunicorn.ctl
    }
    if os.path.isdir("/dev/shm"):
        options["worker_tmp_dir"] = "/dev/shm"  # the heartbeat file; never the workspace volume or /tmp
    _Gunicorn(app, options).run()


if __name__ == "__main__":
    main()
