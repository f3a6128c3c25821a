"""Shipped profiles are complete runs once a dataset is named; the workspace's copy wins."""

from __future__ import annotations

import pytest

from lorapilot.spec.profiles import available, shipped_dir
from lorapilot.testing.datasets import write_demo_images
from lorapilot.workspace import Workspace

SHIPPED = (
    "quick_test",
    "regular",
    "high_quality",
    "style",
    "character",
    "high_resolution",
    "multi_resolution",
)


def test_every_guide_recipe_is_shipped():
    assert {p.stem for p in shipped_dir().glob("*.yaml")} == set(SHIPPED)


@pytest.mark.parametrize("profile", SHIPPED)
def test_profile_plus_dataset_is_a_valid_run(profile, validate, guide_workspace):
    spec = validate(
        "--profile", profile, "--dataset", "my_dataset", "--name", "run", workspace=guide_workspace
    ).spec
    assert spec["model"]["family"] == "sdxl"
    assert spec["output"]["name"] == "run"


def test_quick_test_is_the_guides_quick_test(validate, guide_workspace):
    spec = validate(
        "--profile", "quick_test", "--dataset", "my_dataset", "--name", "q", workspace=guide_workspace
    ).spec
    assert spec["model"]["path"] == "stabilityai/stable-diffusion-xl-base-1.0"
    assert (spec["training"]["max_steps"], spec["training"]["learning_rate"]) == (100, 1e-4)
    assert (spec["training"]["batch_size"], spec["network"]["dim"]) == (1, 16)


def test_workspace_profile_overrides_the_shipped_one(validate, tmp_path):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    write_demo_images(ws.images / "1_data", 2)
    custom = ws.profiles / "quick_test.yaml"
    custom.write_text(custom.read_text().replace("max_steps: 100", "max_steps: 42"))
    (ws.profiles / "mine.yaml").write_text("spec_version: 1\ntraining:\n  max_steps: 7\n")
    assert "mine" in available(ws)
    spec = validate("--profile", "quick_test", "--dataset", "data", "--name", "x", workspace=ws).spec
    assert spec["training"]["max_steps"] == 42
    mine = validate(
        "--profile",
        "quick_test",
        "--dataset",
        "data",
        "--name",
        "x",
        "--set",
        "training.epochs=2",
        workspace=ws,
    ).spec
    assert (mine["training"]["epochs"], mine["training"]["max_steps"]) == (2, None)


def test_cli_overrides_win_over_the_config(validate, guide_workspace, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("training:\n  max_train_steps: 500\nnetwork:\n  network_dim: 8\n")
    spec = validate(
        config,
        "--profile",
        "quick_test",
        "--dataset",
        "my_dataset",
        "--set",
        "training.max_steps=50",
        "--set",
        "datasets[0].repeats=4",
        workspace=guide_workspace,
    ).spec
    assert spec["training"]["max_steps"] == 50
    assert spec["datasets"][0]["repeats"] == 4
    assert (spec["network"]["dim"], spec["network"]["alpha"]) == (8, 8.0)  # a new rank brings its alpha
    assert spec["output"]["name"] == "c"  # named after the config file
