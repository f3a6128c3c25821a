"""The family a dialect's flag names is a hint; the files decide (issue 15: FLUX.1-schnell refused).

ai-toolkit's `is_flux: true` and diffusion-pipe's `type = 'flux'` name FLUX.1 without saying dev or
schnell; on a schnell folder or transformer file whose name does not say so, the run is schnell.
"""

from __future__ import annotations

import pytest
import yaml

from lorapilot.trainpilot.cli import main

SCHNELL_CASES = (
    "aitoolkit/flux_schnell_folder.yaml",
    "aitoolkit/flux_schnell_split.yaml",
    "diffusion_pipe/flux_schnell_folder.toml",
)


@pytest.mark.parametrize("name", SCHNELL_CASES)
def test_a_flux_flag_on_schnell_files_validates_as_schnell_with_a_notice(name, conformance_workspace, capsys):
    config = conformance_workspace.root / "configs" / "conformance" / name
    capsys.readouterr()
    rc = main(["validate", str(config), "--workspace", str(conformance_workspace.root)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert yaml.safe_load(out)["model"]["family"] == "flux-schnell"
    assert "the model files are FLUX.1 schnell; trained as FLUX.1 schnell" in out + err


def test_kohya_split_files_validate_as_the_family_of_the_transformer_file(conformance_workspace, capsys):
    config = (
        conformance_workspace.root / "configs" / "conformance" / "kohya" / "flux_split_train_network.toml"
    )
    capsys.readouterr()
    rc = main(["validate", str(config), "--workspace", str(conformance_workspace.root)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    model = yaml.safe_load(out)["model"]
    assert (model["family"], model["source"]) == ("flux-dev", "single_file")
    assert model["t5xxl"].endswith("models/text_encoders/t5xxl_fp8_e4m3fn.safetensors")
