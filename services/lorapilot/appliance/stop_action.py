"""What idle stop does when the countdown ends: save every job, then stop the machine.

Saving: the trainpilot program is stopped through supervisord's XML-RPC on its unix socket; its
SIGTERM makes running jobs save their state and stay in running/, so the next start resumes them.
Stopping: on RunPod, RunPod's own API client (the `runpod` package: a GraphQL `podStop` or
`podTerminate` to RUNPOD_API_BASE_URL, by default https://api.runpod.io) with the pod's
RUNPOD_API_KEY; elsewhere the user's shell command. The API key and the command (a webhook URL may
carry a token) never reach a log.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import xmlrpc.client
from collections.abc import Mapping
from pathlib import Path

from supervisor import xmlrpc as supervisor_xmlrpc

from lorapilot.appliance.health import supervisor_proxy
from lorapilot.appliance.idle_settings import API_KEY_ENV, StopAction
from lorapilot.errors import LoraPilotError

log = logging.getLogger(__name__)
TRAINPILOT = "trainpilot"  # the supervisord program whose jobs must be saved first
COMMAND_TIMEOUT_S = 120.0
_POD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # RunPod's ids; anything else must not reach a query


class StopActionError(LoraPilotError):
    """The stop did not happen; the message says why and what to check."""


def stop_trainpilot(supervisor_config: Path) -> str:
    """Stop the trainpilot program and wait until it has (its jobs saved); its state before, in words."""
    rpc = supervisor_proxy(supervisor_config).supervisor
    try:
        info = rpc.getProcessInfo(TRAINPILOT)
        if info["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
            rpc.stopProcess(TRAINPILOT, True)  # returns once supervisord saw it exit
            return "stopped"
        return f"already {info['statename'].lower()}"
    except xmlrpc.client.Fault as fault:
        if fault.faultCode == supervisor_xmlrpc.Faults.NOT_RUNNING:
            return "already stopped"
        raise StopActionError(f"supervisord refused to stop {TRAINPILOT}: {fault.faultString}") from None
    except OSError as exc:
        raise StopActionError(
            f"supervisord is not reachable over its socket ({exc}), so the jobs could not be saved"
        ) from None


def start_trainpilot(supervisor_config: Path) -> None:
    """Start trainpilot again (the stop failed, or a job came in after it and the machine still runs)."""
    try:
        supervisor_proxy(supervisor_config).supervisor.startProcess(TRAINPILOT, True)
    except xmlrpc.client.Fault as fault:
        if fault.faultCode != supervisor_xmlrpc.Faults.ALREADY_STARTED:
            log.error("could not start %s again: %s", TRAINPILOT, fault.faultString)
    except OSError as exc:
        log.error("could not start %s again: supervisord is not reachable (%s)", TRAINPILOT, exc)


def run_action(action: StopAction, env: Mapping[str, str] | None = None) -> None:
    """Stop the pod or run the command; StopActionError when it did not work."""
    env = os.environ if env is None else env
    if action.kind == "command":
        _run_command(action.command or "", env)
    else:
        _runpod(action.pod_id or "", env.get(API_KEY_ENV, ""), remove=action.kind == "runpod_remove")


def _runpod(pod_id: str, api_key: str, *, remove: bool) -> None:
    if not _POD_ID.match(pod_id):
        raise StopActionError(f"RUNPOD_POD_ID {pod_id[:80]!r} is not a RunPod pod id (letters and digits)")
    import requests  # noqa: PLC0415 - runpod's transport, for its errors
    import runpod  # noqa: PLC0415 - a large import, needed once, at the stop
    from runpod import error as runpod_error  # noqa: PLC0415

    runpod.api_key = api_key
    verb = "remove" if remove else "stop"
    try:
        if remove:
            runpod.terminate_pod(pod_id)
        else:
            runpod.stop_pod(pod_id)
    except runpod_error.AuthenticationError as exc:
        raise StopActionError(f"RunPod refused the API key in {API_KEY_ENV} ({exc}); check it") from None
    except (runpod_error.QueryError, runpod_error.RunPodError) as exc:
        raise StopActionError(f"RunPod did not {verb} pod {pod_id}: {exc}") from None
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise StopActionError(f"RunPod's API did not answer the {verb} of pod {pod_id}: {exc}") from None
    log.info("asked RunPod to %s pod %s", verb, pod_id)


def _run_command(command: str, env: Mapping[str, str]) -> None:
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        limit = f"{COMMAND_TIMEOUT_S:.0f} s"
        raise StopActionError(f"the idle-stop command did not finish within {limit}") from None
    except OSError as exc:
        raise StopActionError(f"the idle-stop command could not start: {exc}") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()[-300:]
        raise StopActionError(
            f"the idle-stop command exited with code {done.returncode}" + (f": {said}" if said else "")
        )
    log.info("the idle-stop command finished (exit code 0)")
