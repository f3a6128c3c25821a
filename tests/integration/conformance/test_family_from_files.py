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

from lorapilot.testing.split_files import write_flux_all_in_one
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


def test_diffusion_pipe_transformer_path_replaces_the_folders_transformer(conformance_workspace, capsys):
    config = (
        conformance_workspace.root
        / "configs"
        / "conformance"
        / "diffusion_pipe"
        / "flux_transformer_path.toml"
    )
    capsys.readouterr()
    rc = main(["validate", str(config), "--workspace", str(conformance_workspace.root)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    model = yaml.safe_load(out)["model"]
    # a FLUX.1-dev transformer over a schnell folder: the transformer file decides the family
    assert model["family"] == "flux-dev" and model["transformer"].endswith(f"models/unet/{FLUX_DEV_FILE}")
    rc = main(["train", str(config), "--workspace", str(conformance_workspace.root)])
    out, err = capsys.readouterr()
    assert rc == 0, err[-3000:]
    lora = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("LoRA:"))
    with safe_open(lora, "pt") as handle:
        assert handle.metadata()["modelspec.architecture"].startswith("flux-1-dev")


def test_a_transformer_file_of_another_line_is_refused_by_name(conformance_workspace, capsys, tmp_path):
    sd3_folder = "/workspace/models/diffusers/tiny-sd3"
    source = (
        conformance_workspace.root
        / "configs"
        / "conformance"
        / "diffusion_pipe"
        / "flux_transformer_path.toml"
    )
    text = source.read_text().replace("type = 'flux'", "type = 'sd3'")
    text = text.replace("/workspace/models/diffusers/tiny-flux-schnell", sd3_folder)
    config = source.with_name("sd3_with_flux_transformer.toml")
    config.write_text(text)
    capsys.readouterr()
    rc = main(["validate", str(config), "--workspace", str(conformance_workspace.root)])
    _, err = capsys.readouterr()
    assert rc != 0
    assert "transformer_path" in err and "cannot replace" in err


def test_a_flux_all_in_one_checkpoint_trains_without_component_files(
    conformance_workspace, tiny_models, capsys, tmp_path
):
    checkpoint = conformance_workspace.models / "checkpoints" / "flux1-tiny-all-in-one.safetensors"
    write_flux_all_in_one(tiny_models["flux-dev"], checkpoint)
    config = tmp_path / "all_in_one.yaml"
    config.write_text(
        json.dumps(
            {
                "spec_version": 1,
                "model": {"path": "/workspace/models/checkpoints/flux1-tiny-all-in-one.safetensors"},
                "network": {"dim": 4, "alpha": 4},
                "datasets": [{"folder": "person", "resolutions": [64], "bucket": {"enabled": False}}],
                "training": {"max_steps": 1, "batch_size": 1, "mixed_precision": "no"},
                "output": {"name": "conf_flux_all_in_one"},
            }
        )
    )
    capsys.readouterr()
    rc = main(["validate", str(config), "--workspace", str(conformance_workspace.root)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    model = yaml.safe_load(out)["model"]
    assert (model["family"], model["source"]) == ("flux-dev", "single_file")
    assert not (model["clip_l"] or model["t5xxl"] or model["vae"])  # all inside the checkpoint
    rc = main(["train", str(config), "--workspace", str(conformance_workspace.root)])
    out, err = capsys.readouterr()
    assert rc == 0, err[-3000:]
    assert (
        conformance_workspace.outputs / "conf_flux_all_in_one" / "conf_flux_all_in_one.safetensors"
    ).is_file()
