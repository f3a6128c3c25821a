"""Hypothesis strategies that mutate real training configs of the four dialects, and the property
they are checked against: the validator answers with a TrainSpec or a `LoraPilotError`, never
another exception, and writes nothing.

Shared by the CI fuzz tests (tests/unit/spec/test_fuzz_dialects.py) and longer runs; the seeds are
the project's own fixture configs, so a mutation starts from a config that validates and reaches
the readers' and the resolver's deep paths, not only the parser's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import math
import os
import re
import shutil
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st
from pydantic import BaseModel

from lorapilot import families
from lorapilot.errors import LoraPilotError
from lorapilot.families import FLUX_DEV, FLUX_SCHNELL, SD3, SD15, SDXL
from lorapilot.families.family import NOT_EMPTY
from lorapilot.families.recognition import probe_folder
from lorapilot.spec import document
from lorapilot.spec.loader import load_spec
from lorapilot.spec.model import TrainSpec
from lorapilot.spec.readers import detect_dialect
from lorapilot.testing.datasets import write_demo_images
from lorapilot.trainpilot import cli
from lorapilot.workspace import Workspace

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
PROFILES = REPO / "services" / "lorapilot" / "profiles"

# -- a workspace the fixture configs validate in -----------------------------------------------
DATASETS = (
    "images/1_my_dataset",
    "images/1_your_dataset",
    "images/1_concept_a",
    "images/2_concept_b",
    "images/2_person",
    "images/person",
    "images/style",
    "reg/1_person",
)
# Diffusers folders (only what tells their family: model_index.json and the marker configs).
MODEL_FOLDERS = {
    "diffusers/tiny-sd15": SD15,
    "diffusers/tiny-sdxl": SDXL,
    "diffusers/tiny-sd3": SD3,
    "diffusers/tiny-flux-dev": FLUX_DEV,
    "diffusers/tiny-flux-schnell": FLUX_SCHNELL,
    "diffusers/my-flux-model": FLUX_SCHNELL,
    "diffusers/FLUX.1-schnell": FLUX_SCHNELL,
    "stable-diffusion-v1-5": SD15,
    "stable-diffusion-xl-base-1.0": SDXL,
}
_FLUX = ["double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight"]
_SD3 = ["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", "first_stage_model.decoder.x.weight"]


def _empty(names: list[str]) -> dict[str, list[int]]:
    return {name: [0] for name in names}


_BUNDLED = [f"text_encoders.{n}.transformer.x.weight" for n in ("clip_l", "clip_g", "t5xxl")]
# Header-only single files: tensor names (and shapes where a check reads one) that tell what they are.
MODEL_FILES: dict[str, dict[str, list[int]]] = {
    "unet/flux1-tiny-a.safetensors": _empty([*_FLUX, "guidance_in.in_layer.weight"]),
    "diffusion_models/flux1-tiny-b.safetensors": _empty(_FLUX),
    "clip/clip_l.safetensors": {"text_model.encoder.layers.0.mlp.fc1.weight": [0]},
    "clip/t5xxl_fp16.safetensors": {"encoder.block.0.layer.0.SelfAttention.q.weight": [0]},
    "text_encoders/t5xxl_fp8_e4m3fn.safetensors": {"encoder.block.0.layer.0.SelfAttention.q.weight": [0]},
    "vae/ae.safetensors": {"decoder.conv_in.weight": [8, 16, 3, 3]},
    "checkpoints/sd3-tiny.safetensors": _empty(_SD3),
    "checkpoints/sd3-tiny_incl_clips_t5xxl.safetensors": _empty([*_SD3, *_BUNDLED]),
    "checkpoints/sd35m-tiny_incl_clips_t5xxl.safetensors": _empty(
        [*_SD3, "model.diffusion_model.joint_blocks.0.x_block.attn2.qkv.weight", *_BUNDLED]
    ),
    "clip/sd3_clip_l.safetensors": {"text_model.encoder.layers.0.mlp.fc1.weight": [0]},
    "clip/sd3_clip_g.safetensors": {"text_model.encoder.layers.0.mlp.fc1.weight": [0]},
    "clip/sd3_t5xxl.safetensors": {"encoder.block.0.layer.0.SelfAttention.q.weight": [0]},
    "loras/assistant.safetensors": {"lora_unet_a.lora_down.weight": [0]},
}


def build_workspace(root: Path) -> Workspace:
    """A workspace with the fixture configs' datasets and header-only stand-ins for their models.

    Cheap (no torch): validation reads only a folder's configs and a file's safetensors header.
    """
    ws = Workspace.from_env(root).ensure()
    for rel in DATASETS:
        write_demo_images(ws.datasets / rel, 2, size=(64, 64), caption="a photo")
    for rel, family in MODEL_FOLDERS.items():
        write_fake_model_folder(ws.models / rel, family)
    for rel, tensors in MODEL_FILES.items():
        write_header_only(ws.models / rel, tensors)
    (ws.root / "configs").mkdir()  # the fuzzed configs' folder is made and removed in it
    return ws


def write_fake_model_folder(folder: Path, family: families.Family) -> None:
    """A diffusers folder that `probe_folder` reads as `family`, without any weights."""
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = family.recognition.pipeline_classes[0]
    (folder / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    for marker in family.recognition.folder_markers[:1]:
        value = [1] if marker.value == NOT_EMPTY else marker.value
        (folder / marker.file).parent.mkdir(parents=True, exist_ok=True)
        (folder / marker.file).write_text(json.dumps({marker.key: value}))
    if family is FLUX_DEV:
        (folder / "transformer").mkdir(exist_ok=True)
        (folder / "transformer" / "config.json").write_text(json.dumps({"guidance_embeds": True}))
    assert probe_folder(folder) is family, f"{folder} reads as {probe_folder(folder)}, not {family.id}"


def write_header_only(path: Path, tensors: dict[str, list[int]]) -> None:
    """A safetensors file whose tensors are all empty: a real header, no data."""
    entry = {"dtype": "F32", "data_offsets": [0, 0]}
    header = {name: {**entry, "shape": shape} for name, shape in tensors.items()}
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


# -- seeds: the fixture configs, each with the files it names ------------------------------------
@dataclass(frozen=True, repr=False)
class Seed:
    """One config to mutate: its dialect, main file, and every file of the bundle (name → data)."""

    dialect: str
    main: str
    files: dict[str, Any]
    texts: dict[str, str] = field(default_factory=dict)  # files kept as text (prompt lists)

    def __repr__(self) -> str:  # Hypothesis shows strategies' arguments: the name, not the data
        return f"Seed({self.dialect}:{self.main})"


def _companions(path: Path) -> dict[str, Path]:
    """The dataset and prompt files a kohya or diffusion-pipe config names beside it."""
    text = path.read_text()
    keys = r"(?:dataset_config|dataset|sample_prompts)"
    names = re.findall(rf"""^\s*{keys}\s*=\s*["']([^"']+)["']""", text, re.M)
    return {name: path.parent / name for name in names if (path.parent / name).is_file()}


def load_seeds() -> list[Seed]:
    """Every fixture config that is a main config (not a dataset or prompt file), and LoRA Pilot's
    profiles as native-dialect configs made runnable (a dataset and a local model)."""
    seeds: list[Seed] = []
    folders = [FIXTURES / "configs", *sorted((FIXTURES / "conformance").iterdir())]
    for folder in folders:
        for path in sorted(folder.glob("*")):
            if path.suffix not in (".yaml", ".toml") or "dataset" in path.stem or "prompts" in path.stem:
                continue
            files: dict[str, Any] = {path.name: document.load(path)}
            texts: dict[str, str] = {}
            for name, companion in _companions(path).items():
                if companion.suffix == ".txt":
                    texts[name] = companion.read_text()
                else:
                    files[name] = document.load(companion)
            dialect = _dialect_of(files[path.name])
            seeds.append(Seed(dialect, path.name, files, texts))
    for path in sorted(PROFILES.glob("*.yaml")):
        data = document.load(path)
        family = data.get("model", {}).get("family", SDXL.id)
        local = "tiny-sd15" if family == SD15.id else "tiny-sdxl"
        data["model"] = {**data.get("model", {}), "path": f"/workspace/models/diffusers/{local}"}
        data["datasets"] = [{"folder": "person"}]
        seeds.append(Seed("lorapilot", f"{path.stem}.yaml", {f"{path.stem}.yaml": data}))
    seeds.append(Seed("lorapilot", "native.yaml", {"native.yaml": NATIVE}))
    seeds.append(Seed("kohya", "kohya_args.json", {"kohya_args.json": _kohya_flat()}))
    return seeds


# A LoRA Pilot config using most sections, as `trainpilot validate` prints a spec.
NATIVE: dict[str, Any] = {
    "spec_version": 1,
    "model": {"family": SD15.id, "path": "/workspace/models/diffusers/tiny-sd15", "vae": None},
    "network": {"type": "locon", "dim": 8, "alpha": 4, "conv_dim": 4, "target_modules": None},
    "datasets": [
        {"folder": "/workspace/datasets/images/2_person", "resolutions": [512], "bucket": {"step": 64}},
        {"folder": "1_person", "is_reg": True, "caption_extension": "txt"},
    ],
    "training": {
        "max_steps": 10,
        "learning_rate": 1e-4,
        "optimizer": "adamw",
        "optimizer_args": {"weight_decay": 0.01},
        "lr_scheduler": "cosine",
        "early_stopping": {"patience": 3},
        "min_snr_gamma": 5,
    },
    "sample": {"every": 5, "prompts": ["a photo", {"text": "a person", "width": 512, "seed": 3}]},
    "save": {"every_n_steps": 5, "keep_last": 2},
    "output": {"name": "native_run"},
}


def _kohya_flat() -> dict[str, Any]:
    """kohya_ss GUI's JSON shape: the training arguments flat, one dataset folder."""
    return {
        "pretrained_model_name_or_path": "/workspace/models/diffusers/tiny-sd15",
        "train_data_dir": "/workspace/datasets/images",
        "output_dir": "/workspace/outputs/kohya_json",
        "output_name": "kohya_json",
        "network_dim": 8,
        "network_alpha": 4,
        "learning_rate": 0.0001,
        "max_train_steps": 20,
        "resolution": "512,512",
        "enable_bucket": True,
        "optimizer_type": "AdamW",
        "mixed_precision": "no",
        "save_every_n_steps": 10,
    }


