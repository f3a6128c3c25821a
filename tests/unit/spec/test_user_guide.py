"""The user guide (docs/user-guide.md) works as written: every config block validates and keeps what the
user wrote, and every `trainpilot` command in it is one the CLI takes and, for a config, passes.

Each config block of the guide carries its file name in the fence (```` ```yaml style.yaml ````). The
commands run in a folder holding those files: `validate`, `train`, `run` and `submit` lines are
validated with their own arguments and must exit 0, unless the line ends `# exit N: TEXT` (then exit N
with TEXT in the message). A block no command names and no other block refers to is a fragment,
laid over `quick_test` with `--dataset my_dataset` as the guide says. The blocks taken from the seed
guide are also kept verbatim in tests/fixtures/seed/, which the value checks below and other tests
read.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from lorapilot.trainpilot.cli import build_parser

SEED = Path(__file__).resolve().parents[2] / "fixtures" / "seed"
GUIDE = Path(__file__).resolve().parents[3] / "docs" / "user-guide.md"
CONFIG_LANGUAGES = ("yaml", "toml")
CONFIG_COMMANDS = ("validate", "train", "run", "submit")  # the commands that read a config


@dataclass(frozen=True)
class Block:
    language: str
    name: str | None  # the file name in the fence, for the blocks that are files
    text: str


def guide_blocks() -> list[Block]:
    fences = re.findall(r"^```(\w*)(?: (\S+))?\n(.*?)^```$", GUIDE.read_text(), re.S | re.M)
    return [Block(language, name or None, text) for language, name, text in fences]


@dataclass(frozen=True)
class Command:
    line: str
    argv: list[str]
    exit_code: int
    message: str  # what the output must say when exit_code is not 0

    def __str__(self) -> str:
        return self.line


def guide_commands() -> list[Command]:
    commands = []
    for block in guide_blocks():
        if block.language != "bash":
            continue
        for line in block.text.splitlines():
            if not line.startswith("trainpilot "):
                continue
            expected = re.search(r"#\s*exit (\d+): (.+)$", line)
            argv = shlex.split(line, comments=True)[1:]
            code, message = (int(expected[1]), expected[2].strip()) if expected else (0, "")
            commands.append(Command(line, argv, code, message))
    return commands


BLOCKS = guide_blocks()
COMMANDS = guide_commands()
FILES = {b.name: b for b in BLOCKS if b.name}
NAMED_BY_COMMANDS = {arg for c in COMMANDS for arg in c.argv}
FRAGMENTS = sorted(
    name
    for name, block in FILES.items()
    if block.language in CONFIG_LANGUAGES
    and name not in NAMED_BY_COMMANDS
    and not any(name in other.text for other in FILES.values() if other is not block)
)


@pytest.fixture
def in_guide_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding every file block of the guide, as the current directory."""
    for name, block in FILES.items():
        (tmp_path / name).write_text(block.text)
    monkeypatch.chdir(tmp_path)
    return tmp_path


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


def test_the_seed_guides_config_blocks_are_in_the_user_guide_verbatim():
    guide_configs = [b.text for b in BLOCKS if b.language == "yaml"]
    fixtures = sorted(SEED.glob("*.yaml"))
    assert len(fixtures) == 20
    missing = [f.name for f in fixtures if f.read_text() not in guide_configs]
    assert not missing, f"seed blocks missing from {GUIDE.name}: {missing}"


def test_every_config_block_of_the_guide_is_a_named_file():
    configs = [b for b in BLOCKS if b.language in CONFIG_LANGUAGES]
    assert len(configs) >= 25
    unnamed = [b.text.splitlines()[0] for b in configs if not b.name]
    assert not unnamed, f"give these blocks a file name in the fence: {unnamed}"
    names = [b.name for b in BLOCKS if b.name]
    assert len(names) == len(set(names)), "two blocks of the guide have the same file name"


