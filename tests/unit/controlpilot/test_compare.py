"""The A/B view: config differences field by field, and each run's metrics and samples."""

from __future__ import annotations

import json

from lorapilot.controlpilot.compare import differences, flatten

QUICK = {"profile": "quick_test", "dataset": "demo"}


def test_flatten_and_differences_use_the_cli_field_paths():
    spec = {"training": {"max_steps": 5}, "datasets": [{"folder": "a", "resolutions": [512]}]}
    assert flatten(spec) == {
        "training.max_steps": 5,
        "datasets[0].folder": "a",
        "datasets[0].resolutions": [512],
    }
    other = {"training": {"max_steps": 9}, "datasets": [{"folder": "a", "resolutions": [512]}], "extra": 1}
    assert differences(spec, other) == [
        {"field": "extra", "a": "(not set)", "b": 1},
        {"field": "training.max_steps", "a": 5, "b": 9},
    ]


def test_compare_two_runs(session, ws):
    session.ok("POST", "/api/jobs", json={**QUICK, "name": "left", "overrides": ["network.dim=8"]})
    session.ok(
        "POST",
        "/api/jobs",
        json={**QUICK, "name": "right", "overrides": ["network.dim=32", "sample.prompts=[a cat]"]},
    )
    samples = ws.outputs / "right" / "samples"
    samples.mkdir(parents=True)
    (samples / "step00000010_0.png").write_bytes(b"\x89PNG")
    (ws.outputs / "right" / "_logs").mkdir()
    metrics = {"step": [1, 2], "loss": [0.5, 0.25], "lr": [1e-4, 2e-4]}
    (ws.outputs / "right" / "_logs" / "metrics.json").write_text(json.dumps(metrics))
    reply = session.ok("GET", "/api/compare?a=left&b=right")
    fields = {d["field"]: (d["a"], d["b"]) for d in reply["differences"]}
    assert fields["network.dim"] == (8, 32)
    assert fields["output.name"] == ("left", "right")
    assert "training.max_steps" not in fields
    assert reply["a"]["samples"] == [] and reply["b"]["samples"][0]["step"] == 10
    assert reply["a"]["metrics"] == {"step": [], "loss": [], "lr": []}  # queued: no curve yet
    assert reply["b"]["metrics"] == metrics
    assert reply["a"]["sample_prompts"] == [] and reply["b"]["sample_prompts"] == ["a cat"]
    assert session.call("GET", "/api/compare?a=left").status_code == 400
    assert session.call("GET", "/api/compare?a=left&b=nobody").status_code == 404
