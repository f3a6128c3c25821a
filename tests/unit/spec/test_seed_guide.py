"""Every training-config block of the user guide validates and keeps what the user wrote.

The blocks are kept verbatim in tests/fixtures/seed/ (partial ones are merged over `quick_test`,
with `--dataset my_dataset` for the blocks that name no folder).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SEED_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "seed"

SEED = SEED_DIR
GUIDE = Path(__file__).resolve().parents[4] / "shared" / "seed" / "training-workflows.md"


def _folder_names(spec: dict) -> list[str]:
    return [Path(d["folder"]).name for d in spec["datasets"]]


# fixture → {dotted path: expected value}; `datasets` entries are checked by folder name.
EXPECTED: dict[str, dict[str, object]] = {
    "00_kohya_sd15": {
        "model.family": "sd15",
        "model.source": "folder",
        "model.v_parameterization": False,
        "datasets.0.resolutions": [512],
        "datasets.0.bucket.enabled": True,
        "datasets.0.bucket.min_resolution": 256,
        "datasets.0.bucket.max_resolution": 512,
        "training.batch_size": 1,
        "training.gradient_accumulation_steps": 1,
        "training.learning_rate": 1e-4,
        "training.max_steps": 1000,
        "save.every_n_steps": 100,
        "network.type": "lora",
        "network.dim": 32,
        "network.alpha": 32.0,
    },
    "01_kohya_sdxl": {
        "model.family": "sdxl",
        "model.source": "folder",
        "datasets.0.resolutions": [1024],
        "datasets.0.bucket.min_resolution": 512,
        "datasets.0.bucket.max_resolution": 1024,
        "training.learning_rate": 1e-4,
        "training.max_steps": 1500,
        "save.every_n_steps": 150,
        "network.dim": 64,
        "network.alpha": 64.0,
    },
    "02_aitoolkit_flux": {
        "model.family": "flux-schnell",
        "model.path": "black-forest-labs/FLUX.1-schnell",
        "model.source": "hub",
        "model.weight_dtype": "bf16",
        "training.low_vram": False,
        "datasets.0.repeats": 1,
        "datasets.0.resolutions": [1024],
        "datasets.0.trigger_word": "your_trigger_word",
        "network.type": "lora",
        "network.dim": 32,
        "network.alpha": 32.0,
        "training.batch_size": 1,
        "training.max_steps": 3000,
        "training.learning_rate": 1e-4,
        "training.gradient_checkpointing": True,
        "training.optimizer": "adamw8bit",
        "training.mixed_precision": "bf16",
        "output.name": "flux_lora_training",
    },
    "03_multi_concept": {
        "datasets.0.weight": 1.0,
        "datasets.1.weight": 0.8,
        "datasets.2.weight": 0.6,
        "datasets.0.repeats": 1,
        "datasets.1.repeats": 2,
        "datasets.2.repeats": 3,
    },
    "04_trigger_words": {"datasets.0.trigger_word": "photo of sks person, photo of abc style"},
    "05_style": {
        "training.learning_rate": 5e-5,
        "training.max_steps": 2000,
        "network.dim": 128,
        "network.alpha": 64.0,
        "datasets.0.resolutions": [512, 768, 1024],
    },
    "06_character": {
        "training.learning_rate": 1e-4,
        "training.max_steps": 1500,
        "network.dim": 32,
        "network.alpha": 32.0,
        "datasets.0.resolutions": [1024],
        "datasets.0.bucket.enabled": False,
    },
    "07_high_resolution": {
        "datasets.0.resolutions": [1536],
        "training.batch_size": 1,
        "training.gradient_checkpointing": True,
        "datasets.0.bucket.min_resolution": 1024,
        "datasets.0.bucket.max_resolution": 1536,
    },
    "08_multi_resolution": {
        "datasets.0.resolutions": [512, 768, 1024, 1280],
        "datasets.0.bucket.enabled": True,
        "datasets.0.bucket.step": 64,
    },
    "09_gradient_checkpointing": {"training.gradient_checkpointing": True},
    "10_mixed_precision": {"training.mixed_precision": "fp16", "model.weight_dtype": "bf16"},
    "11_cpu_offloading": {"training.low_vram": True},
    "12_batch_processing": {"training.batch_size": 1, "training.gradient_accumulation_steps": 4},
    "13_latent_caching": {"datasets.0.cache_latents_to_disk": True},
    "14_lr_scheduling": {
        "training.lr_scheduler": "cosine",
        "training.warmup_steps": 100,
        "training.lr_end": 1e-6,
    },
    "15_regularization": {
        "datasets.0.is_reg": False,
        "datasets.1.is_reg": True,
        "datasets.1.weight": 0.1,
    },
    "16_sample_generation": {
        "sample.every": 100,
        "sample.seed": 42,
        "sample.prompts": ["photo of your_trigger_word subject", "artistic style of your_trigger_word"],
    },
    "21_first_pass": {"training.max_steps": 100, "training.learning_rate": 1e-4, "network.dim": 16},
}
FOLDERS = {
    "00_kohya_sd15": ["1_my_dataset"],
    "02_aitoolkit_flux": ["1_your_dataset"],
    "03_multi_concept": ["1_concept_a", "2_concept_b", "3_concept_c"],
    "13_latent_caching": ["1_my_dataset"],
    "15_regularization": ["1_main_concept", "2_regularization"],
}


def _get(spec: dict, dotted: str) -> object:
    node: object = spec
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
    return node


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_guide_block_validates_with_the_values_written(name, validate, guide_workspace):
    result = validate(
        SEED / f"{name}.yaml", "--profile", "quick_test", "--dataset", "my_dataset", workspace=guide_workspace
    )
    spec = result.spec
    for dotted, expected in EXPECTED[name].items():
        assert _get(spec, dotted) == expected, f"{name}: {dotted}"
    assert _folder_names(spec) == FOLDERS.get(name, ["1_my_dataset"])
    assert "Traceback" not in result.err


def test_sdxl_block_explains_that_v2_is_ignored(validate, guide_workspace):
    result = validate(SEED / "01_kohya_sdxl.yaml", "--dataset", "my_dataset", workspace=guide_workspace)
    assert result.rc == 0
    assert "v2: ignored" in result.err


def test_flux_block_runs_as_written_with_a_local_model(validate, guide_workspace, tmp_path):
    text = (SEED / "02_aitoolkit_flux.yaml").read_text()
    local = text.replace('"black-forest-labs/FLUX.1-schnell"', '"/workspace/models/diffusers/FLUX.1-schnell"')
    config = tmp_path / "flux.yaml"
    config.write_text(local)
    spec = validate(config, workspace=guide_workspace).spec
    assert spec["model"]["family"] == "flux-schnell"
    assert spec["model"]["source"] == "folder"
    assert spec["output"]["folder"] == str(guide_workspace.outputs / "ai-toolkit" / "flux_lora_training")


@pytest.mark.parametrize("name", ["22_second_pass_ranges", "23_final_pass_ranges"])
def test_guide_range_blocks_are_refused_with_a_hint_per_field(name, validate, guide_workspace):
    result = validate(
        SEED / f"{name}.yaml", "--profile", "quick_test", "--dataset", "my_dataset", workspace=guide_workspace
    )
    assert result.rc == 2
    for field in ("steps", "learning_rate", "network_dim"):
        assert re.search(rf"^\S*: {field}: ", result.err, re.M), field
    assert result.err.count("this is a range; pick one value") == 3


@pytest.mark.skipif(not GUIDE.is_file(), reason="the user guide (../shared/seed) is not beside this checkout")
def test_fixtures_are_the_guides_blocks_verbatim():
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), re.S)
    config_blocks = [b for b in blocks if not b.lstrip().startswith("# Solutions:")]
    fixtures = sorted(SEED.glob("*.yaml"))
    assert [f.read_text() for f in fixtures] == config_blocks
