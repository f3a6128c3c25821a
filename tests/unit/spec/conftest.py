"""A workspace laid out like the user guide's, and a way to run `trainpilot validate` on it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lorapilot.testing.datasets import write_demo_images
from lorapilot.trainpilot.cli import main
from lorapilot.workspace import Workspace

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

# Dataset folders the guide's configs name, with how many images each gets.
GUIDE_DATASETS = {
    "images/1_my_dataset": 3,
    "images/1_your_dataset": 2,
    "images/1_concept_a": 2,
    "images/2_concept_b": 2,
    "images/3_concept_c": 2,
    "images/1_main_concept": 2,
    "images/2_regularization": 2,
    "reg/1_person": 2,
}


@pytest.fixture(scope="session")
def guide_workspace(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Workspace:
    """A workspace with the guide's dataset folders and its model paths holding tiny real models."""
    ws = Workspace.from_env(tmp_path_factory.mktemp("workspace")).ensure()
    for rel, count in GUIDE_DATASETS.items():
        write_demo_images(ws.datasets / rel, count, caption="a photo of")
    shutil.copytree(tiny_models["sd15"], ws.models / "stable-diffusion-v1-5")
    shutil.copytree(tiny_models["sdxl"], ws.models / "stable-diffusion-xl-base-1.0")
    shutil.copytree(tiny_models["flux-schnell"], ws.models / "diffusers" / "FLUX.1-schnell")
    # docs/user-guide.md keeps its own examples' models where the workspace README says: models/diffusers/
    (ws.models / "diffusers" / "stable-diffusion-xl-base-1.0").symlink_to(
        ws.models / "stable-diffusion-xl-base-1.0"
    )
    shutil.copytree(tiny_models["flux-dev"], ws.models / "diffusers" / "FLUX.1-dev")
    return ws


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def spec(self) -> dict:
        assert self.rc == 0, self.err
        return yaml.safe_load(self.out)


@pytest.fixture
def validate(capsys: pytest.CaptureFixture[str]):
    """Run `trainpilot validate ARGS…` in-process against a workspace; returns rc, stdout, stderr."""

    def run(*args: str | Path, workspace: Workspace) -> Result:
        capsys.readouterr()
        try:
            rc = main(["validate", *map(str, args), "--workspace", str(workspace.root)])
        except SystemExit as exc:  # argparse's own refusals (unknown choices) exit 2
            rc = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(rc, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def header_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The fixture configs' workspace with header-only models (no torch): enough to validate them."""
    from lorapilot.testing.config_fuzz import build_workspace  # noqa: PLC0415 - hypothesis only when used

    return build_workspace(tmp_path_factory.mktemp("fuzz") / "workspace")
