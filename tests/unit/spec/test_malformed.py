"""Broken configs exit 2 with a message naming the field, and never with a traceback."""

from __future__ import annotations

import os

import pytest

SD15 = 'pretrained_model_name_or_path: "/workspace/models/stable-diffusion-v1-5"\n'
DATA = 'train_data_dir: "/workspace/datasets/images/1_my_dataset"\n'
OK = SD15 + DATA  # a valid kohya YAML that cases add one mistake to

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)
AITK = """job: extension
config:
  name: run
  process:
{process}
"""

# id → (file name, content, extra CLI args, substrings expected on stderr)
CASES: dict[str, tuple[str, str | bytes, tuple[str, ...], tuple[str, ...]]] = {
    "empty file": ("c.yaml", "", (), ("(file): file is empty",)),
    "only whitespace": ("c.yaml", "   \n\n", (), ("file is empty",)),
    "binary garbage": ("c.yaml", os.urandom(256) + b"\x00\x01", (), ("file is binary",)),
    "not utf-8": ("c.yaml", "network_dim: 3\ncomment: caf\xe9\n".encode("latin-1"), (), ("not UTF-8",)),
    "yaml bomb": ("c.yaml", BOMB, (), ("YAML aliases",)),
    "recursive alias": ("c.yaml", "a: &a [*a, *a]\n", (), ("(file)",)),
    "deep nesting": ("c.yaml", "a: " + "[" * 200 + "]" * 200 + "\n", (), ("nesting deeper than",)),
    "bad yaml syntax": ("c.yaml", OK + "training: [1, 2\n", (), ("invalid YAML (line",)),
    "bad toml syntax": ("c.toml", "network_dim = = 3\n", (), ("invalid TOML",)),
    "top level is a list": ("c.yaml", "- a\n- b\n", (), ("top level must be a mapping",)),
    "file too large": ("c.yaml", "# " + "x" * (1 << 20) + "\n", (), ("configs larger than",)),
    "non-text key": ("c.yaml", OK + "1: one\n", (), ("key 1 is not text",)),
    "kohya typo": ("c.yaml", OK + "network_dimm: 32\n", (), ("network_dimm: unknown key", "'network_dim'")),
    "aitoolkit typo": (
        "c.yaml",
        AITK.format(process="    - type: sd_trainer\n      train:\n        stepz: 100\n"),
        (),
        ("config.process[0].train.stepz: unknown key", "'steps'"),
    ),
    "native typo": (
        "c.yaml",
        "spec_version: 1\ntraining:\n  max_step: 10\n",
        ("--profile", "quick_test"),
        ("training.max_step: unknown key", "'max_steps'"),
    ),
    "unknown section in aitoolkit": (
        "c.yaml",
        "job: extension\nconfig:\n  name: x\n  proces: []\n",
        (),
        ("config.proces: unknown key",),
    ),
    "wrong type int": (
        "c.yaml",
        OK + "network_dim: big\n",
        (),
        ("network_dim: Input should be a valid integer",),
    ),
    "wrong type float": (
        "c.yaml",
        OK + "learning_rate: [1]\n",
        (),
        ("learning_rate: Input should be a valid number",),
    ),
    "negative steps": (
        "c.yaml",
        OK + "max_train_steps: -5\n",
        (),
        ("max_train_steps:", "greater than or equal to 1"),
    ),
    "zero batch": ("c.yaml", OK + "train_batch_size: 0\n", (), ("train_batch_size:",)),
    "missing dataset folder": (
        "c.yaml",
        SD15 + 'train_data_dir: "/workspace/datasets/images/nope"\n',
        (),
        ("train_data_dir: folder not found",),
    ),
    "dataset without images": (
        "c.yaml",
        SD15 + 'train_data_dir: "/workspace/datasets/empty"\n',
        (),
        ("train_data_dir: contains no images",),
    ),
    "unknown dataset name": (
        "c.yaml",
        SD15,
        ("--dataset", "my_datset"),
        ("--dataset: no dataset of this name", "'my_dataset'"),
    ),
    "unknown family": ("c.yaml", OK + "family: sd4\n", (), ("family: Input should be 'sd15'",)),
    "dataset escapes workspace": (
        "c.yaml",
        SD15 + "train_data_dir: /etc\n",
        (),
        ("train_data_dir: /etc is outside the workspace",),
    ),
    "dotdot escape": (
        "c.yaml",
        SD15 + "train_data_dir: /workspace/../../etc\n",
        (),
        ("train_data_dir:", "outside the workspace"),
    ),
    "output escapes workspace": (
        "c.yaml",
        OK + "output_dir: /tmp/elsewhere\n",
        (),
        ("output_dir: /tmp/elsewhere is outside the workspace",),
    ),
    "model escapes workspace": (
        "c.yaml",
        'pretrained_model_name_or_path: "/etc/passwd"\n' + DATA,
        (),
        ("pretrained_model_name_or_path: /etc/passwd is outside the workspace",),
    ),
    "pickled checkpoint": (
        "c.yaml",
        'pretrained_model_name_or_path: "/workspace/models/m.ckpt"\n' + DATA,
        (),
        ("pretrained_model_name_or_path:", "model not found"),
    ),
    "bad output name": ("c.yaml", OK + "output_name: ../evil\n", (), ("output_name: use letters",)),
    "unsupported network module": (
        "c.yaml",
        OK + "network_module: networks.oft\n",
        (),
        ("network_module: not supported by LoRA Pilot",),
    ),
    "unsupported kohya option": ("c.yaml", OK + "masked_loss: true\n", (), ("masked_loss: not supported",)),
    "two aitoolkit processes": (
        "c.yaml",
        AITK.format(process="    - type: sd_trainer\n    - type: sd_trainer\n"),
        (),
        ("config.process: must be a list with exactly one process",),
    ),
    "pipeline stages": (
        "c.toml",
        "pipeline_stages = 2\n[model]\ntype = 'sdxl'\n[adapter]\nrank = 4\n",
        (),
        ("pipeline_stages: not supported by LoRA Pilot",),
    ),
    "diffusion-pipe video model": (
        "c.toml",
        "[model]\ntype = 'hunyuan-video'\n[adapter]\nrank = 4\n",
        (),
        ("model.type: not supported by LoRA Pilot", "sdxl, sd3, flux"),
    ),
    "subset without image_dir": (
        "c.toml",
        "[[datasets]]\n[[datasets.subsets]]\nnum_repeats = 2\n",
        ("--profile", "quick_test"),
        ("datasets[0].subsets[0].image_dir: required",),
    ),
    "unknown subset key": (
        "c.toml",
        '[[datasets]]\n[[datasets.subsets]]\nimage_dir = "x"\nimg_dir = 3\n',
        ("--profile", "quick_test"),
        ("subsets[0].img_dir: unknown key", "'image_dir'"),
    ),
    "lr floor above lr": ("c.yaml", OK + "learning_rate: 1e-5\nlr_end: 1e-3\n", (), ("lr_end",)),
    "bucket order": (
        "c.yaml",
        OK + "min_bucket_reso: 1024\nmax_bucket_reso: 512\n",
        (),
        ("min_bucket_reso, max_bucket_reso: min_resolution 1024 is larger",),
    ),
    "odd resolution": ("c.yaml", OK + "resolution: 500\n", (), ("resolution: 500 is not a usable side",)),
    "unknown optimizer": (
        "c.yaml",
        OK + "optimizer_type: AdamW9bit\n",
        (),
        ("optimizer_type: Input should be",),
    ),
    "sampling without prompts": ("c.yaml", OK + "sample_every_n_steps: 10\n", (), ("sample_every_n_steps",)),
    "fractional warmup": (
        "c.yaml",
        OK + "lr_warmup_steps: 0.1\n",
        (),
        ("lr_warmup_steps: warmup as a fraction",),
    ),
    "unknown profile": (
        "c.yaml",
        OK,
        ("--profile", "quik_test"),
        ("profile: no such profile", "'quick_test'"),
    ),
    "bad --set": ("c.yaml", OK, ("--set", "training.max_steps"), ("--set: must be key=value",)),
    "unknown --set field": (
        "c.yaml",
        OK,
        ("--set", "training.maxsteps=3"),
        ("--set training.maxsteps: unknown key", "'max_steps'"),
    ),
    "undetectable dialect": ("c.yaml", "hello: world\n", (), ("cannot tell which trainer",)),
    "dataset config outside": (
        "c.yaml",
        OK + "dataset_config: /etc/ds.toml\n",
        (),
        ("dataset_config: /etc/ds.toml is outside the workspace",),
    ),
    "prompt file escapes": (
        "c.yaml",
        OK + "sample_prompts: ../../../../etc/hosts.txt\n",
        (),
        ("sample_prompts: ../../../../etc/hosts.txt leaves the config's folder",),
    ),
    "unknown dialect": ("c.yaml", OK, ("--dialect", "onetrainer"), ("invalid choice",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_config_is_refused_with_the_field_named(case, validate, guide_workspace, tmp_path):
    filename, content, args, expected = CASES[case]
    (guide_workspace.datasets / "empty").mkdir(exist_ok=True)
    config = tmp_path / filename
    config.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = validate(config, *args, workspace=guide_workspace)
    assert result.rc == 2, result.out
    assert result.out == ""
    assert "Traceback" not in result.err
    for text in expected:
        assert text in result.err, f"{case}: {text!r} not in:\n{result.err}"


def test_there_are_at_least_25_malformed_cases():
    assert len(CASES) >= 25