def _dialect_of(doc: dict[str, Any]) -> str:
    return detect_dialect(doc) or "unknown"


# -- values a user (or an attacker) might write -----------------------------------------------
@dataclass(frozen=True)
class Raw:
    """A literal written into the file as it is (a 5,000-digit integer, `1e309`, a YAML tag)."""

    yaml: str
    toml: str
    json: str


def _huge_int(digits: int) -> Raw:
    text = "9" * digits
    return Raw(text, text, text)


RAW_VALUES = (
    _huge_int(4301),
    _huge_int(5000),
    Raw("-" + "1" * 4400, "-" + "1" * 4400, "-" + "1" * 4400),
    Raw("1.0e309", "1e309", "1e309"),
    Raw("-1.0e309", "-1e309", "-1e309"),
    Raw("1e309", "1e309", "1e309"),
    Raw(".nan", "nan", "NaN"),
    Raw(".inf", "inf", "Infinity"),
    Raw('!!timestamp ""', '""', '""'),
    Raw("!!timestamp 2024-02-30", "2024-02-30", '"2024-02-30"'),
    Raw("2024-02-30", "2024-02-30", '"2024-02-30"'),
    Raw("!!binary aGVsbG8=", '"aGVsbG8="', '"aGVsbG8="'),
    Raw("!!set {a, b}", "[]", "[]"),
    Raw("!!omap [a: 1]", "[]", "[]"),
    Raw("!!float 1_000", "1_000", "1000"),
    Raw("!!int 0x1F", "0x1F", "31"),
    Raw("0b1010", "0b1010", "10"),
    Raw("!!python/object:os.system x", '"x"', '"x"'),
    Raw("!!str", '""', '""'),
    Raw("~", '""', "null"),
    Raw("12:30:00", "12:30:00", '"12:30:00"'),
    Raw("1979-05-27T07:32:00Z", "1979-05-27T07:32:00Z", '"1979-05-27T07:32:00Z"'),
    Raw("&anchor 3", "3", "3"),
    Raw("{<<: {a: 1}}", "{}", "{}"),
)

