"""Idle stop's decision, as one pure function of the settings, what the watcher saw, the user's
cancel or postpone and the previous state: the watcher acts on it, tests call it with any clock.

An *episode* is one stretch the stop counts down over: a quiet spell (mode idle: nothing busy and
nobody on a page; after_queue: no job queued or running) or, in mode at, the wait for one
occurrence of the time. A cancel covers the episodes that began before it; the stop runs at most
once per episode, so it never repeats on every check, and the next episode needs new activity.
The watcher's own start counts as activity: a pod resumed the next day does not stop at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lorapilot.appliance.idle_settings import IdleSettings
from lorapilot.appliance.idle_state import IdleControl, IdleState

QUEUE = "queue"  # the key of the training queue among the busy reasons


@dataclass(frozen=True)
class Observation:
    now: float
    busy: dict[str, str] = field(default_factory=dict)  # source → why it is busy, in words
    last_page_activity: float | None = None


def decide(
    settings: IdleSettings,
    seen: Observation,
    *,
    action: str,
    control: IdleControl,
    previous: IdleState | None,
    started_at: float,
) -> IdleState:
    """The state after this check; phase `stopping` means: stop now (the watcher does it)."""
    prev = previous if previous is not None and previous.checked_at >= started_at else None
    now = seen.now
    relevant = _relevant_busy(settings, seen)
    last_busy = now if relevant else max((prev.last_busy or 0.0) if prev else 0.0, started_at)
    state = IdleState(
        mode=settings.mode,
        checked_at=now,
        busy=list(seen.busy.values()),
        last_busy=last_busy,
        action=action,
        fired_episode=prev.fired_episode if prev else None,
        fired_at=prev.fired_at if prev else None,
    )
    if not settings.enabled:
        return state.model_copy(update={"phase": "off"})
    if settings.mode == "at":
        episode, deadline = _at_episode(settings, control, prev, now)
        state = state.model_copy(update={"at": settings.at, "at_deadline": deadline})
    else:
        quiet_since = last_busy
        if settings.mode == "idle" and seen.last_page_activity is not None:
            quiet_since = max(quiet_since, seen.last_page_activity)
        minutes = settings.idle_minutes if settings.mode == "idle" else settings.grace_minutes
        episode, deadline = quiet_since, quiet_since + minutes * 60
        state = state.model_copy(update={"quiet_since": quiet_since})
        if relevant:
            return state.model_copy(update={"phase": "busy"})
    state = state.model_copy(update={"episode": episode})
    if state.fired_episode == episode and prev is not None:
        kept = prev.phase if prev.phase in ("stopped", "failed") else "stopped"
        return state.model_copy(update={"phase": kept, "error": prev.error})
    if _cancelled(control, episode):
        return state.model_copy(update={"phase": "cancelled"})
    deadline = max(deadline, control.postponed_until or 0.0)
    phase = "stopping" if now >= deadline else "countdown"
    return state.model_copy(update={"phase": phase, "deadline": deadline})


def _relevant_busy(settings: IdleSettings, seen: Observation) -> bool:
    """What holds the stop back: everything in mode idle, the queue in after_queue, nothing in at."""
    if settings.mode == "idle":
        return bool(seen.busy)
    if settings.mode == "after_queue":
        return QUEUE in seen.busy
    return False


def _at_episode(
    settings: IdleSettings, control: IdleControl, prev: IdleState | None, now: float
) -> tuple[float, float]:
    """(episode start, deadline) of mode at: the occurrence counted down to since the settings (or
    this watcher) started, moved on to the next day once it has run or was cancelled."""
    if prev is not None and prev.mode == "at" and prev.at == settings.at and prev.at_deadline:
        episode, deadline = prev.episode or now, prev.at_deadline
    else:
        episode, deadline = now, settings.next_at(now)
    ran = prev is not None and prev.fired_episode == episode
    if now >= deadline and (ran or _cancelled(control, episode)):
        episode, deadline = deadline, settings.next_at(deadline)
    return episode, deadline


def _cancelled(control: IdleControl, episode: float) -> bool:
    return control.cancelled_at is not None and control.cancelled_at >= episode
