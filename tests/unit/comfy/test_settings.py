"""config/comfy.yaml: defaults, the URL from the environment, saving it back in the same layout, and
errors that name the field and the fix."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from lorapilot import families
from lorapilot.comfy.errors import SettingsError
from lorapilot.comfy.settings import (
    DEFAULT_STRENGTHS,
    PORT_ENV,
    URL_ENV,
    ComfySettings,
    UrlOrigin,
    load_settings,
    save_settings,
    url_origin,
)
from lorapilot.comfy.workflows import Base, Render, base_loaders, build
from lorapilot.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    return Workspace.from_env(tmp_path).ensure()


def test_defaults_without_a_file(ws, monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.delenv(PORT_ENV, raising=False)
    settings = load_settings(ws)
    assert settings.url == "http://127.0.0.1:8188"
    assert settings.strengths == DEFAULT_STRENGTHS and settings.test_after_publish
    monkeypatch.setenv(PORT_ENV, "8300")  # the appliance's own ComfyUI on another port
    assert load_settings(ws).url == "http://127.0.0.1:8300"


def test_file_and_environment(ws, monkeypatch):
    (ws.config / "comfy.yaml").write_text(
        "url: http://comfy:8188\nstrengths: [0, 1]\nbases: {sdxl: {ckpt_name: x.safetensors}}\n"
    )
    monkeypatch.delenv(URL_ENV, raising=False)
    settings = load_settings(ws)
    assert settings.url == "http://comfy:8188" and settings.strengths == (0.0, 1.0)
    assert settings.base("sdxl").files == {"ckpt_name": "x.safetensors"}
    monkeypatch.setenv(URL_ENV, "http://other:9000")
    assert load_settings(ws).url == "http://other:9000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("urll: x\n", "unknown key(s) urll"),
        ("strengths: [a]\n", "strengths must be a list of numbers"),
        ("bases: {sd15: model.safetensors}\n", "bases.sd15.ckpt_name"),
        ("url: [\n", "not valid YAML"),
    ],
)
def test_mistakes_name_the_fix(ws, text, message):
    (ws.config / "comfy.yaml").write_text(text)
    with pytest.raises(
        SettingsError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
    ):
        load_settings(ws)


# -- saving (ControlPilot's Models page) ----------------------------------------------------------
FLUX = {
    "unet_name": "flux1-dev.safetensors",
    "clip_name1": "clip_l.safetensors",
    "clip_name2": "t5xxl_fp16.safetensors",
    "vae_name": "ae.safetensors",
    "weight_dtype": "fp8_e4m3fn",
}


def test_saved_settings_read_back_the_same(ws, monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    saved = ComfySettings(
        url="http://comfy.lan:8190/",
        test_after_publish=False,
        strengths=(0.0, 0.25, 1.0, 2.0),
        bases={"sd15": {"ckpt_name": "sd15/v1-5-pruned-emaonly.safetensors"}, "flux-dev": FLUX},
    )
    path = save_settings(ws, saved)
    assert load_settings(ws) == replace(saved, url="http://comfy.lan:8190")
    text = path.read_text()
    assert "strengths: [0, 0.25, 1, 2]\n" in text  # the documented layout, as a person writes it
    assert "  sd15: {ckpt_name: sd15/v1-5-pruned-emaonly.safetensors}\n" in text
    assert url_origin(ws) == UrlOrigin("file", "http://comfy.lan:8190")
    assert not [p for p in ws.config.iterdir() if p.name.startswith(".comfy.yaml")]  # no temp file left


def test_an_empty_url_or_base_file_is_left_out_and_the_default_applies(ws, monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.delenv(PORT_ENV, raising=False)
    save_settings(
        ws, ComfySettings(url="", bases={"sd15": {"ckpt_name": "a.safetensors"}, "sdxl": {"ckpt_name": ""}})
    )
    assert "url" not in (ws.config / "comfy.yaml").read_text()
    settings = load_settings(ws)
    assert settings.url == "http://127.0.0.1:8188" and settings.bases == {
        "sd15": {"ckpt_name": "a.safetensors"}
    }
    assert url_origin(ws) == UrlOrigin("default", None)
    monkeypatch.setenv(URL_ENV, "http://other:9000")
    assert url_origin(ws) == UrlOrigin("env", None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "comfy:8188"}, "url: must start with http:// or https://"),
        ({"url": "ftp://comfy:8188"}, "url: must start with http:// or https://"),
        ({"url": "http://comfy:99999"}, "url: the port must be a number"),
        ({"url": "http://comfy:8188/api"}, "url: only http(s)://host[:port]"),
        ({"strengths": ()}, "strengths: 1 to 16"),
        ({"strengths": tuple(range(17))}, "strengths: 1 to 16"),
        ({"strengths": (0, 2.5)}, "strengths: each a number from 0 to 2"),
        ({"strengths": (-0.5,)}, "strengths: each a number from 0 to 2"),
        ({"strengths": (True,)}, "strengths: each a number"),
        ({"strengths": ("0.5",)}, "strengths: each a number"),
        ({"test_after_publish": "yes"}, "test_after_publish: true or false"),
        ({"bases": {"sd9": {"ckpt_name": "x"}}}, "bases.sd9: unknown family; known: sd15"),
        (
            {"bases": {"sd15": {"unet_name": "x"}}},
            "bases.sd15.unet_name: sd15 workflows take no 'unet_name', only",
        ),
        (
            {"bases": {"sd15": {"ckpt_name": "../../etc/passwd"}}},
            "bases.sd15.ckpt_name: a file name as ComfyUI",
        ),
        ({"bases": {"sd15": {"ckpt_name": "/models/x.safetensors"}}}, "not a path"),
        ({"bases": {"sd15": {"ckpt_name": "C:\\models\\x.safetensors"}}}, "not a path"),
        ({"bases": {"sd15": {"ckpt_name": "a\nb"}}}, "not a path"),
        ({"bases": {"sd15": "x.safetensors"}}, "bases.sd15: a mapping of loader input to file"),
    ],
)
def test_save_refuses_mistakes_naming_the_field_and_keeps_the_file(ws, change, message):
    path = ws.config / "comfy.yaml"
    path.write_text("strengths: [0, 1]\n")
    with pytest.raises(SettingsError, match=re.escape(message)):
        save_settings(ws, replace(ComfySettings(url="http://comfy:8188"), **change))
    assert path.read_text() == "strengths: [0, 1]\n"


@pytest.mark.parametrize("family", families.ids())
def test_the_settings_take_exactly_the_base_inputs_each_workflow_loads(family):
    """The registry's ComfyUI inputs (what the page offers and save_settings accepts) are what the
    builders read."""
    inputs = families.get(family).comfy
    values = {key: f"{key}.safetensors" for key in inputs.inputs}
    workflow = build(family, Render("x"), Base(values))
    used = {
        key for node in workflow.values() for key, value in node["inputs"].items() if values.get(key) == value
    }
    assert used == set(inputs.inputs) == set(base_loaders(family))
    for key in inputs.files:
        with pytest.raises(SettingsError, match=re.escape(f"bases.{family}.{key}")):
            build(family, Render("x"), Base({k: v for k, v in values.items() if k != key}))
