"""The Models page's ComfyUI settings (`/api/comfy/settings`): what the page shows with ComfyUI down,
slow or up (the fake ComfyUI server), saving through the page, mistakes that name the field, and a
URL set by the environment."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lorapilot.comfy.settings import PORT_ENV, URL_ENV, load_settings
from lorapilot.testing.comfyui_server import FakeComfyUI
from lorapilot.workspace import Workspace

ROUTE = "/api/comfy/settings"
QUICK_S = 3.5  # the route's promise (~3 s) with room for a busy test machine


@pytest.fixture(autouse=True)
def no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.delenv(PORT_ENV, raising=False)


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that takes connections and never answers: a ComfyUI that hangs, or a firewall."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def comfy(tmp_path: Path) -> Iterator[FakeComfyUI]:
    """A ComfyUI whose model folder is not the workspace's, so its lists are told apart."""
    models = tmp_path / "comfy-models"
    for folder, name in [
        ("checkpoints", "served/by-comfyui.safetensors"),
        ("diffusion_models", "flux1-dev.safetensors"),
        ("text_encoders", "clip_l.safetensors"),
        ("vae", "ae.safetensors"),
    ]:
        (models / folder / name).parent.mkdir(parents=True, exist_ok=True)
        (models / folder / name).write_bytes(b"x")
    server = FakeComfyUI(models, tmp_path / "out", tmp_path / "in").start()
    try:
        yield server
    finally:
        server.stop()


def write_workspace_models(ws: Workspace) -> None:
    for rel in [
        "checkpoints/tiny-sd15.safetensors",
        "checkpoints/sdxl/base.safetensors",
        "checkpoints/readme.txt",  # not a model file
        "checkpoints/.partial/half.safetensors",  # a download in progress
        "diffusion_models/flux1-schnell.safetensors",
        "text_encoders/t5xxl_fp16.safetensors",
        "vae/ae.safetensors",
    ]:
        (ws.models / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws.models / rel).write_bytes(b"x")


def configure(ws: Workspace, url: str) -> Path:
    path = ws.config / "comfy.yaml"
    path.write_text(
        f"url: {url}\nstrengths: [0, 0.5, 1.0]\nbases:\n  sd15: {{ckpt_name: tiny-sd15.safetensors}}\n"
    )
    return path


def timed_get(session) -> tuple[dict, float]:
    start = time.monotonic()
    view = session.ok("GET", ROUTE)
    return view, time.monotonic() - start


def family(view: dict, name: str) -> dict:
    return next(f for f in view["families"] if f["family"] == name)


def test_with_comfyui_down_the_page_answers_at_once_with_the_workspace_files(session, ws, dead_url):
    write_workspace_models(ws)
    configure(ws, dead_url)
    view, took = timed_get(session)
    assert took < QUICK_S
    assert view["comfyui"]["reachable"] is False and "not answering" in view["comfyui"]["detail"]
    assert (view["url"], view["url_source"], view["url_note"]) == (dead_url, "file", None)
    assert view["strengths"] == [0, 0.5, 1.0] and view["test_after_publish"] is True
    assert view["bases"] == {"sd15": {"ckpt_name": "tiny-sd15.safetensors"}}
    assert view["choices_from"] == "workspace"
    assert view["choices"]["sd15"]["ckpt_name"] == ["sdxl/base.safetensors", "tiny-sd15.safetensors"]
    flux = view["choices"]["flux-dev"]
    assert flux["unet_name"] == ["flux1-schnell.safetensors"] and flux["vae_name"] == ["ae.safetensors"]
    assert flux["clip_name1"] == flux["clip_name2"] == ["t5xxl_fp16.safetensors"]
    assert flux["weight_dtype"] == ["default"]
    assert family(view, "sd3")["files"] == ["ckpt_name", "clip_name1", "clip_name2", "clip_name3"]
    assert family(view, "flux-dev")["options"] == {"weight_dtype": "default"}
    assert [f["family"] for f in view["families"]][:3] == ["sd15", "sd2", "sdxl"]


def test_a_comfyui_that_hangs_does_not_hang_the_page(session, ws, silent_url):
    configure(ws, silent_url)
    view, took = timed_get(session)
    assert took < QUICK_S
    assert view["comfyui"]["reachable"] is False and view["choices_from"] == "workspace"


def test_with_comfyui_up_the_choices_are_the_files_it_offers(session, ws, comfy):
    write_workspace_models(ws)
    configure(ws, comfy.url)
    view, took = timed_get(session)
    assert took < QUICK_S
    assert view["comfyui"] == {"url": comfy.url, "reachable": True, "detail": "ComfyUI fake"}
    assert view["choices_from"] == "comfyui"
    assert view["choices"]["sd15"]["ckpt_name"] == ["served/by-comfyui.safetensors"]
    flux = view["choices"]["flux-schnell"]
    assert flux["unet_name"] == ["flux1-dev.safetensors"] and flux["clip_name2"] == ["clip_l.safetensors"]
    assert "fp8_e4m3fn" in flux["weight_dtype"]  # UNETLoader's own list, not a file folder