PATHS = (
    "/workspace/models",
    "/workspace/datasets/images",
    "/workspace/datasets/images/person",
    "/workspace/models/diffusers/tiny-sdxl",
    "/workspace/models/loras/assistant.safetensors",
    "/workspace/models/vae/ae.safetensors",
    "/workspace/outputs/x",
    "/workspace/../etc/passwd",
    "../../etc/passwd",
    "/etc/passwd",
    "/tmp/x",
    "/dev/null",
    "/proc/self/environ",
    "~/x",
    "~nobody/x",
    ".",
    "..",
    "",
    " ",
    "person",
    "1_person",
    "a/b",
    "owner/name",
    "C:\\Windows\\x",
    "a" * 300,
    "/workspace/" + "a" * 300,
    "/workspace/" + "/".join(["b" * 200] * 25),
    "x" * 5000,
    "/workspace/datasets/images/\x00x",
    "a\x00b",
    "x.safetensors",
    "x.ckpt",
    "/workspace/models/diffusers/tiny-sdxl/model_index.json",
)


def constants(items: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """One of `items`, drawn by index: Hypothesis prints a strategy's arguments, and these are long."""
    return st.integers(0, len(items) - 1).map(items.__getitem__)


@cache
def texts() -> st.SearchStrategy[str]:
    """Text as configs hold it, and text that breaks assumptions: control characters, non-BMP
    characters, very long strings, paths, numbers and booleans in quotes."""
    return st.one_of(
        st.text(max_size=20),
        st.text(st.characters(codec="utf-8"), max_size=40),
        constants(PATHS),
        st.sampled_from(["true", "no", "1e-4", "512,768", "1024x768", "5-10", "nan", "0x10", "[trigger]"]),
        st.sampled_from(["bf16", "fp16", "float8", "adamw8bit", "cosine", "lora", "flux", SDXL.id, SD3.id]),
        st.integers(1, 12).map(lambda n: "ä€😀\x00\x7f\u202e"[: n % 7] * n),
        st.integers(200, 6000).map(lambda n: "z" * n),
        st.tuples(st.sampled_from(ARGUMENT_NAMES), _argument_values()).map("=".join),
        st.tuples(st.sampled_from(PROMPT_FLAGS), _argument_values()).map(
            lambda fa: f"a photo --{fa[0]} {fa[1]}"
        ),
    )


# Names in kohya's `key=value` lists (network_args, optimizer_args) and sample-prompt flags.
ARGUMENT_NAMES = (
    "conv_dim",
    "conv_alpha",
    "algo",
    "dora_wd",
    "loraplus_lr_ratio",
    "betas",
    "weight_decay",
    "x",
)
PROMPT_FLAGS = ("n", "w", "h", "d", "s", "l", "g", "ss", "seed", "cfg", "steps", "width", "fs", "zz")


def _argument_values() -> st.SearchStrategy[str]:
    """The text after `=` or a prompt flag: numbers, YAML flow values, tags, broken syntax."""
    return st.one_of(
        st.sampled_from(
            ["4", "0.01", "[0.9, 0.99]", "[0.9", "{a: 1}", "locon", "true", "", "1e309", "-1", "²"]
        ),
        constants(RAW_VALUES).map(lambda raw: raw.yaml),
        st.text(max_size=8),
    )


@cache
def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        texts(),
        st.integers(),
        st.integers(-(2**70), 2**70),
        st.sampled_from([0, 1, -1, 2**31, 2**32, 2**63, 2**64, 10**20]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
        st.dates(),
        st.datetimes(),
        constants(RAW_VALUES),
    )


@cache
def values() -> st.SearchStrategy[Any]:
    """Any value: a scalar, or lists and mappings of them, a few levels deep."""
    return st.recursive(scalars(), _containers_of, max_leaves=12)


def _containers_of(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.one_of(texts(), st.sampled_from(KEYS))
    return st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4))


