"""What the trainers' own configs train here, read back from the LoRA files they produce.

diffusion-pipe's SDXL adapter trains both CLIP text encoders (its `models/sdxl.py`), so the LoRA
holds `lora_te1_`/`lora_te2_` modules beside the UNet's; an ai-toolkit job on a `2_person` folder
trains each image once per epoch (`num_repeats` 1), which kohya's metadata records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from lorapilot.trainpilot.cli import main

from .conftest import CONFORMANCE


def _train(workspace, capsys, config: Path) -> None:
    capsys.readouterr()
    try:
        rc = main(["train", str(config), "--workspace", str(workspace.root)])
    except SystemExit as exc:
        rc = int(exc.code or 0)
    assert rc == 0, capsys.readouterr().err[-3000:]


def _copy(workspace, names: list[str], rename: tuple[str, str]) -> Path:
    """The conformance files under a new run name, so this run has its own output folder."""
    folder = workspace.root / "configs" / "semantics"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        text = (CONFORMANCE / name).read_text().replace(*rename)
        (folder / Path(name).name).write_text(text)
    return folder / Path(names[0]).name


def _lora(workspace, name: str) -> tuple[set[str], dict[str, str]]:
    path = workspace.outputs / name / f"{name}.safetensors"
    with safe_open(str(path), framework="pt") as f:
        return set(f.keys()), f.metadata()


@pytest.mark.slow
def test_diffusion_pipe_sdxl_lora_holds_both_text_encoders(conformance_workspace, capsys):
    names = ["diffusion_pipe/sdxl_main.toml", "diffusion_pipe/sdxl_dataset.toml"]
    config = _copy(conformance_workspace, names, ("conf_dp_sdxl", "sem_dp_sdxl"))
    _train(conformance_workspace, capsys, config)
    keys, meta = _lora(conformance_workspace, "sem_dp_sdxl")
    prefixes = {key.split("_", 2)[0] + "_" + key.split("_", 2)[1] for key in keys}
    assert {"lora_unet", "lora_te1", "lora_te2"} <= prefixes
    assert int(meta["ss_steps"]) == 2  # max_steps ended the run before its 100 epochs
    assert json.loads(meta["ss_dataset_dirs"]) == {"2_person": {"n_repeats": 1, "img_count": 4}}


@pytest.mark.slow
def test_aitoolkit_job_on_a_repeats_named_folder_trains_each_image_once(conformance_workspace, capsys):
    config = _copy(
        conformance_workspace,
        ["aitoolkit/sd15_repeats_folder.yaml"],
        ("conf_aitk_sd15_folder", "sem_aitk_sd15"),
    )
    _train(conformance_workspace, capsys, config)
    _, meta = _lora(conformance_workspace, "sem_aitk_sd15")
    assert json.loads(meta["ss_dataset_dirs"]) == {"2_person": {"n_repeats": 1, "img_count": 4}}
    assert float(meta["ss_network_alpha"]) == 4.0 and meta["ss_network_dim"] == "4"
