"""The installed `trainpilot` command, run as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from lorapilot.testing.datasets import write_demo_images
from lorapilot.workspace import Workspace

TRAINPILOT = shutil.which("trainpilot") or str(Path(sys.executable).with_name("trainpilot"))


def run(*args: str, workspace: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LORAPILOT_WORKSPACE": str(workspace), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [TRAINPILOT, *args], check=False, capture_output=True, text=True, env=env, timeout=120
    )


def test_validate_prints_the_normalised_spec(tmp_path):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    write_demo_images(ws.images / "2_demo", 3)
    done = run(
        "validate", "--profile", "quick_test", "--dataset", "demo", "--name", "demo", workspace=ws.root
    )
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load(done.stdout)
    assert spec["datasets"][0]["repeats"] == 2
    assert spec["output"]["folder"] == str(ws.outputs / "demo")


def test_validate_reports_errors_with_exit_code_2(tmp_path):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    config = tmp_path / "typo.yaml"
    config.write_text("network_dim: 8\nlearnig_rate: 1e-4\n")
    done = run("validate", str(config), workspace=ws.root)
    assert done.returncode == 2
    assert "learnig_rate: unknown key" in done.stderr and "did you mean 'learning_rate'" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_help_lists_validate():
    done = subprocess.run([TRAINPILOT, "--help"], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "validate" in done.stdout


def test_validate_explain_prints_a_field_without_any_config(tmp_path):
    done = run("validate", "--explain", "datasets[].repeats", workspace=tmp_path / "ws")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "datasets.repeats",
        "  type:     integer",
        "  default:  1",
        "  accepted: >= 1 and <= 10000",
        "  meaning:  times each image is seen per epoch",
    ]


def test_validate_explain_of_a_section_lists_its_fields(tmp_path):
    done = run("validate", "--explain", "save", workspace=tmp_path / "ws")
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("fields:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == [
        "save.every_n_steps",
        "save.every_n_epochs",
        "save.keep_last",
        "save.format",
        "save.dtype",
        "save.save_state",
    ]


def test_validate_explain_of_an_unknown_field_exits_2_with_a_did_you_mean(tmp_path):
    done = run("validate", "--explain", "training.lerning_rate", workspace=tmp_path / "ws")
    assert done.returncode == 2 and done.stdout == ""
    assert "did you mean 'training.learning_rate'?" in done.stderr and "Traceback" not in done.stderr
