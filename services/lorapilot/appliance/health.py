"""The container health check: every program supervisord runs is up, and every web service answers.

Talks to supervisord over its unix socket (XML-RPC), the only control channel it has.
"""

from __future__ import annotations

import configparser
import http.client
import os
import urllib.error
import urllib.request
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

# program → (environment variable holding its port, the path that answers 200 when it is up);
# only programs present in supervisord, and running, are asked
WEB_SERVICES = {
    "tagpilot": ("LORAPILOT_TAGPILOT_PORT", "/healthz"),
    "controlpilot": ("LORAPILOT_CONTROLPILOT_PORT", "/healthz"),
    "comfyui": ("LORAPILOT_COMFYUI_PORT", "/system_stats"),  # ComfyUI has no /healthz
}


@dataclass(frozen=True)
class ProgramHealth:
    name: str
    state: str
    healthy: bool
    detail: str = ""


def socket_path(config: Path) -> Path:
    """The unix socket named in the config's [supervisorctl] serverurl (with %(here)s expanded)."""
    parser = configparser.RawConfigParser()
    parser.read(config)
    url = parser.get("supervisorctl", "serverurl")
    here = str(config.resolve().parent)
    return Path(url.removeprefix("unix://").replace("%(here)s", here))


def supervisor_proxy(config: Path) -> xmlrpc.client.ServerProxy:
    transport = SupervisorTransport(None, None, f"unix://{socket_path(config)}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def check(config: Path, timeout: float = 5.0) -> list[ProgramHealth]:
    results = []
    for info in supervisor_proxy(config).supervisor.getAllProcessInfo():
        name, state = info["name"], info["statename"]
        if state != "RUNNING":
            results.append(ProgramHealth(name, state, healthy=state == "STOPPED" and not info["pid"]))
            continue
        variable, path = WEB_SERVICES.get(name, ("", ""))
        port = os.environ.get(variable, "") if variable else ""
        if not port:
            results.append(ProgramHealth(name, state, healthy=True))
            continue
        url = f"http://127.0.0.1:{port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                ok = answer.status == 200
                results.append(ProgramHealth(name, state, ok, f"{url} answered {answer.status}"))
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            results.append(ProgramHealth(name, state, healthy=False, detail=f"{url}: {exc}"))
    return results
