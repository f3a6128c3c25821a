"""config/comfy.yaml: defaults, the URL from the environment, and errors that name the fix."""

from __future__ import annotations

import pytest

from lorapilot.comfy.errors import SettingsError
from lorapilot.comfy.settings import DEFAULT_STRENGTHS, PORT_ENV, URL_ENV, load_settings
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
