"""Job envelopes and status.json: what other services read from the spool."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from lorapilot.spec.model import OutputSpec
from lorapilot.spool import InvalidJobError, JobState, RunStatus, read_job, read_status, write_status


def envelope_problems(folder, text: str) -> str:
    """What reading a job file holding `text` reports."""
    path = folder / "j.yaml"
    path.write_text(text)
    with pytest.raises(InvalidJobError) as caught:
        read_job(path)
    return caught.value.render()


def test_envelope_errors_name_the_field_and_the_value(tmp_path):
    text = envelope_problems(tmp_path, "trainpilot_job: 1\nname: a/b\ngpus: 0\nprofil: x\n")
    assert "name: use letters, digits" in text and "'a/b'" in text
    assert "gpus" in text and "profil: unknown key" in text
    assert str(tmp_path / "j.yaml") in text


def test_an_envelope_needs_a_spec_or_a_profile(tmp_path):
    path = tmp_path / "j.yaml"
    path.write_text("trainpilot_job: 1\nname: a\n")
    with pytest.raises(InvalidJobError, match="spec: a job needs the training spec"):
        read_job(path)


def test_an_empty_or_binary_job_file_is_reported_not_raised_as_a_crash(tmp_path):
    path = tmp_path / "j.yaml"
    path.write_bytes(b"\x00\x01")
    with pytest.raises(InvalidJobError, match="binary"):
        read_job(path)


def test_status_round_trips_and_leaves_no_temporary_files(tmp_path):
    status = RunStatus(id="1", name="a", state="running", step=3, total=10, loss=0.5)
    write_status(tmp_path, status)
    write_status(tmp_path, status.changed(step=4))
    assert read_status(tmp_path).step == 4
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    data = json.loads((tmp_path / "status.json").read_text())
    assert {"state", "step", "total", "loss", "lr", "it_per_s", "eta_s", "updated_at", "error"} <= data.keys()
    assert oct((tmp_path / "status.json").stat().st_mode & 0o777) == "0o644"


def test_a_missing_or_torn_status_reads_as_none(tmp_path):
    assert read_status(tmp_path) is None
    (tmp_path / "status.json").write_text('{"id": "1", "na')
    assert read_status(tmp_path) is None


def test_status_json_keeps_the_state_strings_other_tools_read(tmp_path):
    status = RunStatus(id="1", name="a", state=JobState.RUNNING)
    for state in JobState:
        write_status(tmp_path, status.changed(state=state))
        assert json.loads((tmp_path / "status.json").read_text())["state"] == state.value
        assert read_status(tmp_path).state is state
    assert [s.value for s in JobState] == ["queued", "running", "interrupted", "done", "failed", "cancelled"]


def test_a_misspelt_state_is_refused_by_its_writer_and_the_file_stays_readable(tmp_path):
    status = RunStatus(id="1", name="a", state="running", step=3)
    write_status(tmp_path, status)
    with pytest.raises(ValidationError, match="state") as caught:
        write_status(tmp_path, status.changed(state="finished"))
    assert "'queued', 'running', 'interrupted', 'done', 'failed' or 'cancelled'" in str(caught.value)
    with pytest.raises(ValidationError, match="state"):
        status.state = "finsihed"
    with pytest.raises(TypeError, match="no field stpe"):
        status.changed(stpe=4)
    assert read_status(tmp_path) == status


def test_an_envelope_error_says_what_is_accepted_as_a_spec_error_does(tmp_path):
    text = envelope_problems(tmp_path, "trainpilot_job: 1\nname: up\npriority: 5000\nprofile: p\n")
    assert "priority: Input should be less than or equal to 1000" in text
    assert "accepted: a number <= 1000" in text


def test_a_job_is_named_by_the_same_rule_as_the_run_it_trains(tmp_path):
    text = envelope_problems(tmp_path, "trainpilot_job: 1\nname: ../up\nprofile: p\n")
    with pytest.raises(ValidationError) as spec_error:
        OutputSpec(name="../up", folder="/workspace/outputs/up")
    rule = "use letters, digits, '.', '_' and '-' only (no slashes), at most 128 characters"
    assert f"name: {rule}" in text and rule in str(spec_error.value)