# Keys the dialects use, to add as "unknown" or misplaced keys and to reach other readers' rules.
KEYS = (
    "model",
    "family",
    "path",
    "type",
    "datasets",
    "folder",
    "subsets",
    "image_dir",
    "output",
    "name",
    "process",
    "config",
    "job",
    "train",
    "network",
    "sample",
    "prompts",
    "samples",
    "directory",
    "dataset",
    "dataset_config",
    "sample_prompts",
    "spec_version",
    "resolution",
    "resolutions",
    "network_args",
    "optimizer_args",
    "optimizer_params",
    "name_or_path",
    "pretrained_model_name_or_path",
    "checkpoint_path",
    "diffusers_path",
    "transformer_path",
    "train_data_dir",
    "reg_data_dir",
    "output_dir",
    "output_name",
    "training_folder",
    "steps",
    "max_train_steps",
    "epochs",
    "max_steps",
    "lr",
    "learning_rate",
    "adapter",
    "optimizer",
    "rank",
    "dtype",
    "ema_config",
    "save",
    "assistant_lora_path",
    "vae",
    "clip_l",
    "t5xxl",
    SDXL.id,  # kohya's flag
    "is_flux",
    "arch",
    "dataset_defaults",
    "bucket",
    "early_stopping",
)


# -- mutating a document ------------------------------------------------------------------------
def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every location in a parsed document (keys of mappings, indexes of lists)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _get(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def mutated(draw: st.DrawFn, doc: dict[str, Any], max_edits: int = 3) -> dict[str, Any]:
    """`doc` with a few edits: a leaf or subtree replaced, a key deleted or added, a type changed."""
    doc = _copy(doc)
    for _ in range(draw(st.integers(1, max_edits))):
        locations = list(_paths(doc))
        where = locations[draw(st.integers(0, len(locations) - 1))]  # by index: the repr stays small
        target = _get(doc, where)
        parent = _get(doc, where[:-1]) if where else None
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "retype", "wrap"]))
        if action == "add" and isinstance(target, dict):
            target[draw(st.one_of(st.sampled_from(KEYS), texts()))] = draw(values())
        elif action == "delete" and parent is not None:
            del parent[where[-1]]
        elif action == "retype" and where:
            parent[where[-1]] = _retyped(target, draw(st.integers(0, 5)))
        elif action == "wrap" and where:
            parent[where[-1]] = [[target], {"value": target}, [target, target]][draw(st.integers(0, 2))]
        elif where:
            parent[where[-1]] = draw(values())
    return doc


