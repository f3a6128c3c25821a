"""config/idle.yaml: off by default, every field checked with a message naming it, and an enabled
idle stop refused when there is nothing it could do."""

from __future__ import annotations

from datetime import datetime

import pytest

from lorapilot.appliance.idle_settings import (
    IdleSettings,
    IdleSettingsError,
    load_idle_settings,
    save_idle_settings,
)
from lorapilot.workspace import Workspace

RUNPOD = {"RUNPOD_POD_ID": "abc123", "RUNPOD_API_KEY": "rp-key"}


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace.from_env(tmp_path / "ws").ensure()


def test_without_a_file_idle_stop_is_off(ws):
    assert load_idle_settings(ws).mode == "off"
    assert not load_idle_settings(ws).enabled


def test_an_enabled_stop_without_an_action_cannot_be_saved_and_says_what_to_set(ws):
    with pytest.raises(IdleSettingsError, match=r"command.*poweroff.*mode: off") as refused:
        save_idle_settings(ws, IdleSettings(mode="idle"), env={})
    assert "not on RunPod" in str(refused.value)
    assert not ws.idle_config.exists()
    on_runpod_but_command = IdleSettings(mode="idle", on_runpod="command")
    with pytest.raises(IdleSettingsError, match="on RunPod with on_runpod: command"):
        save_idle_settings(ws, on_runpod_but_command, env=RUNPOD)


def test_the_action_is_runpod_on_a_pod_and_the_command_elsewhere(ws):
    settings = IdleSettings(mode="after_queue", command="poweroff")
    assert settings.action({}).kind == "command"
    assert settings.action(RUNPOD).kind == "runpod_stop"
    remove = IdleSettings(mode="idle", on_runpod="remove")
    assert remove.action(RUNPOD).describe() == "remove RunPod pod abc123"
    assert "poweroff" not in settings.action({}).describe()  # a command may hold a webhook token


def test_saved_settings_read_back_the_same(ws):
    settings = IdleSettings(mode="at", at="7:05", command="curl -X POST https://example.invalid/hook")
    save_idle_settings(ws, settings, env={})
    assert load_idle_settings(ws) == settings
    assert load_idle_settings(ws).at == "07:05"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mode: sometimes\n", "mode: Input should be 'off', 'idle', 'at' or 'after_queue'"),
        ("mode: idle\nidle_minuts: 5\n", "idle_minuts: unknown setting; accepted: mode, idle_minutes"),
        ("mode: at\nat: '25:00'\n", "at: a time of day as HH:MM"),
        ("idle_minutes: -1\n", "idle_minutes: Input should be greater than 0"),
        ("- mode\n", "expected a mapping"),
        ("mode: [\n", "not valid YAML"),
    ],
)
def test_a_wrong_file_names_the_file_and_the_field(ws, text, message):
    ws.idle_config.write_text(text)
    with pytest.raises(IdleSettingsError, match=r"/workspace/config/idle\.yaml") as refused:
        load_idle_settings(ws)
    assert message in str(refused.value)


def test_mode_at_needs_a_time():
    with pytest.raises(IdleSettingsError, match="mode at needs `at`"):
        IdleSettings(mode="at", command="poweroff").check({})


def test_next_at_is_the_next_time_the_clock_shows_it():
    settings = IdleSettings(mode="at", at="23:30", command="true")
    evening = datetime(2026, 5, 1, 22, 0).astimezone().timestamp()
    first = settings.next_at(evening)
    assert datetime.fromtimestamp(first).strftime("%d %H:%M") == "01 23:30"
    assert datetime.fromtimestamp(settings.next_at(first)).strftime("%d %H:%M") == "02 23:30"
