"""The idle-stop watcher (`lorapilot-appliance idle-stop`, supervisord program `idlestop`).

Every few seconds it looks at what keeps the appliance busy (jobs queued or running in the spool,
a prompt ComfyUI runs, TagPilot's captioning, a person on a page), decides
(lorapilot.appliance.idle_decision) and writes config/idle-state.json, which ControlPilot shows as
a countdown with a cancel button. When the countdown ends it saves every job (stops trainpilot),
then stops the pod or runs the user's command, once. A job submitted after that, on a machine that
is evidently still up, starts trainpilot again.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorapilot.appliance.idle_decision import QUEUE, Observation, decide
from lorapilot.appliance.idle_settings import IdleSettings, IdleSettingsError, load_idle_settings
from lorapilot.appliance.idle_state import IdleState, read_control, read_state, write_state
from lorapilot.appliance.stop_action import (
    StopActionError,
    run_action,
    start_trainpilot,
    stop_trainpilot,
)
from lorapilot.comfy.client import ComfyClient
from lorapilot.comfy.errors import ComfyError, SettingsError
from lorapilot.comfy.settings import load_settings, resolve_url
from lorapilot.errors import LoraPilotError
from lorapilot.spool import JobState, Spool
from lorapilot.web.activity import CAPTIONING, ActivityLog
from lorapilot.web.state_db import WebStateDb
from lorapilot.workspace import Workspace

log = logging.getLogger(__name__)
CHECK_ENV = "LORAPILOT_IDLE_CHECK_S"  # seconds between checks (tests shorten it)
DEFAULT_CHECK_S = 5.0
COMFY_TIMEOUT_S = 1.0


@dataclass
class Observer:
    """What keeps the appliance busy right now."""

    workspace: Workspace

    def __post_init__(self) -> None:
        self.spool = Spool(self.workspace)
        self.activity = ActivityLog(WebStateDb.of(self.workspace))

    def observe(self) -> Observation:
        busy: dict[str, str] = {}
        jobs = len(self.spool.records([JobState.QUEUED, JobState.RUNNING]))
        if jobs:
            busy[QUEUE] = f"{jobs} training job{'s' if jobs > 1 else ''} queued or running"
        if self._comfy_running():
            busy["comfyui"] = "ComfyUI is running a prompt"
        last_page = None
        try:
            snapshot = self.activity.snapshot()
            last_page = snapshot.last_page_activity
            if CAPTIONING in snapshot.busy:
                busy[CAPTIONING] = "TagPilot is captioning"
        except LoraPilotError as exc:  # an unusable state file: count it as busy, never stop blind
            busy["activity"] = f"page activity unknown: {exc}"
        return Observation(now=time.time(), busy=busy, last_page_activity=last_page)

    def _comfy_running(self) -> bool:
        try:
            url = load_settings(self.workspace).url
        except SettingsError:
            url = resolve_url(None)[0]
        try:
            queue = ComfyClient(url, timeout=COMFY_TIMEOUT_S, retries=0).queue()
        except (ComfyError, ValueError):
            return False  # ComfyUI not running (or not installed): it runs nothing
        if not isinstance(queue, dict):
            return False
        return bool(queue.get("queue_running") or queue.get("queue_pending"))

    def jobs_submitted_after(self, moment: float) -> int:
        return sum(1 for r in self.spool.queued() if r.submitted_at.timestamp() > moment)


@dataclass
class Watcher:
    workspace: Workspace
    supervisor_config: Path
    check_s: float = DEFAULT_CHECK_S
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    started_at: float = field(default_factory=time.time)
    stopping: bool = False
    _restarted_after: float | None = field(default=None, init=False)  # the stop trainpilot came back from

    def __post_init__(self) -> None:
        self.observer = Observer(self.workspace)

    def serve(self) -> None:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        log.info("watching %s every %.1f s", self.workspace.root, self.check_s)
        try:
            while not self.stopping:
                try:
                    self.check()
                except Exception:  # one bad check (a full disk) must not end the watcher
                    log.exception("idle-stop check failed")
                time.sleep(self.check_s)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.stopping = True

    def check(self) -> IdleState:
        """One look, one decision, the state written; the stop itself when the countdown ended."""
        previous = read_state(self.workspace)
        seen = self.observer.observe()
        try:
            settings = load_idle_settings(self.workspace)
            action = settings.action(self.env) if settings.enabled else None
        except IdleSettingsError as exc:
            state = IdleState(phase="error", mode="?", checked_at=seen.now, busy=list(seen.busy.values()))
            state = state.model_copy(update={"error": str(exc)})
            if previous is None or previous.error != state.error:
                log.error("%s", exc)
            write_state(self.workspace, state)
            return state
        self._restart_after_stop(previous)
        state = decide(
            settings,
            seen,
            action=action.describe() if action else "",
            control=read_control(self.workspace),
            previous=previous,
            started_at=self.started_at,
        )
        if previous is None or previous.phase != state.phase:
            log.info("idle stop: %s%s", state.phase, f" ({'; '.join(state.busy)})" if state.busy else "")
        if state.phase == "stopping" and action is not None:
            state = self._stop(settings, state, action)
        write_state(self.workspace, state)
        return state

    def _stop(self, settings: IdleSettings, state: IdleState, action: Any) -> IdleState:
        write_state(self.workspace, state)  # ControlPilot shows "stopping" while the jobs save
        fired = {"fired_episode": state.episode, "fired_at": time.time(), "deadline": None}
        log.info("idle stop (%s): saving every job, then: %s", settings.mode, action.describe())
        try:
            how = stop_trainpilot(self.supervisor_config)
            log.info("trainpilot %s; every job's state is saved", how)
            run_action(action, self.env)
        except StopActionError as exc:
            log.error("idle stop failed: %s", exc)
            start_trainpilot(self.supervisor_config)  # the queue must not stay stuck
            return state.model_copy(update=fired | {"phase": "failed", "error": str(exc)})
        return state.model_copy(update=fired | {"phase": "stopped", "error": None})

    def _restart_after_stop(self, previous: IdleState | None) -> None:
        """A job queued after the stop ran, and the machine still runs: serve it."""
        fired_at = previous.fired_at if previous is not None else None
        if fired_at is None or fired_at == self._restarted_after:
            return
        if self.observer.jobs_submitted_after(fired_at):
            self._restarted_after = fired_at
            log.info("a job was queued after idle stop ran and the machine still runs; starting trainpilot")
            start_trainpilot(self.supervisor_config)


def run(workspace: Workspace, supervisor_config: Path) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_s = float(os.environ.get(CHECK_ENV) or DEFAULT_CHECK_S)
    Watcher(workspace.ensure(), supervisor_config, check_s=check_s).serve()
    return 0
