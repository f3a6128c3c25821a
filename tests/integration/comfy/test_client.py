"""The ComfyUI client over real HTTP and websocket sockets, against lorapilot.testing.comfyui_server
(ComfyUI itself is not installable from the package registries, so a local server implements its
documented API)."""

from __future__ import annotations

import io
import socket
import time

import pytest
from PIL import Image

from lorapilot.comfy.client import ComfyClient
from lorapilot.comfy.errors import (
    ComfyTimeoutError,
    ComfyUnavailableError,
    PromptFailedError,
    WorkflowRejectedError,
)
from lorapilot.comfy.workflows import Base, LoraUse, Render, build

SD15 = Base({"ckpt_name": "base-sd15.safetensors"})


@pytest.fixture
def lora(comfy_ws):
    (comfy_ws.model_dir("loras") / "mine.safetensors").write_bytes(b"lora")
    return "mine.safetensors"


def workflow(lora: str, strength: float = 1.0) -> dict:
    return build("sd15", Render("a photo of lpdemo", (LoraUse(lora, strength),), width=64, height=64), SD15)


def test_system_stats_object_info_and_the_api_prefix(fake_comfy, lora):
    client = ComfyClient(fake_comfy.url)
    assert client.system_stats()["devices"]
    info = client.object_info()
    assert lora in info["LoraLoader"]["input"]["required"]["lora_name"][0]
    assert set(client.object_info("KSampler")) == {"KSampler"}
    assert ComfyClient(f"{fake_comfy.url}/api").object_info("VAEDecode")["VAEDecode"]["output"] == ["IMAGE"]


def test_run_follows_the_websocket_and_returns_the_saved_png(fake_comfy, lora):
    fake_comfy.behaviour.step_delay = 0.01
    images = ComfyClient(fake_comfy.url).run(workflow(lora), timeout=30)
    assert len(images) == 1
    ref, data = images[0]
    assert ref.type == "output" and ref.filename.endswith(".png")
    assert Image.open(io.BytesIO(data)).size == (64, 64)
    assert len(fake_comfy.prompts) == 1


def test_a_rejected_workflow_names_each_node_and_problem(fake_comfy, lora):
    bad = workflow(lora)
    del bad["6"]["inputs"]["seed"]  # KSampler without its seed
    bad["2"]["inputs"]["lora_name"] = "missing.safetensors"
    with pytest.raises(WorkflowRejectedError) as caught:
        ComfyClient(fake_comfy.url).queue_prompt(bad)
    err = caught.value
    assert set(err.node_errors) == {"2", "6"}
    text = str(err)
    assert "Prompt outputs failed validation" in text
    assert "node 6 (KSampler): Required input is missing: seed" in text
    assert "node 2 (LoraLoader): Value not in list: lora_name: 'missing.safetensors'" in text


def test_an_unknown_node_class_is_rejected(fake_comfy, lora):
    bad = workflow(lora)
    bad["2"]["class_type"] = "LoraLoaderPlus"
    with pytest.raises(WorkflowRejectedError, match="Node 'LoraLoaderPlus' not found"):
        ComfyClient(fake_comfy.url).queue_prompt(bad)


def test_server_down_is_a_clear_error_after_retries():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ComfyClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.05)
    started = time.monotonic()
    with pytest.raises(ComfyUnavailableError, match=rf"not answering at http://127.0.0.1:{port}.*3 attempts"):
        client.system_stats()
    assert time.monotonic() - started >= 0.15  # backed off 0.05 + 0.1 s
    with pytest.raises(ComfyUnavailableError, match="websocket"):
        client.run({"1": {}}, timeout=1)


def test_a_server_that_never_answers_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never answers
        client = ComfyClient(
            f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3, retries=1, backoff=0.01
        )
        started = time.monotonic()
        with pytest.raises(ComfyUnavailableError, match="timed out"):
            client.system_stats()
        assert time.monotonic() - started < 5


def test_a_prompt_that_never_finishes_times_out(fake_comfy, lora):
    fake_comfy.behaviour.hang = True
    started = time.monotonic()
    with pytest.raises(ComfyTimeoutError, match="did not finish within 1 s"):
        ComfyClient(fake_comfy.url, timeout=0.5).run(workflow(lora), timeout=1)
    assert time.monotonic() - started < 5


def test_a_failing_node_is_reported(fake_comfy, lora):
    fake_comfy.behaviour.fail_class = "KSampler"
    with pytest.raises(PromptFailedError, match=r"node 6 \(KSampler\): CUDA out of memory"):
        ComfyClient(fake_comfy.url).run(workflow(lora), timeout=10)


def test_upload_image(fake_comfy):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    client = ComfyClient(fake_comfy.url)
    answer = client.upload_image("ref.png", buffer.getvalue(), subfolder="lorapilot")
    assert answer == {"name": "ref.png", "subfolder": "lorapilot", "type": "input"}
    assert (fake_comfy.input / "lorapilot" / "ref.png").read_bytes() == buffer.getvalue()
