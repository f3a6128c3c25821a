"""ai-toolkit dialect: `job: extension` / `config.process[]`, or one bare process block.

The guide's smaller YAML snippets (`train:`, `datasets:`, `sample:`, `trigger_word:`) are bare
process blocks in ai-toolkit's vocabulary; they are read here too. A whole job is read with
ai-toolkit's own defaults (`toolkit/config_modules.py`) for the keys it leaves out; a bare block
is a snippet merged over a profile, so it keeps ours.

`TABLES` holds one table per section (the option tables are in `aitoolkit_options`): every option
ai-toolkit's config classes and its web UI know, each mapped, noticed or refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lorapilot import families
from lorapilot.families import Family
from lorapilot.families.recognition import guess_from_name
from lorapilot.spec.draft import Draft, Ignored, Rule, To, apply_table, join, section
from lorapilot.spec.readers import aitoolkit_sample, kohya_dataset
from lorapilot.spec.readers.aitoolkit_options import (
    DATASET,
    EMA,
    MODEL,
    NETWORK,
    NETWORK_KWARGS,
    SAMPLE,
    SAVE,
    TRAIN,
    ignored,
    nested,
    only,
    refused,
)

DIALECT = "ai-toolkit"
DD = "dataset_defaults"
AITK = "ai-toolkit default"
# Keys only ai-toolkit uses at the top of a bare process block (kohya's YAML has none of them).
_PROCESS_ONLY = ("train", "datasets", "sample", "save", "trigger_word", "training_folder")

# quanto weight types (model.qtype) → model.quantize, with what differs from ai-toolkit.
_QTYPES = {
    "qfloat8": ("float8", None),
    "float8": ("float8", None),
    "qint8": ("int8", "bitsandbytes int8 instead of quanto qint8"),
    "uint8": ("int8", "bitsandbytes int8 instead of quanto uint8"),
    "qint4": ("nf4", "bitsandbytes nf4 instead of quanto qint4"),
    "uint4": ("nf4", "bitsandbytes nf4 instead of quanto uint4"),
}


_SECTIONS = {"network": NETWORK, "save": SAVE, "train": TRAIN, "model": MODEL, "sample": SAMPLE}


def _training_folder(draft: Draft, value: Any, source: str) -> None:
    """→ `output.folder`: training_folder/<config.name>"""
    draft.hints["training_folder"] = (value, source)


def _read_elsewhere(draft: Draft, value: Any, source: str) -> None:
    """holds the sections below (one process)"""


def _process_type(draft: Draft, value: Any, source: str) -> None:
    """sd_trainer, diffusion_trainer (or the UI's older ui_trainer)"""
    if value not in ("sd_trainer", "diffusion_trainer", "ui_trainer"):
        draft.issue(source, "not a LoRA training process", value, accepted="sd_trainer, diffusion_trainer")


def _datasets(draft: Draft, value: Any, source: str) -> None:
    """→ `datasets`, each entry read with the `datasets[]` table"""
    if not isinstance(value, list):
        draft.issue(source, "must be a list of datasets", value)
        return
    for i, item in enumerate(value):
        mapping = section(draft, item, join(source, i))
        if mapping is None:
            continue
        draft.put(("datasets", i), {}, join(source, i))
        table = {
            k: (To(("datasets", i, *r.path), r.convert) if isinstance(r, To) else r)
            for k, r in DATASET.items()
        }
        apply_table(draft, mapping, table, join(source, i))


PROCESS: dict[str, Rule] = {
    "type": _process_type,
    "training_folder": _training_folder,
    "trigger_word": To((DD, "trigger_word")),
    "datasets": _datasets,
    **{name: nested(table) for name, table in _SECTIONS.items()},
    **ignored(
        "the daemon chooses the GPU and logs to outputs/<name>/_logs/",
        ("device", "logging", "performance_log_every", "monitoring"),
    ),
    "sqlite_db_path": Ignored("ai-toolkit's web UI database; jobs live in the spool here"),
    **refused("slider training", {"slider": None}),
    **refused("adapter, embedding and decorator training", {"adapter": None, "embedding": None}),
    **refused("adapter, embedding and decorator training", {"decorator": None}),
}
JOB: dict[str, Rule] = {
    "job": only("extension", "only extension jobs train LoRAs"),
    "config": _read_elsewhere,
    "meta": Ignored("descriptive only"),
}
CONFIG: dict[str, Rule] = {"name": To(("output", "name")), "process": _read_elsewhere}
TABLES: dict[str, Mapping[str, Rule]] = {
    "job": JOB,
    "config": CONFIG,
    "process": PROCESS,
    "network": NETWORK,
    "network.network_kwargs": NETWORK_KWARGS,
    "save": SAVE,
    "datasets[]": DATASET,
    "train": TRAIN,
    "train.ema_config": EMA,
    "model": MODEL,
    "sample": SAMPLE,
    "sample.samples[]": aitoolkit_sample.SAMPLE_ITEM,
}


def detect(doc: Mapping[str, Any]) -> bool:
    if kohya_dataset.detect(doc):  # `datasets` alone is kohya's [[datasets]] with subsets
        return False
    if "job" in doc or isinstance(doc.get("config"), Mapping):
        return True
    return any(key in doc for key in _PROCESS_ONLY)


def read(doc: Mapping[str, Any], draft: Draft) -> None:
    full_job = "job" in doc or "config" in doc
    if full_job:
        _read_job(doc, draft)
    else:
        read_process(doc, draft, "")
    _finish(draft, full_job)
    _choose_family(draft)


def _read_job(doc: Mapping[str, Any], draft: Draft) -> None:
    for key in doc:
        if key not in JOB:
            draft.issue(key, "unknown key", hint="an ai-toolkit file has job, config and meta")
    apply_table(draft, {k: v for k, v in doc.items() if k in JOB}, JOB, "")
    config = section(draft, doc.get("config"), "config")
    if not config:
        draft.issue("config", "required: config with name and process")
        return
    for key in config:
        if key not in CONFIG:
            draft.issue(join("config", key), "unknown key", hint="config has name and process")
    apply_table(draft, {k: v for k, v in config.items() if k in CONFIG}, CONFIG, "config")
    processes = config.get("process")
    if not isinstance(processes, list) or len(processes) != 1:
        draft.issue("config.process", "must be a list with exactly one process", processes)
        return
    process = section(draft, processes[0], "config.process[0]")
    if process is not None:
        read_process(process, draft, "config.process[0]")
        _apply_training_folder(draft)
        draft.hints["repeats_from_folder_names"] = False  # ai-toolkit reads num_repeats only


def read_process(process: Mapping[str, Any], draft: Draft, prefix: str) -> None:
    apply_table(draft, process, PROCESS, prefix)
    if not prefix:
        _apply_training_folder(draft)


def _apply_training_folder(draft: Draft) -> None:
    folder = draft.hints.get("training_folder")
    name = draft.get(("output", "name"))
    if folder and isinstance(folder[0], str) and isinstance(name, str):
        draft.put(("output", "folder"), f"{folder[0].rstrip('/')}/{name}", folder[1])


# -- after the sections: options that depend on each other, and ai-toolkit's defaults ----------
def _finish(draft: Draft, full_job: bool) -> None:
    hint = draft.hints.pop
    _quantize(draft, hint("aitk_quantize", None), hint("aitk_qtype", None))
    _ema(draft, hint("aitk_use_ema", None), hint("aitk_ema_decay", None))
    skip, disabled = hint("aitk_skip_first_sample", None), hint("aitk_disable_sampling", None)
    if disabled and disabled[0]:
        draft.put(("sample", "every"), 0, disabled[1])
    _conv_without_conv_layers(draft)
    aitoolkit_sample.finish(draft, full_job=full_job)
    if full_job:
        _job_defaults(draft)
        aitoolkit_sample.baseline(draft, bool(skip and skip[0]), bool(disabled and disabled[0]))


def _named_family(draft: Draft) -> Family | None:
    """The family `arch` or an `is_*` flag names, before the model files are probed."""
    arch = draft.hints.get("arch")
    return families.by_alias(arch[0], arch[1]) if arch else None


def _conv_without_conv_layers(draft: Draft) -> None:
    """The web UI writes `conv` for every network; ai-toolkit skips it on models whose LoRA has
    no conv layers (the transformer families)."""
    family = _named_family(draft)
    if family is None or "locon" in family.network_types or draft.get(("network", "conv_dim")) is None:
        return
    network = draft.data["network"]
    for key in ("conv_dim", "conv_alpha"):
        network.pop(key, None)
    draft.notice("network.conv", "ignored: this model's LoRA has no conv layers (ai-toolkit skips it too)")


def _quantize(draft: Draft, quantize: tuple | None, qtype: tuple | None) -> None:
    """ai-toolkit quantises the transformer with quanto when `quantize` is on, as `qtype`
    (default qfloat8: float8 storage, computed in the training dtype)."""
    if not quantize or not quantize[0]:
        if qtype:
            draft.notice(qtype[1], "ignored: applies only with quantize: true")
        return
    name = qtype[0] if qtype else "qfloat8"
    where = qtype[1] if qtype else quantize[1]
    mapped = _QTYPES.get(str(name).lower())
    if mapped is None:
        accepted = ", ".join(_QTYPES)
        draft.issue(where, "not supported by LoRA Pilot: this weight type", name, accepted=accepted)
        return
    draft.put(("model", "quantize"), mapped[0], where)
    if mapped[1]:
        draft.notice(where, f"quantised with {mapped[1]}")


def _ema(draft: Draft, use: tuple | None, decay: tuple | None) -> None:
    if use and use[0]:
        draft.put(("training", "ema_decay"), decay[0] if decay else 0.999, decay[1] if decay else use[1])


def _job_defaults(draft: Draft) -> None:
    """ai-toolkit's defaults (TrainConfig, DatasetConfig, NetworkConfig, SaveConfig) for what a
    whole job leaves out, where LoRA Pilot's would differ."""
    for path, value, source in (
        (("training", "learning_rate"), 1e-6, "train.lr"),
        (("training", "gradient_checkpointing"), True, "train.gradient_checkpointing"),
        (("training", "optimizer"), "adamw", "train.optimizer"),
        (("save", "every_n_steps"), 1000, "save.save_every"),
        (("save", "keep_last"), 5, "save.max_step_saves_to_keep"),
        ((DD, "resolutions"), [512], "datasets[].resolution"),
    ):
        if draft.get(path) is None:
            draft.default(path, value, f"{source} ({AITK})")
    family = _named_family(draft)
    if family is not None and family.flow and draft.get(("training", "timestep_sampling")) is None:
        draft.default(("training", "timestep_sampling"), "sigmoid", f"train.timestep_type ({AITK})")
    if draft.get(("network", "dim")) is not None and draft.get(("network", "alpha")) is None:
        draft.default(("network", "alpha"), 1.0, f"network.linear_alpha ({AITK})")
        draft.notice("network.linear_alpha", "not set: ai-toolkit's default of 1 (scale = 1 / linear)")
    if draft.hints.get("train_dtype") is None:
        draft.notice("train.dtype", "not set: ai-toolkit trains in fp32 by default; LoRA Pilot uses bf16")


def _choose_family(draft: Draft) -> None:
    arch = draft.hints.pop("arch", None)
    path = draft.get(("model", "path"))
    if arch is not None:  # a hint: the files decide (is_flux names dev and schnell alike)
        dialect, name, source = arch
        draft.hints["family_hint"] = (families.by_alias(dialect, name, path), source)
    elif isinstance(path, str):
        guess = guess_from_name(path)
        if guess:
            draft.hints["family_guess"] = (guess, "model.name_or_path")
    train_dtype = draft.hints.pop("train_dtype", None)
    if train_dtype and draft.get(("training", "mixed_precision")) is None:
        precision = "no" if train_dtype[0] == "fp32" else train_dtype[0]
        draft.put(("training", "mixed_precision"), precision, train_dtype[1])
