"""Issue 9 in ControlPilot: publish a finished job's LoRA to ComfyUI and test-render its strength
sweep from the job page's API, against a real tiny LoRA and the fake ComfyUI server."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from lorapilot.comfy.settings import URL_ENV
from lorapilot.spool import JobRecord
from lorapilot.testing.comfyui_server import FakeComfyUI
from lorapilot.testing.trained_runs import add_done_job, train_tiny
from lorapilot.workspace import Workspace

NAME = "comfy_lora"
BASE = "base-sd15.safetensors"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Path:
    """One real SD1.5 LoRA run (two sample prompts), trained once for this module."""
    return train_tiny(tmp_path_factory.mktemp("run"), tiny_models["sd15"], NAME, seed=1)


@pytest.fixture
def done(ws: Workspace, tiny_run: Path) -> JobRecord:
    return add_done_job(ws, tiny_run, NAME)


def configure(ws: Workspace, url: str, strengths: str = "[0, 0.5, 1.0]") -> None:
    (ws.model_dir("checkpoints") / BASE).write_bytes(b"read by ComfyUI, not by the tests")
    (ws.config / "comfy.yaml").write_text(
        f"url: {url}\nstrengths: {strengths}\nbases:\n  sd15: {{ckpt_name: {BASE}}}\n", encoding="utf-8"
    )


@pytest.fixture
def comfy(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeComfyUI]:
    monkeypatch.delenv(URL_ENV, raising=False)
    server = FakeComfyUI(ws.models, tmp_path / "comfy-out", tmp_path / "comfy-in").start()
    configure(ws, server.url)
    try:
        yield server
    finally:
        server.stop()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def wait_for_render(session, ref: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        overview = session.ok("GET", f"/api/jobs/{ref}/comfy")
        if overview["render"] and overview["render"]["state"] != "running":
            return overview
        time.sleep(0.1)
    raise AssertionError(f"the test render of {ref} did not finish in {timeout} s: {overview}")


def lora_chains(server: FakeComfyUI) -> list[list[tuple[str, float]]]:
    return [
        [
            (n["inputs"]["lora_name"], n["inputs"]["strength_model"])
            for n in w.values()
            if n["class_type"] == "LoraLoader"
        ]
        for w in server.prompts
    ]


def test_publish_copies_the_finished_lora_into_models_loras_once(session, ws, done):
    first = session.ok("POST", f"/api/jobs/{NAME}/comfy/publish")
    assert first["file"] == f"{NAME}.safetensors" and first["sidecar"] == f"{NAME}.json"
    assert first["path"] == f"/workspace/models/loras/{NAME}.safetensors" and not first["reused"]
    assert first["details"]["job_id"] == done.id and first["details"]["trigger_words"] == ["lpdemo"]
    published = ws.model_dir("loras") / first["file"]
    assert published.read_bytes() == (ws.outputs / NAME / f"{NAME}.safetensors").read_bytes()
    again = session.ok("POST", f"/api/jobs/{done.id}/comfy/publish")
    assert again["reused"] and again["file"] == first["file"]
    overview = session.ok("GET", f"/api/jobs/{NAME}/comfy")
    assert [p["file"] for p in overview["published"]] == [first["file"]]
    assert overview["render"] is None and overview["contact_sheet"] is None and overview["state"] == "done"


def test_a_test_render_runs_in_the_background_and_ends_with_a_contact_sheet(session, ws, done, comfy):
    reply = session.call("POST", f"/api/jobs/{NAME}/comfy/test", json={"strengths": "0, 1", "size": 64})
    assert reply.status_code == 202, reply.text
    started = reply.get_json()
    assert started["file"] == f"{NAME}.safetensors"  # published on the way, as the CLI does
    assert started["render"]["state"] == "running" and started["render"]["total"] == 4  # 2 prompts × 2

    overview = wait_for_render(session, NAME)
    render = overview["render"]
    assert render["state"] == "done", render
    assert render["done"] == render["total"] == 4 and render["strengths"] == [0, 1]
    assert sorted(render["images"]) == ["p00_s0.00.png", "p00_s1.00.png", "p01_s0.00.png", "p01_s1.00.png"]
    assert [i["file"] for i in overview["images"]] == sorted(render["images"])
    assert lora_chains(comfy) == [[(f"{NAME}.safetensors", s)] for s in (0.0, 1.0, 0.0, 1.0)]
    state_file = ws.outputs / NAME / "comfy" / "test-render.json"
    assert json.loads(state_file.read_text())["state"] == "done"

    sheet = session.call("GET", overview["contact_sheet"])
    assert sheet.status_code == 200 and sheet.mimetype == "image/png" and sheet.data.startswith(PNG)
    with Image.open(io.BytesIO(sheet.data)) as image:
        assert image.size == (2 * 64, 2 * (64 + 18))  # a column per strength, a labelled row per prompt
    image = session.call("GET", overview["images"][0]["url"])
    assert image.status_code == 200 and image.data.startswith(PNG)


def test_a_test_render_blends_another_published_lora(session, ws, tiny_run, done, comfy):
    add_done_job(ws, tiny_run, "style", folder="style")
    session.ok("POST", "/api/jobs/style/comfy/publish")
    missing = session.call(
        "POST", f"/api/jobs/{NAME}/comfy/test", json={"with": [{"name": "nope", "weight": 1}]}
    )
    assert missing.status_code == 400
    assert "with[0].name: no nope.safetensors in /workspace/models/loras; publish it first" in missing.text
    body = {"strengths": [1.0], "with": [{"name": "style", "weight": 0.6}], "size": 64}
    assert session.call("POST", f"/api/jobs/{NAME}/comfy/test", json=body).status_code == 202
    assert wait_for_render(session, NAME)["render"]["state"] == "done"
    assert lora_chains(comfy) == [[(f"{NAME}.safetensors", 1.0), ("style.safetensors", 0.6)]] * 2


def test_a_second_test_render_of_the_same_job_waits_for_the_first(session, done, comfy):
    comfy.behaviour.step_delay = 0.05
    body = {"strengths": [0, 1], "size": 64}
    assert session.call("POST", f"/api/jobs/{NAME}/comfy/test", json=body).status_code == 202
    second = session.call("POST", f"/api/jobs/{NAME}/comfy/test", json=body)
    assert second.status_code == 409 and "a test render of this job is running" in second.get_json()["error"]
    assert wait_for_render(session, NAME)["render"]["state"] == "done"
    assert len(comfy.prompts) == 4


def test_a_render_that_fails_in_comfyui_says_why(session, done, comfy):
    comfy.behaviour.fail_class = "KSampler"
    assert session.call("POST", f"/api/jobs/{NAME}/comfy/test", json={"size": 64}).status_code == 202
    render = wait_for_render(session, NAME)["render"]
    assert render["state"] == "failed" and render["done"] == 0
    assert "KSampler" in render["error"] and "CUDA out of memory (simulated)" in render["error"]


def test_comfyui_down_answers_503_naming_the_url_and_the_setting(session, ws, done, monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    url = dead_url()
    configure(ws, url)
    reply = session.call("POST", f"/api/jobs/{NAME}/comfy/test", json={})
    assert reply.status_code == 503
    error = reply.get_json()["error"]
    assert f"ComfyUI is not answering at {url}" in error
    assert "`url:` in /workspace/config/comfy.yaml" in error and URL_ENV in error
    assert not (ws.outputs / NAME / "comfy" / "test-render.json").exists()

    monkeypatch.setenv(URL_ENV, url)
    error = session.call("POST", f"/api/jobs/{NAME}/comfy/test", json={}).get_json()["error"]
    assert f"comes from the {URL_ENV} environment variable; change it there" in error


def test_a_job_that_is_not_done_cannot_be_published_or_rendered(session):
    queued = session.ok(
        "POST", "/api/jobs", json={"profile": "quick_test", "dataset": "demo", "name": "later"}
    )
    for action in ("publish", "test"):
        reply = session.call("POST", f"/api/jobs/later/comfy/{action}", json={})
        assert reply.status_code == 409, reply.text
        assert (
            reply.get_json()["error"]
            == f"job later (id {queued['id']}) is queued, not done; nothing to publish"
        )
    unknown = session.call("POST", "/api/jobs/nosuchjob/comfy/publish")
    assert unknown.status_code == 404 and "no job has the id or name 'nosuchjob'" in unknown.text


def test_bad_render_requests_name_the_field_and_the_fix(session, done):
    cases = {
        "strengths: expected a number": {"strengths": "0, half"},
        "unknown field(s) strenghts; accepted: strengths": {"strenghts": [1]},
        "size: a multiple of 8, e.g. 96": {"size": 100},
        "with[0]: ": {"with": [["style", 0.5]]},
    }
    for message, body in cases.items():
        reply = session.call("POST", f"/api/jobs/{NAME}/comfy/test", json=body)
        assert reply.status_code == 400 and message in reply.get_json()["error"], (body, reply.text)


def test_only_images_in_the_comfy_folder_are_served(session, ws, done):
    folder = ws.outputs / NAME / "comfy"
    folder.mkdir()
    (folder / "p00_s0.00.png").write_bytes(PNG)
    (folder / "sweep.json").write_text("{}")
    (ws.outputs / NAME / "outside.png").write_bytes(PNG)
    (folder / "linked.png").symlink_to(ws.outputs / NAME / "outside.png")
    assert session.call("GET", f"/api/jobs/{NAME}/comfy/files/p00_s0.00.png").data == PNG
    for name in ("..%2Foutside.png", "..", "sweep.json", "linked.png", "%2E%2E%2Fspec.json"):
        reply = session.call("GET", f"/api/jobs/{NAME}/comfy/files/{name}")
        assert reply.status_code == 404, name
    assert [i["file"] for i in session.ok("GET", f"/api/jobs/{NAME}/comfy")["images"]] == ["p00_s0.00.png"]


def test_a_render_left_running_by_a_restart_shows_as_interrupted(session, ws, done):
    folder = ws.outputs / NAME / "comfy"
    folder.mkdir()
    state = {"state": "running", "started_at": "2024-01-01T00:00:00+00:00", "done": 1, "total": 4}
    (folder / "test-render.json").write_text(json.dumps(state))
    render = session.ok("GET", f"/api/jobs/{NAME}/comfy")["render"]
    assert render["state"] == "interrupted" and "start the test render again" in render["error"]
