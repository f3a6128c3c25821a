"""A file in the spool that cannot be read as a job never holds the queue (issue 16, finding 2).

Whatever is wrong with it — its name, a date that does not exist, a number too long to convert, a
value JSON cannot carry — it is a record with `problem` set for every reader, and the daemon moves
it to failed/ with the reason, once, whatever else is queued or running.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from lorapilot.spool import Job, JobState, Spool
from lorapilot.spool.views import all_views, job_view
from lorapilot.trainpilot.daemon import Daemon
from lorapilot.trainpilot.job_text import describe, table
from lorapilot.workspace import Workspace

T0 = datetime(2025, 2, 11, 12, 0, tzinfo=UTC)
ENVELOPE = "trainpilot_job: 1\nname: {name}\nprofile: quick_test\n"

# file name → (text, a word the reason names)
POISON = {
    "my job.yaml": ("model: {path: x}\n", "file name"),
    "bad_created.yaml": ("created: 2024-02-30\nmodel: {path: x}\n", "out of range"),
    "bad_submitted.yaml": (ENVELOPE.format(name="bad_submitted") + "submitted_at: 2024-02-30\n", "range"),
    "huge.yaml": (ENVELOPE.format(name="huge") + "priority: " + "9" * 5000 + "\n", "digits"),
    "huge_plain.yml": ("max_train_steps: " + "7" * 5000 + "\n", "digits"),
    "binary_spec.yaml": (ENVELOPE.format(name="binary_spec") + "spec: {x: !!binary aGVsbG8=}\n", "spec"),
    "far_future.yaml": (
        ENVELOPE.format(name="far_future") + "submitted_at: 9999-12-31T23:59:00-12:00\n",
        "submitted_at",
    ),
}


@pytest.fixture
def spool(tmp_path) -> Spool:
    return Spool(Workspace.from_env(tmp_path / "ws").ensure())


def good(spool: Spool, name: str = "good", minutes: int = 0) -> None:
    spool.submit(Job(name=name, submitted_at=T0 + timedelta(minutes=minutes), profile="quick_test"))


def drop(spool: Spool, state: JobState, name: str, text: str) -> None:
    folder = spool.folder(state)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


@pytest.mark.parametrize("file_name", sorted(POISON))
def test_an_unreadable_file_is_a_record_with_its_problem_not_an_exception(spool, file_name):
    text, reason = POISON[file_name]
    good(spool)
    drop(spool, JobState.QUEUED, file_name, text)
    records = {r.id: r for r in spool.records()}
    stem = file_name.rsplit(".", 1)[0]
    assert records[stem].job is None and reason in records[stem].problem
    assert records[stem].state is JobState.QUEUED
    assert [r.id for r in spool.queued()].count(stem) == 1
    assert spool.find("good").job is not None  # lookups by name still work
    assert spool.find(stem).problem is not None
    good(spool, "another")  # the name check of a submit reads every record too
    views = all_views(spool)
    assert {v["name"]: v["error"] is not None for v in views}[stem]
    json.dumps(views)
    table(views)
    describe(job_view(spool, records[stem]))


def test_the_daemon_fails_each_unreadable_file_once_and_keeps_the_good_jobs(spool, caplog):
    good(spool, "first", minutes=0)
    for file_name, (text, _) in POISON.items():
        drop(spool, JobState.QUEUED, file_name, text)
    good(spool, "behind", minutes=5)
    daemon = Daemon(spool.ws)
    with caplog.at_level(logging.INFO, logger="lorapilot.trainpilot.daemon"):
        failed = daemon.fail_unreadable()
        assert daemon.fail_unreadable() == []  # once: nothing is left to fail on the next tick
    assert sorted(r.id for r in failed) == sorted(f.rsplit(".", 1)[0] for f in POISON)
    assert sorted(r.name for r in spool.queued()) == ["behind", "first"]
    failed_dir = spool.folder(JobState.FAILED)
    for file_name, (_, reason) in POISON.items():
        stem = file_name.rsplit(".", 1)[0]
        assert (failed_dir / file_name).is_file()
        error = (failed_dir / f"{stem}.error").read_text(encoding="utf-8")
        assert error.startswith("invalid job:") and reason in error
        assert reason in spool.error_of(spool.find(stem))
    assert "Traceback" not in caplog.text
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == len(POISON)


def test_an_unreadable_file_left_in_running_is_failed_not_resumed(spool):
    drop(spool, JobState.RUNNING, "hand made.yaml", "trainpilot_job: 1\n")
    failed = Daemon(spool.ws).fail_unreadable()
    assert [r.id for r in failed] == ["hand made"]
    assert (spool.folder(JobState.FAILED) / "hand made.error").is_file()
    assert not list(spool.folder(JobState.RUNNING).iterdir())


@pytest.mark.parametrize("state", [JobState.DONE, JobState.FAILED, JobState.CANCELLED])
def test_an_unreadable_file_in_a_terminal_folder_is_shown_and_left_alone(spool, state):
    drop(spool, state, "odd name.yaml", "created: 2024-02-30\n")
    assert Daemon(spool.ws).fail_unreadable() == []
    (view,) = all_views(spool)
    assert view["state"] == state.value and view["name"] == "odd name"
    assert "out of range" in view["error"]
    assert (spool.folder(state) / "odd name.yaml").is_file()


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RUNNING])
def test_a_file_name_too_long_for_its_error_file_fails_under_a_shorter_one(spool, state):
    """`<id>.error` is one byte longer than `<id>.yaml`: a 250-byte stem must not lose its reason."""
    name = "x" * 250 + ".yml"
    drop(spool, state, name, ENVELOPE.format(name="long"))
    (failed,) = Daemon(spool.ws).fail_unreadable()
    error = failed.path.with_suffix(".error")
    assert failed.path.parent == spool.folder(JobState.FAILED) and error.is_file()
    assert failed.id.startswith("x" * 100) and len(failed.path.name) < 255
    assert "give it a shorter name" in spool.error_of(spool.find(failed.id))


def test_a_job_whose_spec_output_is_not_a_mapping_has_the_default_run_folder(spool):
    """The worker refuses such a spec; until then the views show where its run would be."""
    text = ENVELOPE.format(name="odd_output") + "spec: {output: x}\n"
    drop(spool, JobState.QUEUED, "odd_output.yaml", text)
    record = spool.find("odd_output")
    assert spool.run_folder(record) == spool.ws.outputs / "odd_output"
    json.dumps(all_views(spool))
