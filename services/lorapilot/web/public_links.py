"""The address at which the user's browser opens one of the appliance's service ports.

On a rented pod the services listen inside a container the browser cannot reach by its own address:
RunPod proxies each HTTP port at `https://<pod id>-<port>.proxy.runpod.net/`. Behind another proxy or
tunnel, `LORAPILOT_PUBLIC_URL` is the pattern, with `{port}` where the port goes. Without either, a
link is the host the page was loaded from, on the service's own port. Every page link to a service
port is built here, so the three cases stay one rule.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from lorapilot.errors import LoraPilotError

RUNPOD_POD_ENV = "RUNPOD_POD_ID"  # set by RunPod in every pod
PUBLIC_URL_ENV = "LORAPILOT_PUBLIC_URL"
PORT_PLACEHOLDER = "{port}"
RUNPOD_PROXY_PATTERN = "https://{pod_id}-" + PORT_PLACEHOLDER + ".proxy.runpod.net/"
# The web services a page links to: name → (environment variable with its port, default port).
SERVICE_PORTS: dict[str, tuple[str, int]] = {
    "tagpilot": ("LORAPILOT_TAGPILOT_PORT", 7861),
    "controlpilot": ("LORAPILOT_CONTROLPILOT_PORT", 7878),
    "comfyui": ("LORAPILOT_COMFYUI_PORT", 8188),
}
_POD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}")
_PATTERN_EXAMPLES = "e.g. https://gpu.example.com:{port}/ or https://{port}.example.com/"


class PublicLinkError(LoraPilotError):
    """A public-address setting that cannot make a link; the message names the variable and the fix."""


@dataclass(frozen=True)
class PublicLinks:
    """How links to service ports are made: a pattern with `{port}`, or None for the page's own host."""

    pattern: str | None
    source: str  # the variable the pattern came from, or "the page's host"
    ports: Mapping[str, int]  # the web services' ports by program name (service_ports)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PublicLinks:
        """LORAPILOT_PUBLIC_URL when set (a deliberate choice wins), else RunPod's proxy, else the host."""
        environ = os.environ if environ is None else environ
        ports = service_ports(environ)
        custom = environ.get(PUBLIC_URL_ENV, "").strip()
        if custom:
            return cls(_checked_pattern(custom), PUBLIC_URL_ENV, ports)
        pod_id = environ.get(RUNPOD_POD_ENV, "").strip()
        if pod_id:
            if not _POD_ID.fullmatch(pod_id):
                raise PublicLinkError(
                    f"{RUNPOD_POD_ENV}={pod_id!r} is not a RunPod pod id (letters, digits and dashes); "
                    f"unset it, or set {PUBLIC_URL_ENV} to the address pattern ({_PATTERN_EXAMPLES})"
                )
            return cls(RUNPOD_PROXY_PATTERN.replace("{pod_id}", pod_id), RUNPOD_POD_ENV, ports)
        return cls(None, "the page's host", ports)

    def url(self, port: int, page_url: str) -> str:
        """The address of `port` for a browser that loaded `page_url` (e.g. Flask's request.host_url)."""
        if self.pattern is not None:
            return self.pattern.replace(PORT_PLACEHOLDER, str(port))
        page = urlsplit(page_url)
        host = page.hostname or "127.0.0.1"
        if ":" in host:  # an IPv6 address goes back in brackets
            host = f"[{host}]"
        return f"{page.scheme or 'http'}://{host}:{port}/"

    def services(self, page_url: str) -> dict[str, str]:
        """Every web service's link, by program name."""
        return {name: self.url(port, page_url) for name, port in self.ports.items()}


def service_ports(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """The appliance's web ports (LORAPILOT_*_PORT, as supervisord.conf passes them; else defaults)."""
    environ = os.environ if environ is None else environ
    ports = {}
    for name, (variable, default) in SERVICE_PORTS.items():
        raw = environ.get(variable, "").strip() or str(default)
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise PublicLinkError(f"{variable}={raw!r} is not a port; set it to a number from 1 to 65535")
        ports[name] = int(raw)
    return ports


def _checked_pattern(pattern: str) -> str:
    """The pattern as links use it: http(s), `{port}` in it, a host, and a path ending in / at least."""
    problem = ""
    if pattern.count(PORT_PLACEHOLDER) < 1:
        problem = f"it has no {PORT_PLACEHOLDER} placeholder for the service's port"
    elif re.search(r"[{}]", pattern.replace(PORT_PLACEHOLDER, "")):
        problem = f"the only placeholder it may hold is {PORT_PLACEHOLDER}"
    elif re.search(r"\s", pattern):
        problem = "it contains whitespace"
    else:
        parts = urlsplit(pattern.replace(PORT_PLACEHOLDER, "1"))
        if parts.scheme not in ("http", "https"):
            problem = "it does not start with http:// or https://"
        elif not parts.hostname:
            problem = "it names no host"
        elif not _port_ok(parts):
            problem = "its port is not {port} or a number"
        elif parts.username or parts.password:
            problem = "it holds a user name or password, which every page would show"
    if problem:
        raise PublicLinkError(
            f"{PUBLIC_URL_ENV}={pattern!r} cannot make links: {problem}; {_PATTERN_EXAMPLES}"
        )
    return pattern if urlsplit(pattern.replace(PORT_PLACEHOLDER, "1")).path else pattern + "/"


def _port_ok(parts: SplitResult) -> bool:
    try:
        parts.port  # noqa: B018 - urllib checks the port when it is read
    except ValueError:
        return False
    return True
