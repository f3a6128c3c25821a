"""`lorapilot-appliance models pull` against a real local HTTP file server standing in for the hub:
the file lands in the folder ComfyUI reads, an interrupted pull resumes with a Range request, a wrong
hash is refused and deleted, gated repos need the token (which never shows), and comfy.yaml gets the
base."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import yaml

from lorapilot.appliance import model_pull
from lorapilot.appliance.cli import main
from lorapilot.comfy.settings import load_settings
from lorapilot.families import FLUX_DEV, FLUX_SCHNELL
from lorapilot.testing.file_server import FileServer
from lorapilot.workspace import Workspace

CONTENT = bytes(range(256)) * 4096  # 1 MiB
PATH = "/me/flux-test/resolve/main/flux-test.safetensors"
TOKEN = "hf_pullTestSecretToken0123456789"


@pytest.fixture
def server() -> Iterator[FileServer]:
    files = FileServer(files={PATH: CONTENT}).start()
    try:
        yield files
    finally:
        files.stop()


@pytest.fixture
def ws(tmp_path, server, monkeypatch) -> Workspace:
    monkeypatch.setenv("LORAPILOT_HF_ENDPOINT", server.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(model_pull, "RETRY_PAUSE_S", 0.0)
    return Workspace.from_env(tmp_path / "ws").ensure()


def user_entry(ws: Workspace, **changes) -> None:
    entry = {
        "name": "flux-test",
        "family": FLUX_DEV.id,
        "folder": "diffusion_models",
        "repo": "me/flux-test",
        "filename": "flux-test.safetensors",
        "size_bytes": len(CONTENT),
        "sha256": hashlib.sha256(CONTENT).hexdigest(),
        "license": "apache-2.0",
        "comfy": {FLUX_DEV.id: "unet_name", FLUX_SCHNELL.id: "unet_name"},
    } | changes
    ws.models_config.write_text(yaml.safe_dump({"catalog": [entry]}), encoding="utf-8")


def pull(ws: Workspace, *extra: str) -> int:
    return main(["models", "pull", "flux-test", "--workspace", str(ws.root), *extra])


def test_a_pull_lands_in_comfyuis_folder_and_fills_comfy_yaml(ws, server, capsys):
    user_entry(ws)
    assert pull(ws) == 0

    target = ws.models / "diffusion_models" / "flux-test.safetensors"
    assert target.read_bytes() == CONTENT
    assert [p.name for p in target.parent.iterdir()] == ["flux-test.safetensors"]  # no .part left
    bases = load_settings(ws).bases
    assert bases[FLUX_DEV.id]["unet_name"] == bases[FLUX_SCHNELL.id]["unet_name"] == "flux-test.safetensors"
    out = capsys.readouterr().out
    assert "flux-test pulled into /workspace/models/diffusion_models/flux-test.safetensors" in out
    assert "bases.flux-dev.unet_name = flux-test.safetensors" in out
    assert [seen.range for seen in server.seen] == [None]

    assert pull(ws) == 0  # a second pull finds it, checks it, fetches nothing
    assert "flux-test is there already" in capsys.readouterr().out
    assert len(server.seen) == 1


def test_a_base_already_chosen_in_comfy_yaml_is_kept(ws, capsys):
    (ws.config / "comfy.yaml").write_text("bases:\n  flux-dev: {unet_name: mine.safetensors}\n")
    user_entry(ws)
    assert pull(ws) == 0
    bases = load_settings(ws).bases
    assert bases[FLUX_DEV.id]["unet_name"] == "mine.safetensors"
    assert bases[FLUX_SCHNELL.id]["unet_name"] == "flux-test.safetensors"
    assert "flux-dev.unet_name stays mine.safetensors" in capsys.readouterr().out


def test_a_dropped_connection_leaves_a_part_file_and_the_next_pull_resumes_with_a_range(ws, server, capsys):
    user_entry(ws)
    server.drop_after[PATH] = 300_000
    assert pull(ws, "--attempts", "1") == 1
    err = capsys.readouterr().err
    assert "the download stopped at 300000 of 1048576 bytes" in err and "pull it again to resume" in err
    part = ws.models / "diffusion_models" / ".flux-test.safetensors.part"
    assert part.stat().st_size == 300_000
    assert not (ws.models / "diffusion_models" / "flux-test.safetensors").exists()

    assert pull(ws) == 0
    assert [seen.range for seen in server.seen] == [None, "bytes=300000-"]
    assert (ws.models / "diffusion_models" / "flux-test.safetensors").read_bytes() == CONTENT
    assert not part.exists()
    assert "resumed after 300000 bytes" in capsys.readouterr().out


def test_one_pull_resumes_by_itself_when_the_connection_drops(ws, server):
    user_entry(ws)
    server.drop_after[PATH] = 123_457
    assert pull(ws) == 0
    assert [seen.range for seen in server.seen] == [None, "bytes=123457-"]
    assert (ws.models / "diffusion_models" / "flux-test.safetensors").read_bytes() == CONTENT


def test_a_wrong_hash_is_refused_and_the_file_is_not_left_anywhere(ws, capsys):
    user_entry(ws, sha256=hashlib.sha256(b"another file").hexdigest())
    assert pull(ws) == 1
    err = capsys.readouterr().err
    assert "flux-test: the downloaded flux-test.safetensors is not the catalog's file: its sha256 is" in err
    assert hashlib.sha256(CONTENT).hexdigest() in err and "It was deleted" in err
    assert list((ws.models / "diffusion_models").iterdir()) == []
    assert "flux-dev" not in load_settings(ws).bases


def test_a_gated_entry_needs_a_token_which_is_sent_but_never_shown(ws, server, capsys):
    user_entry(ws, gated=True)
    assert pull(ws) == 1
    err = capsys.readouterr().err
    assert "a gated repo: accept its licence (apache-2.0) on https://huggingface.co/me/flux-test" in err
    assert "/workspace/config/hf-token" in err
    assert server.seen == []  # refused before asking the server

    (ws.config / "hf-token").write_text(TOKEN + "\n")
    assert pull(ws) == 0
    assert [seen.authorization for seen in server.seen] == [f"Bearer {TOKEN}"]
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err


def test_a_missing_file_on_the_server_says_what_to_check(ws, capsys):
    user_entry(ws, filename="nope.safetensors")
    assert pull(ws) == 1
    assert "has no such file (HTTP 404); check the entry's repo, filename" in capsys.readouterr().err


def test_models_list_shows_the_catalog_and_what_is_pulled(ws, capsys):
    user_entry(ws)
    assert pull(ws) == 0
    capsys.readouterr()
    assert main(["models", "list", "--workspace", str(ws.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "FAMILY", "FOLDER", "SIZE", "GATED", "LICENSE", "PULLED"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["flux-test"] == ["flux-test", "flux-dev", "diffusion_models", "1", "MB", "apache-2.0", "yes"]
    assert rows["flux-dev"][:5] == ["flux-dev", "flux-dev", "diffusion_models", "23.80", "GB"]
    assert "yes" in rows["flux-dev"]  # gated
