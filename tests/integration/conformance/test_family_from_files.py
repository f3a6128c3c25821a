"""The family a dialect's flag names is a hint; the files decide (issue 15: FLUX.1-schnell refused).

ai-toolkit's `is_flux: true` and diffusion-pipe's `type = 'flux'` name FLUX.1 without saying dev or
schnell; on a schnell folder or transformer file whose name does not say so, the run is schnell.
ai-toolkit's `arch: sd3` covers SD3.5 too; an SD3.5 Medium file trains as SD3.5 Medium. A LoRA Pilot
config naming only a transformer file in models/unet trains with ComfyUI's component files, and its
LoRA says which FLUX.1 it is for.
"""

from __future__ import annotations

import json

import pytest
import yaml
from safetensors import safe_open

from lorapilot.trainpilot.cli import main

from .conftest import FLUX_DEV_FILE

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


def test_ai_toolkit_arch_sd3_on_an_sd35_medium_file_validates_as_sd35_medium(conformance_workspace, capsys):
    config = conformance_workspace.root / "configs" / "conformance" / "aitoolkit" / "sd35_all_in_one.yaml"
    capsys.readouterr()
    rc = main(["validate", str(config), "--workspace", str(conformance_workspace.root)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert yaml.safe_load(out)["model"]["family"] == "sd35-medium"
    assert "the model files are SD3.5 Medium; trained as SD3.5 Medium" in out + err


def test_a_transformer_file_alone_trains_with_comfyuis_component_files(
    conformance_workspace, capsys, tmp_path
):
    config = tmp_path / "split.yaml"
    config.write_text(
        json.dumps(
            {
                "spec_version": 1,
                "model": {"path": f"/workspace/models/unet/{FLUX_DEV_FILE}", "weight_dtype": "fp32"},
                "network": {"dim": 4, "alpha": 4},
                "datasets": [{"folder": "person", "resolutions": [64], "bucket": {"enabled": False}}],
                "training": {"max_steps": 1, "batch_size": 1, "mixed_precision": "no"},
                "sample": {"every": 0},
                "output": {"name": "native_flux_split"},
            }
        )
    )
    capsys.readouterr()
    rc = main(["train", str(config), "--workspace", str(conformance_workspace.root)])
    err = capsys.readouterr().err
    assert rc == 0, err[-3000:]
    lora = conformance_workspace.outputs / "native_flux_split" / "native_flux_split.safetensors"
    with safe_open(str(lora), framework="pt") as handle:
        assert handle.metadata()["modelspec.architecture"] == "flux-1-dev/lora"
