"""The jobs API: list, detail with metrics/samples/log, submit and validate, cancel, retry, LoRA download."""

from __future__ import annotations

import io
import json

from PIL import Image

from lorapilot.spool import JobState, RunStatus, Spool, read_status, write_status

QUICK = {"profile": "quick_test", "dataset": "demo"}  # a hub model id: nothing is loaded to validate


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def _fake_run(ws, name: str, job_id: str, **status) -> None:
    """What a trainer leaves in outputs/<name>/ while or after it runs."""
    folder = ws.outputs / name
    (folder / "_logs").mkdir(parents=True)
    (folder / "samples").mkdir()
    write_status(folder, RunStatus(id=job_id, name=name, **status))
    metrics = {"step": [1, 2, 3, 4], "loss": [0.5, 0.4, 0.35, 0.3], "lr": [1e-4] * 4}
    (folder / "_logs" / "metrics.json").write_text(json.dumps(metrics))
    (folder / "_logs" / "train.log").write_text("".join(f"line {i}\n" for i in range(500)))
    for sample in ("step00000002_0.png", "step00000004_1.png", "step00000004_0.png"):
        (folder / "samples" / sample).write_bytes(_png())
    (folder / "samples" / "notes.txt").write_text("not a sample")


def test_submit_by_dataset_and_profile_queues_the_job_the_cli_would(session, ws):
    reply = session.ok("POST", "/api/jobs", json={**QUICK, "name": "first", "priority": 2})
    assert reply["name"] == "first" and reply["state"] == "queued"
    assert (ws.job_dir("incoming") / f"{reply['id']}.yaml").is_file()
    record = Spool(ws).find("first")
    assert record.job.priority == 2 and record.job.profile == "quick_test"
    assert record.job.spec["output"]["name"] == "first"
    jobs = session.ok("GET", "/api/jobs")["jobs"]
    assert [(j["name"], j["state"], j["position"], j["progress"]) for j in jobs] == [
        ("first", "queued", 1, 0.0)
    ]


def test_overrides_apply_and_invalid_values_answer_the_validate_messages(session, ws):
    good = session.ok(
        "POST", "/api/jobs/validate", json={**QUICK, "name": "o", "overrides": "training.max_steps=7\n"}
    )
    assert good["spec"]["training"]["max_steps"] == 7 and good["spec"]["output"]["name"]
    bad = session.call(
        "POST", "/api/jobs", json={**QUICK, "name": "bad", "overrides": ["training.learning_rate=-1"]}
    )
    assert bad.status_code == 400
    body = bad.get_json()
    assert body["text"].startswith("1 problem in the training config:")
    assert any("learning_rate" in issue["field"] for issue in body["issues"])
    assert not list(ws.job_dir("incoming").iterdir())


def test_a_pasted_config_is_validated_with_every_problem_named(session, ws):
    config = (
        "model:\n  pretrained_model_name_or_path: runwayml/stable-diffusion-v1-5\n"
        "training:\n  max_train_stepz: 10\n"
    )
    reply = session.call("POST", "/api/jobs/validate", json={"config": config, "dataset": "demo"})
    assert reply.status_code == 400
    body = reply.get_json()
    assert "(pasted config): training.max_train_stepz: unknown key" in body["text"]
    assert "did you mean 'max_train_steps'" in body["text"]
    assert str(ws.tmp) not in body["text"]
    fixed = config.replace("max_train_stepz", "max_train_steps")
    queued = session.ok("POST", "/api/jobs", json={"config": fixed, "dataset": "demo", "name": "pasted1"})
    assert Spool(ws).find("pasted1").job.spec["training"]["max_steps"] == 10
    assert queued["dialect"]
    assert not [p for p in ws.tmp.iterdir() if p.name.startswith("pasted-")], "temp config left behind"


def test_a_toml_config_is_read_as_toml(session):
    config = 'pretrained_model_name_or_path = "runwayml/stable-diffusion-v1-5"\nmax_train_steps = 5\n'
    reply = session.ok("POST", "/api/jobs/validate", json={"config": config, "dataset": "demo", "name": "t"})
    assert reply["spec"]["training"]["max_steps"] == 5


