"""The spool's file protocol: submit, order, claim, adopt, finish, cancel, retry, name uniqueness."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from lorapilot.spool import (
    Job,
    JobNotFoundError,
    JobState,
    NameTakenError,
    Spool,
    WrongStateError,
)
from lorapilot.spool.store import DaemonInfo, try_lock
from lorapilot.workspace import Workspace

T0 = datetime(2025, 2, 11, 12, 0, tzinfo=UTC)


@pytest.fixture
def spool(tmp_path) -> Spool:
    return Spool(Workspace.from_env(tmp_path / "ws").ensure())


def job(name: str, priority: int = 0, minutes: int = 0) -> Job:
    return Job(name=name, priority=priority, submitted_at=T0 + timedelta(minutes=minutes), profile="p")


def test_submit_writes_a_job_file_in_incoming_and_nothing_else(spool):
    record = spool.submit(job("a"))
    incoming = spool.folder(JobState.QUEUED)
    assert [p.name for p in incoming.iterdir()] == [f"{record.id}.yaml"]
    found = spool.find("a")
    assert found.id == record.id and found.state is JobState.QUEUED and found.job.profile == "p"
    assert spool.find(record.id).name == "a"


def test_queue_order_is_priority_then_submit_time(spool):
    spool.submit(job("late", minutes=2))
    spool.submit(job("early", minutes=1))
    spool.submit(job("urgent", priority=5, minutes=3))
    spool.submit(job("lowest", priority=-1, minutes=0))
    assert [r.name for r in spool.queued()] == ["urgent", "early", "late", "lowest"]


def test_a_name_is_unique_across_every_state(spool):
    first = spool.submit(job("same"))
    with pytest.raises(NameTakenError, match=r"'same' already exists \(queued"):
        spool.submit(job("same"))
    claim = spool.claim(first)
    spool.finish(claim, JobState.FAILED, "boom")
    with pytest.raises(NameTakenError, match=r"failed.*trainpilot retry same"):
        spool.submit(job("same"))


def test_a_run_folder_that_exists_already_takes_the_name(spool):
    folder = spool.ws.outputs / "old"
    folder.mkdir(parents=True)
    (folder / "old.safetensors").write_bytes(b"x")
    with pytest.raises(NameTakenError, match="already holds a run named 'old'"):
        spool.submit(job("old"))


def test_only_one_claim_wins(spool):
    record = spool.submit(job("a"))
    first = spool.claim(record)
    assert first is not None and first.record.state is JobState.RUNNING
    assert spool.claim(record) is None  # the file has moved
    assert spool.adopt(first.record) is None  # and it is locked by its owner
    first.release()
    adopted = spool.adopt(spool.find("a"))  # the owner is gone: anyone may adopt it
    assert adopted is not None
    adopted.release()


def test_a_queued_job_being_claimed_cannot_be_claimed_twice(spool):
    record = spool.submit(job("a"))
    holder = try_lock(record.path)  # another daemon is between its lock and its rename
    assert spool.claim(record) is None
    os.close(holder)
    assert spool.claim(record) is not None


def test_finish_moves_the_job_and_keeps_the_error(spool):
    claim = spool.claim(spool.submit(job("a")))
    done = spool.finish(claim, JobState.FAILED, "training.learning_rate: must be positive")
    assert done.state is JobState.FAILED and done.path.parent == spool.folder(JobState.FAILED)
    assert spool.error_of(spool.find("a")) == "training.learning_rate: must be positive"
    assert not list(spool.folder(JobState.RUNNING).iterdir())


def test_cancel_moves_an_unowned_job_at_once_and_asks_the_owner_otherwise(spool):
    queued = spool.submit(job("q"))
    record, now = spool.cancel("q")
    assert now and spool.find("q").state is JobState.CANCELLED

    claim = spool.claim(spool.submit(job("r")))
    record, now = spool.cancel("r")
    assert not now and spool.cancel_marker(record.id).exists()
    assert spool.find("r").state is JobState.RUNNING
    spool.finish(claim, JobState.CANCELLED)
    assert not spool.cancel_marker(record.id).exists()
    with pytest.raises(WrongStateError, match="already cancelled"):
        spool.cancel(queued.id)


def test_retry_requeues_failed_and_cancelled_jobs_only(spool):
    claim = spool.claim(spool.submit(job("a")))
    spool.finish(claim, JobState.FAILED, "oops")
    again = spool.retry("a")
    assert again.state is JobState.QUEUED and spool.error_of(spool.find("a")) is None
    claim = spool.claim(spool.find("a"))
    spool.finish(claim, JobState.DONE)
    with pytest.raises(WrongStateError, match="only failed or cancelled"):
        spool.retry("a")


def test_unknown_job_suggests_a_near_name(spool):
    spool.submit(job("portrait"))
    with pytest.raises(JobNotFoundError, match="did you mean 'portrait'"):
        spool.find("portait")


def test_a_malformed_job_file_is_listed_with_its_problem(spool):
    bad = spool.folder(JobState.QUEUED) / "bad.yaml"
    bad.write_text("trainpilot_job: 1\nname: bad\npriority: high\nprofile: p\n")
    (record,) = spool.records()
    assert record.job is None and "priority" in record.problem and "high" in record.problem


def test_a_plain_config_dropped_in_is_a_job_named_by_its_file(spool):
    (spool.folder(JobState.QUEUED) / "my_lora.yaml").write_text("model:\n  v2: false\n")
    (record,) = spool.records()
    assert record.plain and record.name == "my_lora" and record.id == "my_lora"


def test_hidden_and_temporary_files_are_not_jobs(spool):
    incoming = spool.folder(JobState.QUEUED)
    (incoming / ".x.tmp").write_text("half written")
    (incoming / "notes.txt").write_text("not a job")
    assert spool.records() == []


def test_a_dead_daemon_registration_is_not_live(spool):
    me = DaemonInfo(pid=os.getpid(), host="here", devices=["cpu"])
    registration = spool.register_daemon(me)
    assert spool.live_daemons() == [me]
    os.close(registration.fd)  # what the kernel does when the daemon dies
    assert spool.live_daemons() == []
    assert not registration.path.exists()


def test_a_running_job_nobody_holds_is_not_owned(spool):
    claim = spool.claim(spool.submit(job("a")))
    assert spool.owned(claim.record)
    claim.release()  # its daemon died
    assert not spool.owned(spool.find("a"))
