"""The appliance password and session key: env wins, files are created once, owner-only, never logged."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from lorapilot.web.credentials import (
    ENV_PASSWORD,
    CredentialsError,
    appliance_password,
    read_or_create_secret,
    session_key,
)
from lorapilot.workspace import Workspace


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_PASSWORD, raising=False)
    return Workspace.from_env(tmp_path / "ws")


def test_the_environment_variable_wins_and_nothing_is_written(workspace, monkeypatch):
    monkeypatch.setenv(ENV_PASSWORD, " from-env \n")
    assert appliance_password(workspace) == "from-env"
    assert not (workspace.config / "password").exists()


def test_a_generated_password_is_owner_only_stable_and_not_logged(workspace, caplog):
    with caplog.at_level(logging.DEBUG):
        first = appliance_password(workspace)
    path = workspace.config / "password"
    assert len(first) >= 20 and path.read_text().strip() == first
    assert path.stat().st_mode & 0o777 == 0o600
    assert appliance_password(workspace) == first
    assert str(path) in caplog.text and first not in caplog.text


def test_a_password_file_readable_by_others_is_made_private(workspace):
    path = workspace.config / "password"
    path.parent.mkdir(parents=True)
    path.write_text("chosen-by-hand\n")
    path.chmod(0o644)
    assert appliance_password(workspace) == "chosen-by-hand"
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_empty_secret_file_is_an_error_that_says_the_fix(workspace):
    path = workspace.config / "password"
    path.parent.mkdir(parents=True)
    path.write_text("\n")
    with pytest.raises(CredentialsError, match="delete it to regenerate"):
        appliance_password(workspace)


def test_services_starting_together_agree_on_one_secret(tmp_path):
    path = tmp_path / "config" / "key"
    results, counter = [], iter(range(100))
    lock = threading.Lock()

    def generate():
        with lock:
            return f"secret-{next(counter)}"

    threads = [
        threading.Thread(target=lambda: results.append(read_or_create_secret(path, generate)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({value for _, value in results}) == 1
    assert sum(created for created, _ in results) == 1
    assert [name for name in os.listdir(path.parent)] == ["key"]  # no temp files left behind


def test_the_session_key_is_shared_by_services_of_one_workspace(workspace):
    assert session_key(workspace) == session_key(Workspace.from_env(workspace.root))
    assert (workspace.config / "web-session-key").stat().st_mode & 0o777 == 0o600