def _retyped(value: Any, how: int) -> Any:
    """`value` as another type a careless edit gives: text, a list, a number, a mapping, nothing."""
    choices: list[Callable[[Any], Any]] = [
        _text_of,
        lambda v: [v],
        lambda v: {"v": v} if not isinstance(v, dict) else list(v.items()),
        lambda v: len(v) if isinstance(v, (str, list, dict)) else -1,
        lambda v: None,
        lambda v: True,
    ]
    return choices[how](value)


def _text_of(value: Any) -> str:
    try:
        return str(value)
    except ValueError:  # an integer beyond Python's str() digit limit
        return "9" * 10


# -- rendering a document as a file --------------------------------------------------------------
class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Raw, lambda dumper, raw: dumper.represent_scalar("!raw", raw.yaml))


def to_yaml(doc: Any) -> str:
    """YAML text; `Raw` values are written literally (tags, huge numbers)."""
    text = yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False)
    return re.sub(r"!raw '((?:[^']|'')*)'|!raw (\S[^\n]*)", _raw_yaml, text)


def _raw_yaml(match: re.Match[str]) -> str:
    quoted, plain = match.group(1), match.group(2)
    return quoted.replace("''", "'") if quoted is not None else plain


def to_json(doc: Any) -> str:
    """JSON text (kohya_ss's GUI format); dates become strings, `Raw` values are written literally."""
    if isinstance(doc, Raw):
        return doc.json
    if isinstance(doc, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {to_json(v)}" for k, v in doc.items()) + "}"
    if isinstance(doc, list):
        return "[" + ", ".join(to_json(v) for v in doc) + "]"
    if isinstance(doc, (dt.date, dt.datetime)):
        return json.dumps(doc.isoformat())
    if isinstance(doc, int) and not isinstance(doc, bool) and abs(doc) > 10**4000:
        return "1" + "0" * 4400
    return json.dumps(doc)


