"""Idle stop's decision over a made-up clock: when the countdown starts, what holds it back, and that
the stop runs once per quiet spell, with a cancel and a postponement honoured."""

from __future__ import annotations

from lorapilot.appliance.idle_decision import QUEUE, Observation, decide
from lorapilot.appliance.idle_settings import IdleSettings
from lorapilot.appliance.idle_state import IdleControl, IdleState

START = 1_000_000.0
IDLE = IdleSettings(mode="idle", idle_minutes=10, command="poweroff")
NO_CONTROL = IdleControl()


def run(settings, checks, control=NO_CONTROL):
    """Feed the observations through `decide` as the watcher does; every state in order."""
    states, state = [], None
    for seen in checks:
        state = decide(settings, seen, action="x", control=control, previous=state, started_at=START)
        if state.phase == "stopping":  # what the watcher records once the stop ran
            state = state.model_copy(update={"phase": "stopped", "fired_episode": state.episode})
        states.append(state)
    return states


def at(minutes, **busy):
    return Observation(now=START + minutes * 60, busy=busy)


def test_idle_counts_down_from_the_last_busy_moment_and_stops_once():
    states = run(IDLE, [at(1, queue="1 job"), at(2), at(10.5), at(11), at(13), at(60)])
    assert [s.phase for s in states] == ["busy", "countdown", "countdown", "stopped", "stopped", "stopped"]
    assert states[1].deadline == START + 11 * 60


def test_the_watchers_start_counts_as_activity():
    assert run(IDLE, [at(9)])[0].phase == "countdown"
    stale = IdleState(phase="countdown", checked_at=START - 86400, last_busy=START - 86400, mode="idle")
    state = decide(IDLE, at(1), action="x", control=NO_CONTROL, previous=stale, started_at=START)
    assert state.phase == "countdown" and state.deadline == START + 600  # yesterday's quiet does not count


def test_a_job_during_the_countdown_cancels_it_and_the_next_quiet_spell_counts_afresh():
    states = run(IDLE, [at(5), at(7, queue="1 job"), at(9), at(12), at(17.5)])
    assert [s.phase for s in states] == ["countdown", "busy", "countdown", "countdown", "stopped"]
    assert states[2].deadline == START + 17 * 60


def test_page_activity_pushes_the_idle_deadline_back():
    seen = Observation(now=START + 9 * 60, last_page_activity=START + 8 * 60)
    state = run(IDLE, [seen])[0]
    assert state.deadline == START + 18 * 60


def test_comfyui_and_captioning_hold_idle_back_but_not_after_queue():
    after_queue = IdleSettings(mode="after_queue", grace_minutes=1, command="poweroff")
    assert run(IDLE, [at(30, comfyui="ComfyUI is running a prompt")])[0].phase == "busy"
    states = run(after_queue, [at(1, **{QUEUE: "1 job"}), at(1.5, captioning="TagPilot"), at(2.5)])
    assert [s.phase for s in states] == ["busy", "countdown", "stopped"]


def test_a_cancel_covers_this_quiet_spell_only():
    cancel = IdleControl(cancelled_at=START + 5 * 60)
    states = run(IDLE, [at(6), at(30), at(31, queue="1 job"), at(32), at(42.5)], cancel)
    assert [s.phase for s in states] == ["cancelled", "cancelled", "busy", "countdown", "stopped"]


def test_a_postponement_moves_the_deadline():
    later = IdleControl(postponed_until=START + 40 * 60)
    states = run(IDLE, [at(12), at(39), at(40)], later)
    assert [s.phase for s in states] == ["countdown", "countdown", "stopped"]
    assert states[0].deadline == START + 40 * 60


def test_mode_at_stops_at_the_time_whatever_runs_then_moves_to_the_next_day():
    settings = IdleSettings(mode="at", at="03:00", command="poweroff")
    deadline = settings.next_at(START)
    before = Observation(now=deadline - 60, busy={QUEUE: "2 jobs"})
    after = Observation(now=deadline + 1, busy={QUEUE: "2 jobs"})
    later = Observation(now=deadline + 5)
    states = run(settings, [before, after, later])
    assert [s.phase for s in states] == ["countdown", "stopped", "countdown"]
    assert states[2].deadline == settings.next_at(deadline)


def test_off_is_off():
    assert run(IdleSettings(), [at(600)])[0].phase == "off"
