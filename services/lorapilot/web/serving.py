"""Running an appliance web service under gunicorn the way supervisord starts it.

One worker process with threads on purpose: a service's in-process state (loaded captioner,
telemetry history, background jobs) must be one copy; logins and the login throttle live in the
workspace (`web.state_db`), shared by every service. Temporary files of the libraries
go to the workspace's cache, never the system /tmp.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gunicorn.app.base import BaseApplication

from lorapilot.errors import LoraPilotError
from lorapilot.workspace import Workspace


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


@contextmanager
def user_errors_end(program: str) -> Iterator[None]:
    """A user's mistake found while a service starts (a password too short, an unreadable secret
    file) ends it with the message and exit code 2, one line in supervisord's log, not a traceback."""
    try:
        yield
    except LoraPilotError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def prepare_service(workspace_root: str | None) -> Workspace:
    """Logging, the workspace, and TMPDIR pointed into it; call before importing the app."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workspace = Workspace.from_env(workspace_root).ensure()
    workspace.tmp.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(workspace.tmp)  # torch, onnxruntime, transformers temp files too
    tempfile.tempdir = None
    return workspace


def serve(app: Any, host: str, port: int, threads: int, timeout_s: int = 600) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": timeout_s,  # a big upload or download may hold a thread for minutes
        "graceful_timeout": 10,
        "accesslog": "-",
        "errorlog": "-",
        "control_socket_disable": True,  # gunicorn 24+ would otherwise create ~/.gunicorn/gunicorn.ctl
    }
    if os.path.isdir("/dev/shm"):
        options["worker_tmp_dir"] = "/dev/shm"  # the heartbeat file; never the workspace volume or /tmp
    _Gunicorn(app, options).run()
