"""Configs that crashed the validator (exit 1, a traceback) are refused with exit 2, the field named.

Issue 16, findings 4 and 5: each value below once escaped as a Python exception from the parser,
a reader or the resolver; each must be the user's error, naming the field (or file and line).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lorapilot.workspace import Workspace

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
NATIVE = """spec_version: 1
model:
  family: sd15
  path: /workspace/models/diffusers/tiny-sd15
datasets:
  - folder: person
"""
KOHYA = (
    'pretrained_model_name_or_path = "/workspace/models/diffusers/tiny-sd15"\n'
    'train_data_dir = "/workspace/datasets/images"\n'
)
DP_MAIN = (FIXTURES / "conformance" / "diffusion_pipe" / "flux_main.toml").read_text()
AITK = (FIXTURES / "conformance" / "aitoolkit" / "sdxl_lora.yaml").read_text()
LONG = "a" * 300
HUGE = "9" * 5000

# id → (file name, content, extra CLI args, substrings expected on stderr)
CASES: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "string for the output mapping": (
        "c.yaml",
        NATIVE + "output: my_lora\n",
        (),
        ("output: must be a mapping",),
    ),
    "mapping for the family": (
        "c.yaml",
        NATIVE.replace("family: sd15", "family: {}"),
        (),
        ("model.family: Input should be",),
    ),
    "mapping for the family of a hub model": (
        "c.yaml",
        NATIVE.replace("family: sd15", "family: {}").replace(
            "/workspace/models/diffusers/tiny-sd15", "owner/name"
        ),
        (),
        ("model.family: Input should be",),
    ),
    "diffusion-pipe model type as a list": (
        "flux_main.toml",
        DP_MAIN.replace("type = 'flux'", 'type = ["flux"]'),
        (),
        ("model.type: not supported by LoRA Pilot",),
    ),
    "300-character dataset folder": (
        "c.yaml",
        NATIVE.replace("folder: person", f"folder: /workspace/datasets/{LONG}"),
        (),
        ("datasets[0].folder: ", "name too long"),
    ),
    "300-character dataset name": (
        "c.yaml",
        NATIVE.replace("folder: person", f"folder: {LONG}"),
        (),
        ("datasets[0].folder: ", "name too long"),
    ),
    "glob pattern in a dataset name": (
        "c.yaml",
        NATIVE.replace("folder: person", 'folder: "a**b"'),
        (),
        ("datasets[0].folder: no dataset of this name",),
    ),
    "300-character model path": (
        "c.yaml",
        NATIVE.replace("/workspace/models/diffusers/tiny-sd15", f"/workspace/models/{LONG}"),
        (),
        ("model.path: ", "name too long"),
    ),
    "300-character model name": (
        "c.yaml",
        NATIVE.replace("/workspace/models/diffusers/tiny-sd15", LONG),
        (),
        ("model.path: ", "name too long"),
    ),
    "300-character vae": (
        "c.yaml",
        NATIVE.replace("  path:", f"  vae: /workspace/{LONG}\n  path:"),
        (),
        ("model.vae: ", "name too long"),
    ),
    "300-character kohya prompt file": (
        "c.toml",
        KOHYA + f'sample_prompts = "{LONG}.txt"\n',
        (),
        ("sample_prompts: ", "name too long"),
    ),
    "empty YAML timestamp": (
        "c.yaml",
        NATIVE + 'training:\n  seed: !!timestamp ""\n',
        (),
        ("c.yaml: (file): invalid YAML (line 8", "not a valid date"),
    ),
    "NUL byte in a kohya prompt file name": (
        "c.toml",
        KOHYA + 'sample_prompts = "p\\u0000.txt"\n',
        (),
        ("sample_prompts: ", "not a usable path"),
    ),
    "NUL byte in an ai-toolkit folder": (
        "c.yaml",
        AITK.replace("folder_path: /workspace/datasets/images/person", 'folder_path: "/workspace/a\\0b"'),
        (),
        ("config.process[0].datasets[0].folder_path: ", "not a usable path"),
    ),
    "TOML integer of 4,301 digits": (
        "c.toml",
        KOHYA + f"max_train_steps = {'9' * 4301}\n",
        (),
        ("c.toml: (file): invalid TOML", "4300 digits"),
    ),
    "YAML integer of 5,000 digits": (
        "c.yaml",
        NATIVE + f"training:\n  max_steps: {HUGE}\n",
        (),
        ("c.yaml: (file): invalid YAML (line 8", "4300 digits"),
    ),
    "--set with a 5,000-digit number": (
        "c.yaml",
        NATIVE,
        ("--set", f"training.max_steps={HUGE}"),
        ("--set training.max_steps: ", "4300 digits"),
    ),
    "--set of an unknown field with a 5,000-digit number": (
        "c.yaml",
        NATIVE,
        ("--set", f"training.steps={HUGE}"),
        ("--set training.steps: ", "4300 digits"),
    ),
    "--set of a list in a list": (
        "c.yaml",
        NATIVE,
        ("--set", "datasets[0][1]=x"),
        ("datasets[0]: must be a mapping of dataset fields",),
    ),
    "--set with a list index the draft would grow to": (
        "c.yaml",
        NATIVE,
        ("--set", "datasets[1000].folder=x"),
        ("--set: list index must be a number below 1000",),
    ),
    "--set with a superscript digit as a list index": (
        "c.yaml",
        NATIVE,
        ("--set", "datasets[\u00b2].folder=x"),
        ("--set: list index must be a number below 1000",),
    ),
    "kohya network argument of 5,000 digits": (
        "c.toml",
        KOHYA + f'network_args = ["conv_dim={HUGE}"]\n',
        (),
        ("network_args: conv_dim: cannot read the value: an integer of 5000 digits",),
    ),
    "kohya optimizer argument with an unclosed list": (
        "c.toml",
        KOHYA + 'optimizer_args = ["betas=[0.9"]\n',
        (),
        ("optimizer_args: betas: cannot read the value",),
    ),
    "ai-toolkit optimizer parameter with an empty timestamp": (
        "c.yaml",
        AITK.replace(
            "optimizer: adamw", "optimizer: adamw\n        optimizer_params: ['d=!!timestamp \"\"']"
        ),
        (),
        ("config.process[0].train.optimizer_params: d: cannot read the value", "not a valid date"),
    ),
    "kohya JSON prompt file nested too deeply": (
        "c.toml",
        KOHYA + 'sample_prompts = "deep.json"\n',
        (),
        ("sample_prompts: not a prompt file sd-scripts reads",),
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_crashing_config_exits_2_naming_the_field(
    case: str, validate, header_workspace: Workspace, tmp_path: Path
) -> None:
    name, content, extra, expected = CASES[case]
    folder = header_workspace.root / "configs" / "crashes"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "conformance" / "diffusion_pipe" / "flux_dataset.toml", folder)
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / name).write_text(content)
    result = validate(folder / name, *extra, workspace=header_workspace)
    assert result.rc == 2, result.err
    assert "Traceback" not in result.err
    for text in expected:
        assert text in result.err
