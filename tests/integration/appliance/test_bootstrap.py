"""The entrypoint's workspace bootstrap: idempotent, never touches a user's files, password shown once."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lorapilot.appliance.bootstrap import bootstrap, skeleton_dir
from lorapilot.workspace import Workspace

APPLIANCE = shutil.which("lorapilot-appliance") or str(Path(sys.executable).with_name("lorapilot-appliance"))


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under root with its mode and content hash (folders hash to '')."""
    out = {}
    for path in sorted(root.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(root))] = (path.stat().st_mode, digest, path.stat().st_mtime_ns)
    return out


def run_bootstrap(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "LORAPILOT_PASSWORD"}
    return subprocess.run(
        [APPLIANCE, "bootstrap", "--workspace", str(root)],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=120,
        check=False,
    )


def test_a_second_bootstrap_changes_nothing_and_the_password_is_shown_once(tmp_path):
    root = tmp_path / "ws"
    first = run_bootstrap(root)
    assert first.returncode == 0, first.stderr
    password_file = root / "config" / "password"
    password = password_file.read_text().strip()
    assert f"generated the appliance password (saved in {password_file}): {password}" in first.stdout
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert (root / "README.md").is_file() and (root / "config" / "examples" / "kohya_sdxl.yaml").is_file()
    assert (root / "config" / "profiles" / "quick_test.yaml").is_file()
    for state in ("incoming", "running", "done", "failed", "cancelled"):
        assert (root / "jobs" / state).is_dir()

    before = snapshot(root)
    second = run_bootstrap(root)
    assert second.returncode == 0, second.stderr
    assert password not in second.stdout + second.stderr, "the password must be shown only once"
    assert "0 files and folders created" in second.stdout
    assert snapshot(root) == before


def test_files_a_user_placed_or_edited_are_never_touched(tmp_path):
    ws = Workspace.from_env(tmp_path / "ws")
    user_files = {
        ws.images / "1_mine" / "a.txt": "my caption",
        ws.config / "profiles" / "quick_test.yaml": "# my own quick test\nspec_version: 1\n",
        ws.config / "examples" / "kohya_sdxl.yaml": "# edited by me\n",
        ws.root / "README.md": "my notes",
        ws.config / "password": "my-own-password-123\n",
    }
    for path, text in user_files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    report = bootstrap(ws)
    for path, text in user_files.items():
        assert path.read_text() == text, path
    assert report.password is not None
    assert report.password.value == "my-own-password-123" and not report.password.created
    assert (ws.config / "examples" / "aitoolkit_flux.yaml").is_file()  # missing ones are still added


def test_a_password_from_the_environment_writes_no_file_and_is_never_printed(tmp_path):
    root = tmp_path / "ws"
    done = run_bootstrap(root, LORAPILOT_PASSWORD="correct-horse-battery")
    assert done.returncode == 0, done.stderr
    assert not (root / "config" / "password").exists()
    assert "correct-horse-battery" not in done.stdout + done.stderr
    assert "appliance password: from environment" in done.stdout


def test_a_too_short_password_is_refused_with_the_fix(tmp_path):
    done = run_bootstrap(tmp_path / "ws", LORAPILOT_PASSWORD="abc")
    assert done.returncode == 1
    assert "LORAPILOT_PASSWORD is shorter than 8 characters" in done.stderr


def test_the_skeleton_is_the_checkouts_workspace_skel():
    assert (skeleton_dir() / "README.md").is_file()


@pytest.mark.parametrize(
    ("example", "family"),
    [
        ("kohya_sdxl.yaml", "sdxl"),
        ("aitoolkit_flux.yaml", "flux-dev"),
        ("diffusion_pipe_flux.toml", "flux-dev"),
        ("lorapilot_sd15.yaml", "sd15"),
    ],
)
def test_every_example_config_validates_once_its_model_is_there(example, family, tmp_path, tiny_models):
    from lorapilot.spec import load_spec  # noqa: PLC0415
    from lorapilot.testing.datasets import write_demo_images  # noqa: PLC0415

    ws = Workspace.from_env(tmp_path / "ws")
    bootstrap(ws)
    names = {
        "sdxl": "stable-diffusion-xl-base-1.0",
        "flux-dev": "FLUX.1-dev",
        "sd15": "stable-diffusion-v1-5",
    }
    shutil.copytree(tiny_models[family], ws.model_dir("diffusers") / names[family])
    write_demo_images(ws.images / "1_my_dataset", 2, caption="a photo")
    spec = load_spec(ws.config / "examples" / example, workspace=ws).spec
    assert spec.model.family == family
