"""The shared login state file stays small, private and usable (issue 16, finding 9)."""

from __future__ import annotations

import pytest

from lorapilot.web.sessions import SessionRegistry
from lorapilot.web.state_db import STATE_FILE, WebStateDb, WebStateError
from lorapilot.web.throttle import PER_CLIENT_ROWS, LoginThrottle
from lorapilot.workspace import Workspace


@pytest.fixture
def db(tmp_path) -> WebStateDb:
    return WebStateDb.of(Workspace.from_env(tmp_path / "ws").ensure())


def failure_rows(db: WebStateDb) -> int:
    with db.read() as connection:
        return connection.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0]


def test_the_file_is_owner_only_and_lives_in_the_workspace_config(db, tmp_path):
    SessionRegistry(db, 60).open()
    assert db.path == tmp_path / "ws" / "config" / STATE_FILE
    assert db.path.stat().st_mode & 0o777 == 0o600


def test_sessions_beyond_the_limit_end_oldest_first(db):
    registry = SessionRegistry(db, 3600, max_sessions=3)
    opened = [registry.open() for _ in range(5)]
    assert registry.count() == 3
    assert [registry.is_open(sid) for sid in opened] == [False, False, True, True, True]


def test_an_expired_session_is_not_open_and_is_dropped_at_the_next_login(db):
    registry = SessionRegistry(db, lifetime_s=-1)  # expired as soon as it is opened
    expired = registry.open()
    assert not registry.is_open(expired)
    SessionRegistry(db, 3600).open()
    assert SessionRegistry(db, 3600).count() == 1


def test_a_guesser_from_one_address_keeps_a_bounded_number_of_rows(db):
    throttle = LoginThrottle(db, max_failures=5, window_s=60)
    for _ in range(PER_CLIENT_ROWS + 50):
        throttle.record_failure("10.0.0.1")
    assert failure_rows(db) == PER_CLIENT_ROWS
    assert throttle.retry_after("10.0.0.1") > 0
    throttle.reset("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0 and failure_rows(db) == 0


def test_failures_older_than_the_window_no_longer_count_and_are_dropped(db):
    old = LoginThrottle(db, max_failures=2, window_s=-1)  # every failure is already out of its window
    old.record_failure("10.0.0.1")
    old.record_failure("10.0.0.1")
    assert LoginThrottle(db, max_failures=2, window_s=-1).retry_after("10.0.0.1") == 0
    assert failure_rows(db) == 0


def test_a_damaged_file_is_replaced_and_everyone_logs_in_again(db):
    registry = SessionRegistry(db, 3600)
    sid = registry.open()
    db.path.write_bytes(b"this is not a database" * 100)
    assert not registry.is_open(sid)
    assert registry.is_open(registry.open())


def test_an_unusable_file_is_a_named_error_not_a_crash(db):
    db.path.mkdir()  # e.g. a volume mounted over it (permissions would not stop root)
    with pytest.raises(WebStateError, match=r"web-state\.sqlite3 cannot be used"):
        SessionRegistry(db, 3600).open()