def test_bad_requests_say_what_is_accepted(session):
    assert "give a config" in session.call("POST", "/api/jobs", json={}).get_json()["error"]
    assert "unknown field" in session.call("POST", "/api/jobs", json={"profil": "x"}).get_json()["error"]
    assert (
        "whole number"
        in session.call("POST", "/api/jobs", json={**QUICK, "priority": "hi"}).get_json()["error"]
    )
    assert session.call("POST", "/api/jobs", data="nope", content_type="text/plain").status_code == 400


def test_a_name_clash_is_409_with_the_cli_message(session):
    session.ok("POST", "/api/jobs", json={**QUICK, "name": "same"})
    reply = session.call("POST", "/api/jobs", json={**QUICK, "name": "same"})
    assert reply.status_code == 409
    assert "a job named 'same' already exists (queued" in reply.get_json()["error"]


def test_detail_shows_status_metrics_samples_log_and_loras(session, ws):
    job_id = session.ok("POST", "/api/jobs", json={**QUICK, "name": "watched"})["id"]
    _fake_run(
        ws, "watched", job_id, state="queued", step=3, total=4, loss=0.35, lr=1e-4, it_per_s=2.5, eta_s=1
    )
    (ws.outputs / "watched" / "watched-step00000002.safetensors").write_bytes(b"x")
    detail = session.ok("GET", "/api/jobs/watched")
    assert detail["id"] == job_id and detail["progress"] == 0.75
    assert detail["status"]["loss"] == 0.35 and detail["metrics"]["loss"] == [0.5, 0.4, 0.35, 0.3]
    assert [s["file"] for s in detail["samples"]] == [
        "step00000002_0.png",
        "step00000004_0.png",
        "step00000004_1.png",
    ]
    assert detail["loras"] == ["watched-step00000002.safetensors"]
    assert session.ok("GET", f"/api/jobs/{job_id}/metrics")["step"] == [1, 2, 3, 4]
    log = session.ok("GET", "/api/jobs/watched/log?lines=3")["log"]
    assert log == "line 497\nline 498\nline 499"
    image = session.call("GET", "/api/jobs/watched/samples/step00000004_1.png")
    assert image.status_code == 200 and image.data.startswith(b"\x89PNG")
    for name in ("notes.txt", "..%2Fstatus.json", "missing.png"):
        assert session.call("GET", f"/api/jobs/watched/samples/{name}").status_code == 404
    assert session.call("GET", "/api/jobs/nobody").status_code == 404


def test_lora_download_serves_the_final_file_only_once_it_exists(session, ws):
    job_id = session.ok("POST", "/api/jobs", json={**QUICK, "name": "dl"})["id"]
    _fake_run(ws, "dl", job_id, state="running", step=4, total=4)
    missing = session.call("GET", "/api/jobs/dl/lora")
    assert missing.status_code == 404 and "no LoRA file yet" in missing.get_json()["error"]
    lora = ws.outputs / "dl" / "dl.safetensors"
    lora.write_bytes(b"lora-bytes")
    status = read_status(lora.parent)
    write_status(lora.parent, status.changed(state=JobState.DONE, lora=str(lora)))
    reply = session.call("GET", "/api/jobs/dl/lora")
    assert reply.status_code == 200 and reply.data == b"lora-bytes"
    assert "filename=dl.safetensors" in reply.headers["Content-Disposition"]
    outside = ws.root / "elsewhere.safetensors"
    outside.write_bytes(b"secret")
    write_status(lora.parent, status.changed(lora=str(outside)))
    assert session.call("GET", "/api/jobs/dl/lora").data == b"lora-bytes"  # never a file outside the run


def test_cancel_a_queued_job_then_retry_it(session, ws):
    job_id = session.ok("POST", "/api/jobs", json={**QUICK, "name": "c1"})["id"]
    _fake_run(ws, "c1", job_id, state="queued")
    reply = session.ok("POST", "/api/jobs/c1/cancel")
    assert reply == {"id": job_id, "name": "c1", "cancelled": True, "stopping": False}
    assert Spool(ws).find("c1").state is JobState.CANCELLED
    assert read_status(ws.outputs / "c1").state == "cancelled"
    again = session.call("POST", "/api/jobs/c1/cancel")
    assert again.status_code == 409 and "already cancelled" in again.get_json()["error"]
    assert session.ok("POST", "/api/jobs/c1/retry")["state"] == "queued"
    assert Spool(ws).find("c1").state is JobState.QUEUED
    assert read_status(ws.outputs / "c1").state == "queued"
    refused = session.call("POST", "/api/jobs/c1/retry")
    assert refused.status_code == 409 and "only failed or cancelled" in refused.get_json()["error"]


