"""The two small files idle stop shares with ControlPilot, each written by one side only.

`config/idle-state.json` (the watcher writes it every check): the countdown's deadline, why the
appliance is not idle, and what the stop did. `config/idle-control.json` (ControlPilot writes it):
the user's cancel or postpone. Times are epoch seconds.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from lorapilot.atomic_files import write_atomic
from lorapilot.workspace import Workspace

log = logging.getLogger(__name__)
STALE_AFTER_S = 60.0  # a state older than this: the watcher is not running

_Model = TypeVar("_Model", bound=BaseModel)
Phase = Literal["off", "busy", "countdown", "cancelled", "stopping", "stopped", "failed", "error"]


class IdleState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    phase: Phase = "off"
    mode: str = "off"
    checked_at: float = 0.0
    busy: list[str] = []  # why the appliance is not idle, in words
    deadline: float | None = None  # when the stop happens (postponement included)
    episode: float | None = None  # when this quiet spell (or `at` period) began; a cancel covers it
    quiet_since: float | None = None  # nothing busy since then (idle, after_queue)
    last_busy: float | None = None  # the last check that found something busy
    at: str | None = None  # mode at: the setting `at_deadline` was computed from
    at_deadline: float | None = None  # mode at: the occurrence being counted down to
    action: str | None = None  # what the stop does, in words
    fired_episode: float | None = None  # the episode whose stop has run (it never runs twice)
    fired_at: float | None = None
    error: str | None = None  # settings that cannot be used, or a stop that failed

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.phase != "countdown" or self.deadline is None:
            return None
        return max(0.0, self.deadline - (time.time() if now is None else now))

    def stale(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) - self.checked_at > STALE_AFTER_S


class IdleControl(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cancelled_at: float | None = None  # covers every episode that began before it
    postponed_until: float | None = None  # no stop before then


def read_state(workspace: Workspace) -> IdleState | None:
    return _read(workspace.idle_state, IdleState)


def write_state(workspace: Workspace, state: IdleState) -> None:
    write_atomic(workspace.idle_state, (state.model_dump_json(indent=1) + "\n").encode())


def read_control(workspace: Workspace) -> IdleControl:
    return _read(workspace.idle_control, IdleControl) or IdleControl()


def write_control(workspace: Workspace, control: IdleControl) -> None:
    write_atomic(workspace.idle_control, (control.model_dump_json(indent=1) + "\n").encode())


def _read(path: Path, model: type[_Model]) -> _Model | None:
    try:
        return model.model_validate(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, ValidationError) as exc:  # torn by hand, or a disk error: start afresh
        log.warning("%s cannot be read (%s); ignoring it", path, exc)
        return None