def test_the_guide_shows_every_dialect_and_every_step():
    assert {"validate", "train", "run", "submit", "list", "status", "logs", "cancel", "retry", "comfy"} <= {
        c.argv[0] for c in COMMANDS
    }
    # LoRA Pilot YAML, kohya YAML, kohya args + dataset TOML, ai-toolkit, diffusion-pipe main + dataset
    markers = ("spec_version: 1", "pretrained_model_name_or_path:", "[model_arguments]")
    markers += ("[[datasets.subsets]]", "job: ", "[adapter]", "[[directory]]")
    for marker in markers:
        assert any(marker in b.text for b in BLOCKS if b.language in CONFIG_LANGUAGES), marker


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_every_trainpilot_command_of_the_guide_is_accepted(command: Command):
    build_parser().parse_args(command.argv)  # argparse exits 2 on an unknown option or command


# Values the guide's own (non-seed) config blocks must keep, by file name.
EXPECTED_BY_FILE: dict[str, dict[str, object]] = {
    "sd15_character.yaml": {
        "model.family": "sd15",
        "network.dim": 32,
        "network.alpha": 16.0,
        "datasets.0.trigger_word": "sks",
        "training.max_steps": 1500,
        "training.lr_scheduler": "cosine",
        "save.keep_last": 3,
        "output.name": "sd15_character",
    },
    "sdxl_args.toml": {
        "model.family": "sdxl",
        "network.dim": 16,
        "network.alpha": 8.0,
        "network.train_text_encoder": False,
        "datasets.0.repeats": 10,
        "datasets.0.resolutions": [1024],
        "datasets.1.is_reg": True,
        "training.max_steps": 1500,
        "training.optimizer": "adamw8bit",
        "sample.every": 250,
        "output.name": "sdxl_args",
    },
    "flux_dev_24gb.yaml": {
        "model.family": "flux-dev",
        "network.dim": 16,
        "training.max_steps": 2000,
        "training.low_vram": True,
        "datasets.0.trigger_word": "sks",
        "output.name": "flux_dev_24gb",
    },
    "dp_flux.toml": {
        "model.family": "flux-dev",
        "network.dim": 16,
        "training.learning_rate": 1e-4,
        "training.gradient_accumulation_steps": 4,
        "save.every_n_epochs": 2,
    },
}


def _validate_argv(command: Command) -> list[str]:
    """The `validate` call with the spec options of a validate/train/run/submit line."""
    args = build_parser().parse_args(command.argv)
    if getattr(args, "explain", None):
        return ["--explain", args.explain]
    argv = [str(args.file)] if args.file else []
    for option in ("dialect", "profile", "dataset", "name"):
        if getattr(args, option):
            argv += [f"--{option}", getattr(args, option)]
    for override in args.overrides:
        argv += ["--set", override]
    return argv


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.argv[0] in CONFIG_COMMANDS], ids=str)
def test_every_config_command_of_the_guide_validates(command, validate, guide_workspace, in_guide_folder):
    result = validate(*_validate_argv(command), workspace=guide_workspace)
    assert "Traceback" not in result.err
    assert result.rc == command.exit_code, result.err
    assert command.message in result.err
    file = Path(command.argv[1]).name if len(command.argv) > 1 else None
    for dotted, expected in EXPECTED_BY_FILE.get(file, {}).items():
        assert _get(result.spec, dotted) == expected, f"{file}: {dotted}"


def test_every_config_block_with_expected_values_has_a_command():
    assert set(EXPECTED_BY_FILE) <= NAMED_BY_COMMANDS


@pytest.mark.parametrize("name", FRAGMENTS)
def test_every_fragment_of_the_guide_validates_over_a_profile(
    name, validate, guide_workspace, in_guide_folder
):
    result = validate(name, "--profile", "quick_test", "--dataset", "my_dataset", workspace=guide_workspace)
    assert result.rc == 0, result.err
    assert "Traceback" not in result.err
