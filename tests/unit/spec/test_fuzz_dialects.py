"""Fuzzing the config validator over its four dialects (issue 16, finding 4).

Real fixture configs (LoRA Pilot's own, kohya-ss TOML and JSON, ai-toolkit, diffusion-pipe with its
dataset file) are mutated (values replaced, keys deleted or added, types changed, text edited) and
validated. Whatever the config, the answer is a TrainSpec or the project's own error, and nothing
is written. The strategies live in `lorapilot.testing.config_fuzz`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given

from lorapilot.testing.config_fuzz import (
    Case,
    as_case,
    build_workspace,
    cases,
    command_lines,
    load_seeds,
    run_cli,
    tree,
    validate_case,
)
from lorapilot.workspace import Workspace

pytestmark = pytest.mark.fuzz

SEEDS = load_seeds()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace alone in its folder, so that anything written beside it shows."""
    return build_workspace(tmp_path_factory.mktemp("sandbox") / "workspace")


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp folder `tempfile` hands out during the test, to tell whether anything used it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_every_seed_config_validates(sandbox: Workspace) -> None:
    """The seeds are valid configs, so mutations start deep in the readers and the resolver."""
    refused = {}
    for seed in SEEDS:
        outcome = validate_case(as_case(seed), sandbox)
        if outcome != "ok":
            refused[seed.main] = outcome
    assert not refused
    assert {seed.dialect for seed in SEEDS} == {"lorapilot", "kohya", "ai-toolkit", "diffusion-pipe"}


@given(case=cases(SEEDS))
def test_validator_answers_a_spec_or_a_named_error(case: Case, sandbox: Workspace, private_tmp: Path) -> None:
    before = tree(sandbox.root.parent)
    validate_case(case, sandbox)  # raises anything but a LoraPilotError
    assert tree(sandbox.root.parent) == before
    assert not any(private_tmp.iterdir())


@given(command=command_lines(SEEDS))
def test_validate_command_exits_0_or_2(
    command: tuple[Case, list[str]], sandbox: Workspace, private_tmp: Path
) -> None:
    case, args = command
    before = tree(sandbox.root.parent)
    rc, err = run_cli(case, sandbox, args)
    assert rc in (0, 2), err
    assert "Traceback" not in err
    assert tree(sandbox.root.parent) == before
    assert not any(private_tmp.iterdir())