def to_toml(doc: dict[str, Any]) -> str:
    """TOML text: scalars and inline values first, then `[tables]` and `[[arrays of tables]]`."""
    lines: list[str] = []
    _toml_table(doc, (), lines)
    return "\n".join(lines) + "\n"


def _toml_table(table: dict[str, Any], prefix: tuple[str, ...], lines: list[str]) -> None:
    nested = []
    for key, value in table.items():
        if value is None:
            continue
        if isinstance(value, dict) or (
            isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ):
            nested.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in nested:
        name = ".".join(_toml_key(k) for k in (*prefix, key))
        if isinstance(value, dict):
            lines.append(f"\n[{name}]")
            _toml_table(value, (*prefix, key), lines)
        else:
            for item in value:
                lines.append(f"\n[[{name}]]")
                _toml_table(item, (*prefix, key), lines)


def _toml_key(key: Any) -> str:
    key = str(key)
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, Raw):
        return value.toml
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "1" + "0" * 4400 if abs(value) > 10**4000 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + inner + "}"
    return json.dumps(str(value), ensure_ascii=False)


def render(name: str, doc: Any) -> str:
    """The document in the format its file name says."""
    if name.endswith(".toml"):
        return to_toml(doc)
    if name.endswith(".json"):
        return to_json(doc)
    return to_yaml(doc)


SNIPPETS = (
    "\x00",
    "\t",
    "\ufeff",
    "!!timestamp ''",
    "!!binary",
    "&a ",
    "*a",
    "*b",
    "<<: *a\n",
    "? ",
    "- ",
    ": ",
    "= ",
    "[",
    "]",
    "{",
    "}",
    "'''",
    '"""',
    '"',
    "'",
    "#",
    "\n",
    "\n  ",
    "\n[x]\n",
    "\n[[datasets]]\n",
    "\n[model]\n",
    "9" * 4400,
    "1e309",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "!!python/name:os.system",
    "\\u0000",
    "\\",
)


def text_edits(draw: st.DrawFn, text: str, max_edits: int = 2) -> str:
    """`text` with a few insertions, deletions or replacements of syntax-significant snippets."""
    for _ in range(draw(st.integers(0, max_edits))):
        at = draw(st.integers(0, len(text)))
        span = draw(st.integers(0, 12))
        snippet = draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=6)))
        end = at + span if draw(st.booleans()) else at  # replace `span` characters, or insert
        text = text[:at] + snippet + text[end:]
    return text


@dataclass
class Case:
    """One fuzzed config: the seed it came from and the files to write (name → text)."""

    seed: str
    main: str
    files: dict[str, str]


def as_case(seed: Seed) -> Case:
    """The seed itself, unmutated."""
    files = {name: render(name, data) for name, data in seed.files.items()}
    return Case(f"{seed.dialect}:{seed.main}", seed.main, {**files, **seed.texts})


@st.composite
def cases(draw: st.DrawFn, seeds: list[Seed]) -> Case:
    """A seed with one of its files mutated (mostly the main one), rendered, perhaps text-edited."""
    seed = draw(st.sampled_from(seeds))
    names = list(seed.files)
    target = draw(st.sampled_from([seed.main, seed.main, *names]))
    files = as_case(seed).files
    if draw(st.integers(0, 9)) > 0:
        files[target] = render(target, mutated(draw, seed.files[target]))
    if draw(st.integers(0, 3)) == 0:
        files[target] = text_edits(draw, files[target])
    if seed.texts and draw(st.integers(0, 5)) == 0:
        name = draw(st.sampled_from(sorted(seed.texts)))
        files[name] = text_edits(draw, seed.texts[name], 4)
    return Case(f"{seed.dialect}:{seed.main}", seed.main, files)