def test_an_uploaded_config_file_in_a_form_is_accepted(session):
    config = b"model:\n  pretrained_model_name_or_path: runwayml/stable-diffusion-v1-5\n"
    reply = session.call(
        "POST",
        "/api/jobs/validate",
        data={"dataset": "demo", "name": "up", "file": (io.BytesIO(config), "mine.yaml")},
        content_type="multipart/form-data",
    )
    assert reply.status_code == 200, reply.text
    assert reply.get_json()["spec"]["output"]["name"] == "up"


def test_queue_options_out_of_range_are_refused_naming_the_field(session, ws):
    for extra, says in (
        ({"gpus": 0}, "gpus: must be 1 or more, or 'all'"),
        ({"priority": 5000}, "priority: Input should be less than or equal to 1000"),
        ({"priority": "hi", "gpus": "two"}, "priority: expected a whole number, found 'hi'; gpus: expected"),
    ):
        reply = session.call("POST", "/api/jobs", json={**QUICK, "name": "ranged", **extra})
        assert reply.status_code == 400 and says in reply.get_json()["error"], reply.text
    assert not list(ws.job_dir("incoming").iterdir())


def test_an_override_with_a_5000_digit_number_is_a_400_naming_the_field(session, ws):
    """Issue 16, finding 5: the override's value reached int() and the API answered 500."""
    override = "training.max_steps=" + "9" * 5000
    for route in ("/api/jobs/validate", "/api/jobs"):
        reply = session.call("POST", route, json={**QUICK, "name": "huge", "overrides": [override]})
        assert reply.status_code == 400, (route, reply.status_code, reply.text[:300])
        assert "max_steps" in reply.get_data(as_text=True)
    assert not list(ws.job_dir("incoming").iterdir())


def test_a_pasted_config_that_is_toml_with_a_5000_digit_number_is_a_400_not_a_500(session, ws):
    """Found by the API fuzzer (issue 16): detecting the format ran int() on the number."""
    config = "[training]\nmax_train_steps = " + "9" * 5000 + "\n"
    for route in ("/api/jobs/validate", "/api/jobs"):
        reply = session.call("POST", route, json={"config": config, "name": "huge"})
        assert reply.status_code == 400, (route, reply.status_code, reply.text[:300])
    assert not list(ws.job_dir("incoming").iterdir())


def test_a_body_with_text_that_is_not_unicode_is_a_400_naming_it(session, ws):
    """Found by the API fuzzer (issue 16): a pasted config with a lone surrogate could not be written."""
    body = '{"config": "model: \\ud800", "name": "odd"}'
    for route in ("/api/jobs/validate", "/api/jobs"):
        reply = session.call("POST", route, data=body, content_type="application/json")
        assert reply.status_code == 400 and "not valid Unicode" in reply.get_json()["error"], reply.text
    assert not list(ws.job_dir("incoming").iterdir()) and list(ws.tmp.iterdir()) == []


def test_detail_names_the_sample_prompts_so_samples_by_index_get_their_prompt(session, ws):
    overrides = ["sample.prompts=[lpdemo a photo, lpdemo on a beach]"]
    job_id = session.ok("POST", "/api/jobs", json={**QUICK, "name": "grid", "overrides": overrides})["id"]
    queued = session.ok("GET", "/api/jobs/grid")
    assert queued["sample_prompts"] == ["lpdemo a photo", "lpdemo on a beach"]  # no run folder yet

    _fake_run(ws, "grid", job_id, state="running", step=4, total=4)
    spec = {"sample": {"prompts": ["[trigger] a cat", {"text": "[trigger] a dog", "width": 512}]}}
    (ws.outputs / "grid" / "spec.json").write_text(json.dumps(spec))
    written = session.ok("GET", f"/api/jobs/{job_id}")["sample_prompts"]
    assert written == ["[trigger] a cat", "[trigger] a dog"]  # the spec the run used, options or not

    (ws.outputs / "grid" / "spec.json").write_text('{"sample": {"prompts": ["half-writ')
    assert session.ok("GET", "/api/jobs/grid")["sample_prompts"] == ["lpdemo a photo", "lpdemo on a beach"]
