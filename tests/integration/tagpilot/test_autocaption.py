"""Acceptance 2: local auto-captioning (tiny BLIP through transformers, tiny WD14 through onnxruntime)
in all three modes, with progress, cancel, an OpenAI-compatible endpoint, and release when idle."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lorapilot.testing.datasets import write_demo_images
from lorapilot.testing.tiny_captioners import build_tiny_blip, build_tiny_wd14

BLIP = {"backend": "blip", "source": "tiny-blip", "num_beams": 1}
WD14 = {"backend": "wd14", "source": "tiny-wd14"}


@pytest.fixture(scope="module")
def models(server):
    folder = server.workspace.model_dir("captioners")
    build_tiny_blip(folder / "tiny-blip")
    build_tiny_wd14(folder / "tiny-wd14")
    return folder


def _images(client, tmp_path, count=5, **settings):
    name = client.new_dataset("auto", **settings)
    paths = write_demo_images(tmp_path / "img", count, size=(96, 80), caption=None)
    reply = client.upload(name, [(path.name, path.read_bytes()) for path in paths])
    assert len(reply.json()["accepted"]) == count
    return name


def _run(client, name, captioner, mode, timeout=180):
    """Start a job and poll it to the end; returns the last job state and every state seen."""
    job = client.ok("POST", f"/api/datasets/{name}/autocaption", json={"captioner": captioner, "mode": mode})
    seen = [job]
    deadline = time.monotonic() + timeout
    while job["finished"] is None:
        assert time.monotonic() < deadline, f"captioning did not finish: {job}"
        time.sleep(0.05)
        job = client.ok("GET", f"/api/jobs/{job['id']}")
        seen.append(job)
    return job, seen


def _captions(client, name):
    return {item["name"]: item["caption"] for item in client.ok("GET", f"/api/datasets/{name}")["image_list"]}


def test_blip_writes_a_caption_for_every_image_in_each_mode(client, models, server, tmp_path):
    name = _images(client, tmp_path, caption_style="sentence")
    job, seen = _run(client, name, BLIP, "ignore-existing")
    assert job["state"] == "done" and job["errors"] == [], job
    assert job["total"] == job["done"] == job["written"] == 5
    done_counts = [state["done"] for state in seen]
    assert done_counts == sorted(done_counts) and {s["state"] for s in seen} & {"loading", "running"}
    first = _captions(client, name)
    assert all(first.values()), first
    assert client.ok("GET", "/api/captioners")["cache"]["loaded"] == "blip:tiny-blip"  # kept loaded

    job, _ = _run(client, name, BLIP, "append")
    assert job["state"] == "done" and job["written"] == 5
    appended = _captions(client, name)
    for image, caption in appended.items():
        assert caption.startswith(first[image]) and len(caption) > len(first[image]), caption

    job, _ = _run(client, name, BLIP, "overwrite")
    assert job["state"] == "done" and job["written"] == 5
    assert _captions(client, name) == first  # same model, same images: the appended text is gone

    image = next(iter(first))
    client.ok("PUT", f"/api/datasets/{name}/images/{image}/caption", json={"caption": ""})
    job, _ = _run(client, name, BLIP, "ignore-existing")
    assert (job["total"], job["written"]) == (1, 1)
    assert _captions(client, name) == first
    assert server.log.read_text().count("loading captioner blip:tiny-blip") == 1


def test_wd14_tags_every_image_and_append_merges_tags(client, models, tmp_path):
    name = _images(client, tmp_path, count=4)
    job, _ = _run(client, name, WD14, "overwrite")
    assert job["state"] == "done" and job["written"] == 4, job
    tags = _captions(client, name)
    assert all(caption.split(", ")[0] == "photo" for caption in tags.values()), tags
    assert not any("_" in caption or "general" in caption for caption in tags.values())  # no rating tags
    client.ok("POST", f"/api/datasets/{name}/captions/bulk", json={"op": "trigger", "word": "sks"})
    job, _ = _run(client, name, WD14, "append")
    for image, caption in _captions(client, name).items():
        assert caption == f"sks, {tags[image]}", caption  # no tag twice


def test_the_model_is_released_when_idle(client, models, server, tmp_path):
    name = _images(client, tmp_path, count=1)
    _run(client, name, WD14, "overwrite")
    assert client.ok("GET", "/api/captioners")["cache"]["loaded"] == "wd14:tiny-wd14"
    deadline = time.monotonic() + server.captioner_idle_s + 10
    while client.ok("GET", "/api/captioners")["cache"]["loaded"] is not None:
        assert time.monotonic() < deadline, "the captioner was not released after its idle time"
        time.sleep(0.25)


class _SlowChatEndpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible `/v1/chat/completions` that answers after a pause."""

    delay_s = 0.3
    requests: list[dict] = []  # noqa: RUF012 - shared on purpose, read by the test

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        time.sleep(self.delay_s)
        reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": " a test caption "}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_endpoint():
    endpoint = ThreadingHTTPServer(("127.0.0.1", 0), _SlowChatEndpoint)
    thread = threading.Thread(target=endpoint.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{endpoint.server_address[1]}/v1"
    endpoint.shutdown()
    endpoint.server_close()


def test_an_openai_compatible_endpoint_captions_and_a_job_can_be_cancelled(client, chat_endpoint, tmp_path):
    name = _images(client, tmp_path, count=12, caption_style="sentence")
    captioner = {"backend": "openai", "source": chat_endpoint, "model": "some-vlm", "api_key": "k-123"}
    job = client.ok(
        "POST", f"/api/datasets/{name}/autocaption", json={"captioner": captioner, "mode": "overwrite"}
    )
    while job["done"] < 2:
        time.sleep(0.05)
        job = client.ok("GET", f"/api/jobs/{job['id']}")
    client.ok("POST", f"/api/jobs/{job['id']}/cancel")
    while job["finished"] is None:
        time.sleep(0.05)
        job = client.ok("GET", f"/api/jobs/{job['id']}")
    assert job["state"] == "cancelled" and 2 <= job["done"] < 12, job
    written = [caption for caption in _captions(client, name).values() if caption]
    assert written and set(written) == {"a test caption"}
    sent = _SlowChatEndpoint.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer k-123"
    assert sent["body"]["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_bad_captioner_choices_are_refused_by_name(client, tmp_path):
    name = _images(client, tmp_path, count=1)
    for captioner, words in (
        ({"backend": "nope", "source": "x"}, "unknown captioner backend"),
        ({"backend": "blip", "source": "x", "beams": 2}, "unknown option(s) beams"),
    ):
        reply = client.call("POST", f"/api/datasets/{name}/autocaption", json={"captioner": captioner})
        assert reply.status_code == 400 and words in reply.json()["error"]
    reply = client.call(
        "POST", f"/api/datasets/{name}/autocaption", json={"captioner": BLIP, "mode": "merge"}
    )
    assert reply.status_code == 400 and "ignore-existing, append, overwrite" in reply.json()["error"]
    job, _ = _run(client, name, {"backend": "blip", "source": "../../../../../../etc"}, "overwrite")
    assert job["state"] == "failed" and "outside the workspace" in job["error"]
