"""The normalised spec that `validate` prints is itself a config that gives the same spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CONFIGS = Path(__file__).resolve().parents[2] / "fixtures" / "configs"


@pytest.mark.parametrize("config", ["kohya_args.toml", "aitoolkit_flux.yaml", "dp_main.toml"])
def test_normalised_spec_reads_back_identically(config, validate, guide_workspace, tmp_path):
    first = validate(CONFIGS / config, workspace=guide_workspace)
    assert first.out.startswith("# normalised from a ")
    saved = tmp_path / "spec.yaml"
    saved.write_text(first.out)
    second = validate(saved, workspace=guide_workspace)
    assert second.spec == first.spec
    assert yaml.safe_load(second.out)["spec_version"] == 1