# -- command-line layers: --set, --name, --dataset, --profile, --dialect ----------------------------
def spec_fields() -> list[str]:
    """Every TrainSpec field as `--set` spells it (`training.max_steps`, `datasets[0].folder`)."""
    found: list[str] = []
    stack: list[tuple[type[BaseModel], str]] = [(TrainSpec, "")]
    while stack:
        model, prefix = stack.pop()
        for name, info in model.model_fields.items():
            path = f"{prefix}{name}" + ("[0]" if name in ("datasets", "prompts") else "")
            found.append(path)
            for arg in (*getattr(info.annotation, "__args__", ()), info.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    stack.append((arg, path + "."))
    return sorted(set(found))


def _value_text(value: Any) -> str:
    """A value as a user types it after `=`: YAML flow style, or raw text."""
    if isinstance(value, str):
        return value
    return to_yaml(value).removesuffix("\n...\n").strip()


def overrides() -> st.SearchStrategy[list[str]]:
    """`--set` arguments: real and misspelt field paths, list indexes, any value, broken syntax."""
    key = st.one_of(
        st.sampled_from(spec_fields()),
        st.sampled_from(KEYS),
        st.text(max_size=12),
        st.sampled_from(
            ["a..b", "a[", "[0]", "datasets[x]", "datasets[99999999999]", "model.", "=", "a[0][1]"]
        ),
    )
    value = st.one_of(values().map(_value_text), constants(RAW_VALUES).map(lambda raw: raw.yaml))
    pair = st.tuples(key, value).map(lambda kv: f"{kv[0]}={kv[1]}")
    return st.lists(st.one_of(pair, texts()), max_size=3)


@st.composite
def command_lines(draw: st.DrawFn, seeds: list[Seed]) -> tuple[Case, list[str]]:
    """A fuzzed config with the options `trainpilot validate` takes, themselves fuzzed."""
    case = draw(cases(seeds))
    args: list[str] = []
    for name in draw(
        st.lists(st.sampled_from(["--set", "--name", "--dataset", "--profile", "--dialect"]), max_size=3)
    ):
        if name == "--set":
            args += [arg for text in draw(overrides()) for arg in ("--set", text)]
        elif name == "--profile":
            args += [
                name,
                draw(st.one_of(st.sampled_from(["quick_test", "style", "../x", "/etc/passwd"]), texts())),
            ]
        elif name == "--dialect":
            args += [name, draw(st.sampled_from(["lorapilot", "kohya", "ai-toolkit", "diffusion-pipe"]))]
        else:
            args += [name, draw(texts())]
    return case, [arg for arg in args if "\x00" not in arg]  # a command line cannot hold NUL


# -- the property -----------------------------------------------------------------------------------
def tree(root: Path) -> set[str]:
    """Every path under `root` (relative), to tell what a call created."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def write_case(case: Case, folder: Path) -> Path:
    """The case's files in a fresh `folder`; returns the main config's path."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, text in case.files.items():
        (folder / name).write_bytes(text.encode("utf-8", "surrogatepass"))
    return folder / case.main


def validate_case(case: Case, ws: Workspace, overrides: tuple[str, ...] = ()) -> str:
    """Validate the case in `ws` (under configs/fuzz/): "ok" or "refused", or raise what escaped.

    The config folder is removed afterwards, whatever happens.
    """
    folder = ws.root / "configs" / "fuzz"
    path = write_case(case, folder)
    try:
        load_spec(path, overrides=overrides, workspace=ws)
    except LoraPilotError as exc:
        str(exc)  # the message must render too
        return "refused"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return "ok"


def run_cli(case: Case, ws: Workspace, args: list[str]) -> tuple[int, str]:
    """`trainpilot validate` on the case with `args`, in-process: (exit code, stderr)."""
    folder = ws.root / "configs" / "fuzz"
    path = write_case(case, folder)
    out, err = io.StringIO(), io.StringIO()
    log = logging.StreamHandler(err)  # an internal error's traceback goes to the log
    cli.log.addHandler(log)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(["validate", str(path), *args, "--workspace", str(ws.root)])
            except SystemExit as exc:  # argparse's own refusals
                rc = int(exc.code or 0)
    finally:
        cli.log.removeHandler(log)
        shutil.rmtree(folder, ignore_errors=True)
    return rc, err.getvalue()


def crash_class(exc: BaseException) -> str:
    """A crash's type and the line of project code that raised it: one class per root cause."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    ours = [f for f in frames if "/lorapilot/" in f.tb_frame.f_code.co_filename]
    where = ours[-1] if ours else (frames[-1] if frames else None)
    place = f"{os.path.basename(where.tb_frame.f_code.co_filename)}:{where.tb_lineno}" if where else "?"
    return f"{type(exc).__name__} at {place}"
