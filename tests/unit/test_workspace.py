"""The workspace layout is created without touching what is there, and paths cannot leave it."""

from __future__ import annotations

import os

import pytest

from lorapilot.workspace import ENV_VAR, PathEscapeError, Workspace


def test_ensure_creates_the_documented_layout(tmp_path):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    for rel in (
        "datasets/images",
        "datasets/reg",
        "models/checkpoints",
        "models/diffusers",
        "models/loras",
        "models/vae",
        "models/text_encoders",
        "models/captioners",
        "jobs/incoming",
        "jobs/running",
        "jobs/done",
        "jobs/failed",
        "jobs/cancelled",
        "outputs",
        "cache/latents",
        "cache/text",
        "config/profiles",
        "logs",
    ):
        assert (ws.root / rel).is_dir(), rel
    assert (ws.profiles / "quick_test.yaml").is_file()


def test_ensure_never_touches_existing_files(tmp_path):
    ws = Workspace.from_env(tmp_path).ensure()
    mine = ws.profiles / "quick_test.yaml"
    mine.write_text("spec_version: 1  # edited by the user\n")
    note = ws.outputs / "notes.txt"
    note.write_text("keep me")
    os.chmod(note, 0o600)
    Workspace.from_env(tmp_path).ensure()
    assert mine.read_text() == "spec_version: 1  # edited by the user\n"
    assert note.read_text() == "keep me" and (note.stat().st_mode & 0o777) == 0o600


def test_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "elsewhere"))
    assert Workspace.from_env().root == (tmp_path / "elsewhere").resolve()
    monkeypatch.delenv(ENV_VAR)
    assert str(Workspace.from_env().root) == "/workspace"


def test_container_paths_map_into_a_native_workspace(tmp_path):
    ws = Workspace.from_env(tmp_path).ensure()
    assert ws.resolve("/workspace/datasets/images/1_x") == ws.images / "1_x"
    assert ws.resolve("outputs/run") == ws.outputs / "run"
    assert ws.display(ws.images / "1_x") == "/workspace/datasets/images/1_x"


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "/workspace/../etc", "../../etc", "outputs/../../x", "", "a\x00b", "x\ud800"]
)
def test_paths_outside_the_workspace_are_refused(tmp_path, bad):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    with pytest.raises(PathEscapeError):
        ws.resolve(bad)


def test_symlinks_out_of_the_workspace_are_refused(tmp_path):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    (ws.images / "sneaky").symlink_to(tmp_path)
    with pytest.raises(PathEscapeError):
        ws.resolve("/workspace/datasets/images/sneaky")
