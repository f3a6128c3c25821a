"""scripts/run's demo dataset from a user's folder (`LORAPILOT_DEMO_DATASET`), through a real
TagPilot: uploaded with its own captions, the rest auto-captioned by the tiny tagger, exported where
`trainpilot run --dataset demo` finds it; a second run replaces it and says where the first one went."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from lorapilot.appliance.demo_dataset import DEMO_DATASET_ENV
from lorapilot.testing.sample_photos import skimage_photo
from lorapilot.workspace import Workspace

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "demo-dataset-test-password"


@pytest.fixture
def tagpilot(tmp_path: Path) -> Iterator[tuple[str, Workspace]]:
    workspace = Workspace.from_env(tmp_path / "ws").ensure()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        str(Path(sys.executable).parent / "tagpilot"),
        f"--port={port}",
        f"--workspace={workspace.root}",
    ]
    env = os.environ | {"LORAPILOT_PASSWORD": PASSWORD, "HF_HUB_OFFLINE": "1"}
    with (tmp_path / "tagpilot.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield f"http://127.0.0.1:{port}", workspace
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def make_demo(url: str, workspace: Workspace, folder: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "PYTHONPATH": str(REPO / "services"),
        "LORAPILOT_PASSWORD": PASSWORD,
        DEMO_DATASET_ENV: str(folder),
    }
    return subprocess.run(
        [sys.executable, "-m", "lorapilot.appliance.demo_dataset", "--tagpilot", url],
        env=env | {"LORAPILOT_WORKSPACE": str(workspace.root)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_users_folder_keeps_its_captions_and_the_rest_are_auto_captioned(tagpilot, tmp_path):
    url, workspace = tagpilot
    folder = tmp_path / "my photos"
    (folder / "10_cats").mkdir(parents=True)
    skimage_photo("chelsea.png").convert("RGB").save(folder / "10_cats" / "chelsea.jpg")
    (folder / "10_cats" / "chelsea.txt").write_text("my cat on a blanket\n")
    skimage_photo("coffee.png").save(folder / "coffee.png")
    skimage_photo("rocket.jpg").save(folder / "rocket.jpg")
    (folder / ".thumbnails").mkdir()
    Image.new("RGB", (64, 64)).save(folder / ".thumbnails" / "coffee.png")  # hidden: not part of it
    (folder / "notes.md").write_text("not an image\n")

    first = make_demo(url, workspace, folder)

    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert f"[run] uploading 3 images from your folder {folder} to TagPilot's dataset 'demo'" in lines
    assert "[run] uploaded 3/3 (3 in the dataset)" in lines
    assert "[run] captioned 2 of the 2 images without a caption" in lines
    exported = workspace.images / "40_demo"  # 3 images: TagPilot suggests 40 repeats
    assert lines[-1] == "[run] exported to /workspace/datasets/images/40_demo: 3 images, 40 repeats"
    assert sorted(path.name for path in exported.iterdir()) == [
        "chelsea.jpg", "chelsea.txt", "coffee.png", "coffee.txt", "rocket.jpg", "rocket.txt",
    ]  # fmt: skip
    assert (exported / "chelsea.txt").read_text() == "my cat on a blanket\n"
    assert "photo" in (exported / "coffee.txt").read_text()  # the tiny tagger's tags
    assert first.stderr == ""

    second = make_demo(url, workspace, folder)

    assert second.returncode == 0, second.stderr
    assert "[run] the earlier dataset 'demo' went to TagPilot's trash" in second.stdout
    assert [path.name for path in workspace.images.iterdir() if not path.name.startswith(".")] == ["40_demo"]


def test_a_missing_folder_is_refused_naming_the_variable(tagpilot, tmp_path):
    url, workspace = tagpilot
    missing = tmp_path / "no-such-folder"

    done = make_demo(url, workspace, missing)

    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"[run] {DEMO_DATASET_ENV}={missing}: no such folder; point it at a folder of images, or unset it"
    )
    assert not (workspace.root / "datasets" / "tagpilot" / "demo").exists()
