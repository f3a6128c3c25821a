"""Idle stop's settings: `config/idle.yaml` (ControlPilot's dashboard writes the same file).

```yaml
mode: idle            # off (the default) | idle | at | after_queue
idle_minutes: 30      # idle: stop after this long with nothing running and nobody on a page
at: "23:30"           # at: stop at this time of day (the container's clock)
grace_minutes: 5      # after_queue: wait this long after the queue drained, then stop
on_runpod: stop       # on RunPod: stop (the volume stays, billing for the GPU ends) | remove | command
command: poweroff     # elsewhere (or with on_runpod: command): a shell command, e.g. a curl webhook
```

An idle stop with nothing to do would be a silent no-op, so a mode other than `off` without an
action (not on RunPod and no `command`) is refused, when saved and when read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lorapilot.atomic_files import write_atomic
from lorapilot.errors import LoraPilotError
from lorapilot.settings_file import read_settings_yaml
from lorapilot.workspace import Workspace

POD_ID_ENV = "RUNPOD_POD_ID"
API_KEY_ENV = "RUNPOD_API_KEY"
MODES = ("off", "idle", "at", "after_queue")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class IdleSettingsError(LoraPilotError):
    """config/idle.yaml (or the settings sent to ControlPilot) cannot be used; the message says why."""


class IdleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["off", "idle", "at", "after_queue"] = "off"
    idle_minutes: float = Field(30.0, gt=0, le=7 * 24 * 60)
    at: str | None = None
    grace_minutes: float = Field(5.0, ge=0, le=24 * 60)
    on_runpod: Literal["stop", "remove", "command"] = "stop"
    command: str | None = None

    @field_validator("at")
    @classmethod
    def _time_of_day(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        found = _TIME.match(value.strip())
        if found is None:
            raise ValueError(f"a time of day as HH:MM (24-hour clock), e.g. 23:30; found {value!r}")
        return f"{int(found.group(1)):02d}:{found.group(2)}"

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if "\x00" in value or "\n" in value:
            raise ValueError("one line of shell command, e.g. poweroff")
        return value.strip()

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def at_time(self) -> time:
        hours, minutes = (self.at or "00:00").split(":")
        return time(int(hours), int(minutes))

    def next_at(self, after: float) -> float:
        """The first moment after `after` (epoch seconds) that the clock shows `at`."""
        start = datetime.fromtimestamp(after).astimezone()
        candidate = datetime.combine(start.date(), self.at_time(), start.tzinfo)
        if candidate.timestamp() <= after:
            candidate += timedelta(days=1)
        return candidate.timestamp()

    def action(self, env: Mapping[str, str] | None = None) -> StopAction:
        """What stopping does here; IdleSettingsError when there is nothing it could do."""
        env = os.environ if env is None else env
        pod_id, api_key = env.get(POD_ID_ENV, ""), env.get(API_KEY_ENV, "")
        if pod_id and api_key and self.on_runpod != "command":
            return StopAction(kind=f"runpod_{self.on_runpod}", pod_id=pod_id)
        if self.command:
            return StopAction(kind="command", command=self.command)
        where = (
            "on RunPod with on_runpod: command"
            if pod_id and api_key
            else f"not on RunPod ({POD_ID_ENV} and {API_KEY_ENV} are not both set)"
        )
        raise IdleSettingsError(
            f"idle stop has no action: {where} and `command` is empty. Set `command` (e.g. poweroff, or a "
            "curl to a webhook) or turn idle stop off (mode: off)"
        )

    def check(self, env: Mapping[str, str] | None = None) -> None:
        """Refuse an enabled stop without an action, and `at` mode without a time."""
        if self.mode == "at" and self.at is None:
            raise IdleSettingsError("mode at needs `at`, the time of day to stop (HH:MM), e.g. 23:30")
        if self.enabled:
            self.action(env)


@dataclass(frozen=True)
class StopAction:
    kind: str  # runpod_stop | runpod_remove | command
    pod_id: str | None = None
    command: str | None = None

    def describe(self) -> str:
        """For the page and the log; never the command itself (a webhook URL may hold a token)."""
        if self.kind == "command":
            return "run the configured command"
        verb = "stop" if self.kind == "runpod_stop" else "remove"
        return f"{verb} RunPod pod {self.pod_id}"


def load_idle_settings(workspace: Workspace) -> IdleSettings:
    """The file's settings (defaults, i.e. off, when there is no file)."""
    path = workspace.idle_config
    data = read_settings_yaml(path, workspace.display(path), IdleSettingsError)
    if data is None:
        return IdleSettings()
    return parse_idle_settings(data, workspace.display(path))


def parse_idle_settings(data: object, where: str) -> IdleSettings:
    if not isinstance(data, dict):
        found = type(data).__name__
        raise IdleSettingsError(f"{where}: expected a mapping such as `mode: idle`, found {found}")
    try:
        return IdleSettings.model_validate(data)
    except ValidationError as exc:
        raise IdleSettingsError(f"{where}: {explain(exc)}") from None


def explain(exc: ValidationError) -> str:
    """Every wrong field with what it takes; unknown ones with the accepted names."""
    lines = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(file)"
        if error["type"] == "extra_forbidden":
            accepted = ", ".join(IdleSettings.model_fields)
            lines.append(f"{field}: unknown setting; accepted: {accepted}")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{field}: {message}, found {error.get('input')!r}")
    return "; ".join(lines)


def save_idle_settings(
    workspace: Workspace, settings: IdleSettings, env: Mapping[str, str] | None = None
) -> Path:
    """Check (an enabled stop needs an action) and write config/idle.yaml atomically."""
    settings.check(env)
    data = settings.model_dump(exclude_none=True)
    header = "# Idle stop (docs/operations.md). Written by ControlPilot; edit by hand or there.\n"
    write_atomic(workspace.idle_config, (header + yaml.safe_dump(data, sort_keys=False)).encode())
    return workspace.idle_config