def test_saving_from_the_page_writes_what_load_settings_reads(session, ws, comfy):
    path = configure(ws, "http://old-host:8188")
    body = {
        "url": comfy.url + "/",
        "test_after_publish": False,
        "strengths": "0, 0.3, 0.6, 1.2",
        "bases": {
            "sd15": {"ckpt_name": "served/by-comfyui.safetensors"},
            "sdxl": {"ckpt_name": ""},  # cleared on the page: not set
            "flux-dev": {"unet_name": "flux1-dev.safetensors", "weight_dtype": ""},
        },
    }
    view = session.ok("PUT", ROUTE, json=body)
    assert view["saved"] == "/workspace/config/comfy.yaml" and "comfybridge service use these" in view["note"]
    assert view["comfyui"]["reachable"] is True and view["url_source"] == "file"
    settings = load_settings(ws)
    assert settings.url == comfy.url and settings.test_after_publish is False
    assert settings.strengths == (0.0, 0.3, 0.6, 1.2)
    assert settings.bases == {
        "sd15": {"ckpt_name": "served/by-comfyui.safetensors"},
        "flux-dev": {"unet_name": "flux1-dev.safetensors"},
    }
    assert view["strengths"] == [0.0, 0.3, 0.6, 1.2] and view["bases"] == settings.bases

    session.ok("PUT", ROUTE, json={"strengths": [0, 1]})  # a field left out keeps its value
    kept = load_settings(ws)
    assert kept.strengths == (0.0, 1.0) and kept.bases == settings.bases and kept.url == comfy.url
    session.ok("PUT", ROUTE, json={"url": ""})  # empty: back to the appliance's own ComfyUI
    assert "url" not in path.read_text()
    assert session.ok("GET", ROUTE)["url_source"] == "default"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "comfy:8188"}, "url:"),
        ({"url": "http://comfy:8188/some/path"}, "url:"),
        ({"strengths": "0, half, 1"}, "strengths:"),
        ({"strengths": [0, 5]}, "strengths:"),
        ({"strengths": []}, "strengths:"),
        ({"test_after_publish": "yes"}, "test_after_publish:"),
        ({"bases": {"sd15": {"ckpt_name": "../../config/secrets.safetensors"}}}, "bases.sd15.ckpt_name:"),
        ({"bases": {"sd15": {"vae_name": "ae.safetensors"}}}, "bases.sd15.vae_name:"),
        ({"bases": {"pixart": {"ckpt_name": "x.safetensors"}}}, "bases.pixart:"),
        ({"colour": "red"}, "unknown field(s) colour"),
    ],
)
def test_mistakes_are_refused_naming_the_field_and_nothing_is_saved(session, ws, dead_url, body, field):
    path = configure(ws, dead_url)
    before = path.read_text()
    reply = session.call("PUT", ROUTE, json=body)
    assert reply.status_code == 400, reply.text
    assert reply.get_json()["error"].startswith(field)
    assert path.read_text() == before
    assert session.call("PUT", ROUTE, data="not json").status_code == 400


def test_a_url_from_the_environment_is_reported_and_saving_keeps_the_files_url(
    session, ws, comfy, monkeypatch
):
    path = configure(ws, "http://file-host:8188")
    monkeypatch.setenv(URL_ENV, comfy.url)
    view = session.ok("GET", ROUTE)
    assert (view["url"], view["url_source"], view["file_url"]) == (comfy.url, "env", "http://file-host:8188")
    assert URL_ENV in view["url_note"] and "http://file-host:8188 is overridden" in view["url_note"]
    assert view["comfyui"]["reachable"] is True

    session.ok("PUT", ROUTE, json={"strengths": [0, 0.5]})  # the page sends no url while it is overridden
    assert "url: http://file-host:8188\n" in path.read_text()
    assert load_settings(ws).url == comfy.url


def test_a_broken_file_is_reported_and_saving_the_page_mends_it(session, ws, dead_url):
    path = ws.config / "comfy.yaml"
    path.write_text("url: [\n")
    view = session.ok("GET", ROUTE)
    assert "not valid YAML" in view["settings_error"] and view["strengths"] == [0.0, 0.5, 0.8, 1.0]
    full = {"url": dead_url, "test_after_publish": True, "strengths": [0, 1], "bases": {}}
    session.ok("PUT", ROUTE, json=full)
    assert load_settings(ws).url == dead_url and session.ok("GET", ROUTE)["settings_error"] is None
