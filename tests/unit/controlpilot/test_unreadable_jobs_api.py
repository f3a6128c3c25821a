"""ControlPilot with files in the spool that cannot be read as jobs (issue 16, finding 2): every page
and API that reads the spool answers, shows the bad file with its reason, and the good jobs still work."""

from __future__ import annotations

import pytest

from lorapilot.spool import JobState

QUICK = {"profile": "quick_test", "dataset": "demo"}  # a hub model id: nothing is loaded to validate
ENVELOPE = "trainpilot_job: 1\nname: {name}\nprofile: quick_test\n"
POISON = {
    "my job.yaml": "model: {path: x}\n",
    "bad_created.yaml": "created: 2024-02-30\nmodel: {path: x}\n",
    "huge.yaml": ENVELOPE.format(name="huge") + "priority: " + "9" * 5000 + "\n",
    "binary_spec.yaml": ENVELOPE.format(name="binary_spec") + "spec: {x: !!binary aGVsbG8=}\n",
}


@pytest.fixture
def poisoned(session, ws):
    """Two good jobs, then every poison file in incoming/ and one of them in each other folder."""
    session.ok("POST", "/api/jobs", json={**QUICK, "name": "left"})
    for state in JobState:
        if state is not JobState.INTERRUPTED:
            ws.job_dir(state.folder).mkdir(parents=True, exist_ok=True)
    for name, text in POISON.items():
        (ws.job_dir("incoming") / name).write_text(text, encoding="utf-8")
    for folder in ("running", "done", "failed", "cancelled"):
        (ws.job_dir(folder) / f"odd {folder}.yaml").write_text("created: 2024-02-30\n", encoding="utf-8")
    return session


def test_the_jobs_list_shows_unreadable_files_with_their_reason(poisoned):
    jobs = {job["name"]: job for job in poisoned.ok("GET", "/api/jobs")["jobs"]}
    assert {"left", "my job", "bad_created", "huge", "binary_spec", "odd done"} <= set(jobs)
    assert "file name" in jobs["my job"]["error"]
    assert "out of range" in jobs["bad_created"]["error"]
    assert "digits" in jobs["huge"]["error"]
    assert jobs["left"]["error"] is None and jobs["left"]["state"] == "queued"


def test_submit_detail_compare_and_metrics_answer_beside_unreadable_files(poisoned, ws):
    assert poisoned.ok("POST", "/api/jobs", json={**QUICK, "name": "right"})["state"] == "queued"
    taken = poisoned.call("POST", "/api/jobs", json={**QUICK, "name": "right"})
    assert taken.status_code == 409
    for ref in ("left", "my job", "bad_created", "huge", "binary_spec", "odd running", "odd failed"):
        detail = poisoned.call("GET", f"/api/jobs/{ref}")
        assert detail.status_code == 200, (ref, detail.text)
        for tail in ("/metrics", "/log"):
            reply = poisoned.call("GET", f"/api/jobs/{ref}{tail}")
            assert reply.status_code in (200, 404), (ref, tail, reply.text)
    compared = poisoned.ok("GET", "/api/compare?a=left&b=right")
    assert {"field": "output.name", "a": "left", "b": "right"} in compared["differences"]
    assert poisoned.call("GET", "/api/compare?a=left&b=binary_spec").status_code == 200
    assert poisoned.call("GET", "/api/compare?a=my job&b=huge").status_code == 200
    metrics = poisoned.call("GET", "/metrics")
    assert metrics.status_code == 200 and "jobs" in metrics.text
    assert poisoned.call("GET", "/api/telemetry").status_code == 200
    assert poisoned.call("GET", "/").status_code == 200
