"""kohya-ss dialect: training-args TOML/YAML (flat, or in sections as kohya flattens them), the
guide's YAML sections (`model`, `training`, `network`, `dataset`), and dataset-config TOML.

kohya flattens any table header of its config file, so `[model_arguments] network_dim = 8` and
`network: {network_dim: 8}` mean the same; one flat key table serves every section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lorapilot import families
from lorapilot.families import SD15
from lorapilot.families.recognition import guess_from_name
from lorapilot.spec.draft import Draft, apply_table, join
from lorapilot.spec.readers import kohya_dataset
from lorapilot.spec.readers.kohya_args import (
    FLUX_DEFAULTS,
    FLUX_DIFFERENCES,
    FLUX_SCRIPT,
    SD_SCRIPTS_DEFAULTS,
    TABLE,
    TE_DEFAULT,
)

DIALECT = "kohya"

# Sections of the guide's YAML; any other section name is flattened as kohya's loader does.
GUIDE_SECTIONS = ("model", "training", "network", "dataset", "sample", "save", "output")
# Names only the guide's blocks use (sd-scripts has none of them): a flat file with one is a guide block.
GUIDE_KEYS = {"steps", "epochs", "batch_size", "network_type", "family", "lowvram", "low_vram", "lr_end"}
GUIDE_KEYS |= {"warmup_steps", "trigger_word"}
# The option tables, by where sd-scripts reads them (the options page and the contract test).
TABLES = {"training arguments": TABLE, "dataset config": kohya_dataset.table()}


def detect(doc: Mapping[str, Any]) -> bool:
    flat = _flatten(doc)
    return any(key in TABLE for key in flat) or kohya_dataset.detect(doc)


def _flatten(doc: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """kohya's rule: a table's keys are lifted to the top; values keep the user's path."""
    flat: dict[str, tuple[Any, str]] = {}
    for key, value in doc.items():
        if isinstance(value, Mapping) and key not in TABLE:
            for sub, inner in value.items():
                flat[sub] = (inner, join(key, sub))
        else:
            flat[key] = (value, key)
    return flat


def read(doc: Mapping[str, Any], draft: Draft) -> None:
    if kohya_dataset.detect(doc):
        kohya_dataset.read(doc, draft)
        _balance_reg(draft)
        return
    for key, (value, source) in _flatten(doc).items():
        apply_table(draft, {key: value}, TABLE, source.rsplit(".", 1)[0] if "." in source else "")
    _save_last_n(draft, doc)
    _choose_family(draft)
    _dataset_config_wins(draft, _flatten(doc))
    _epochs_win(draft)
    _balance_reg(draft)
    flat = _flatten(doc)
    if _is_guide(doc):
        return
    sd_scripts_file = not GUIDE_KEYS & flat.keys()  # the guide's blocks keep LoRA Pilot's defaults
    if sd_scripts_file:
        _sd_scripts_defaults(draft, flat)
    if draft.get(("network", "alpha")) is None and (sd_scripts_file or "network_dim" in flat):
        draft.put(("network", "alpha"), 1.0, "network_alpha (kohya default)")
        draft.notice("network_alpha", "not set: kohya's default of 1 is used (scale = 1 / network_dim)")


def _dataset_config_wins(draft: Draft, flat: Mapping[str, tuple[Any, str]]) -> None:
    """sd-scripts ignores train_data_dir and reg_data_dir when a dataset_config is given."""
    if "dataset_config" not in flat:
        return
    ignored = {flat[key][1] for key in ("train_data_dir", "reg_data_dir") if key in flat}
    datasets = draft.data.get("datasets", [])
    kept = [i for i in range(len(datasets)) if draft.origin.get(("datasets", i, "folder")) not in ignored]
    if len(kept) == len(datasets):
        return
    origin = {path: where for path, where in draft.origin.items() if path[:1] != ("datasets",)}
    for path, where in draft.origin.items():
        if path[:1] == ("datasets",) and len(path) > 1 and path[1] in kept:
            origin[("datasets", kept.index(path[1]), *path[2:])] = where  # type: ignore[index]
    draft.data["datasets"] = [datasets[i] for i in kept]
    draft.origin = origin
    for source in sorted(ignored):
        draft.notice(
            source, "ignored: dataset_config is given, and sd-scripts then reads the folders from it"
        )


def _epochs_win(draft: Draft) -> None:
    """sd-scripts: max_train_epochs overrides max_train_steps, sample_every_n_epochs the steps one."""
    for epochs, steps, why in (
        (("training", "epochs"), ("training", "max_steps"), "sd-scripts lets the epochs override it"),
        (("sample", "every_n_epochs"), ("sample", "every"), "sd-scripts samples by epochs then"),
    ):
        if draft.get(epochs) is not None and draft.get(steps) is not None:
            del draft.data[steps[0]][steps[1]]
            source = draft.origin.pop(steps)
            draft.notice(source, f"ignored: {draft.origin[epochs]} is set, and {why}")


def _balance_reg(draft: Draft) -> None:
    """sd-scripts repeats (or trims) regularisation images to as many as the training images."""
    for index, dataset in enumerate(draft.data.get("datasets", [])):
        if isinstance(dataset, Mapping) and dataset.get("is_reg") is True:
            source = draft.origin.get(("datasets", index, "is_reg"), "reg_data_dir")
            draft.put(("training", "balance_reg"), True, source)
            draft.notice(source, "reg images are repeated or trimmed to the training images' count (kohya)")
            return


def _sample_defaults(draft: Draft, flux_script: bool) -> None:
    """sd-scripts renders a prompt without --w/--h/--s/--l at 512×512, 30 steps and CFG 7.5 (FLUX:
    20 steps, guidance 3.5), whatever the training resolution."""
    if not draft.get(("sample", "prompts")):
        return
    steps, scale = (20, 3.5) if flux_script else (30, 7.5)
    for name, value in (("width", 512), ("height", 512), ("steps", steps), ("guidance_scale", scale)):
        if draft.get(("sample", name)) is None:
            draft.put(("sample", name), value, f"sample_prompts (sd-scripts default {name})")
    draft.notice(
        "sample_prompts",
        f"prompts without their own options render at 512×512, {steps} steps, "
        f"scale {scale} (sd-scripts' defaults)",
    )


def _sd_scripts_defaults(draft: Draft, flat: Mapping[str, Any]) -> None:
    """What sd-scripts does with the options a file leaves out, where LoRA Pilot's default differs."""
    flux_script = flat.get("network_module", (None,))[0] == FLUX_SCRIPT
    for option, path, value in SD_SCRIPTS_DEFAULTS + (FLUX_DEFAULTS if flux_script else ()):
        if option in flat or draft.get(path) is not None:
            continue
        if option == "max_train_steps" and draft.get(("training", "epochs")) is not None:
            continue
        draft.put(path, value, f"{option} (sd-scripts default)")
        draft.notice(option, f"not set: sd-scripts' default {value!r} is used")
    for option, difference in FLUX_DIFFERENCES.items() if flux_script else ():
        if option not in flat:
            draft.notice(option, f"not set: {difference}")
    _sample_defaults(draft, flux_script)
    _weight_dtype(draft)
    if draft.get(("training", "seed")) is None:
        draft.notice("seed", "not set: sd-scripts would draw a random seed; 42 is used, so that runs repeat")
    if "network_train_unet_only" in flat:
        return
    if draft.get(("training", "cache_text_encoder_outputs")):
        draft.notice(
            "network_train_unet_only",
            "not set, but cache_text_encoder_outputs is: the U-Net alone is trained (sd-scripts "
            "stops here: its text-encoder LoRA cannot train on cached outputs)",
        )
    else:
        why = "network_train_unet_only (not set: sd-scripts trains the text encoders too)"
        draft.hints[TE_DEFAULT] = (True, why)


def _weight_dtype(draft: Draft) -> None:
    """sd-scripts keeps the frozen weights in the mixed-precision dtype, fp32 with `no`."""
    precision = draft.get(("training", "mixed_precision"))
    if not isinstance(precision, (str, bool)):
        return  # a list or a mapping: refused by name when the spec is validated
    dtype = {"no": "fp32", False: "fp32", "fp16": "fp16", "bf16": "bf16"}.get(precision)
    if dtype is None or draft.get(("model", "weight_dtype")) is not None:
        return
    source = draft.origin[("training", "mixed_precision")]
    draft.put(("model", "weight_dtype"), dtype, source)
    if dtype != "bf16":
        draft.notice(source, f"the base model's weights are kept in {dtype}, as sd-scripts does")


def _is_guide(doc: Mapping[str, Any]) -> bool:
    return any(isinstance(doc.get(name), Mapping) for name in GUIDE_SECTIONS)


def _save_last_n(draft: Draft, doc: Mapping[str, Any]) -> None:
    """kohya's save_last_n_steps is a span of steps; its save_last_n_epochs counts saves."""
    flat = _flatten(doc)
    for last_key, every_key in (
        ("save_last_n_steps", "save_every_n_steps"),
        ("save_last_n_epochs", "save_every_n_epochs"),
    ):
        if last_key not in flat:
            continue
        last, source = flat[last_key]
        every = flat.get(every_key, (None, ""))[0]
        if not isinstance(last, int) or not isinstance(every, int) or every <= 0 or last <= 0:
            draft.issue(source, f"needs a positive {every_key} and a positive count", last)
            continue
        kept = last if last_key == "save_last_n_epochs" else max(1, math.ceil(last / every))
        draft.put(("save", "keep_last"), kept, source)


def _choose_family(draft: Draft) -> None:
    """sd-scripts picks the model by script; its flags and script-only arguments stand for that here."""
    flags: dict[tuple[str, str], tuple[bool, str]] = draft.hints.pop("family_flags", {})
    path = draft.get(("model", "path"))
    if draft.get(("model", "family")) is not None:
        return
    named = {
        families.by_alias(dialect, name, path): source
        for (dialect, name), (on, source) in flags.items()
        if on
    }
    if not named:
        if isinstance(path, str):
            # What kohya's train_network.py would assume; files on disk can still overrule it.
            draft.hints["family_guess"] = (guess_from_name(path) or SD15, "pretrained_model_name_or_path")
        return
    family = next(f for f in families.newest_first() if f in named)
    for other, source in named.items():
        if other is not family:
            draft.notice(
                source, f"ignored: {named[family]} is set, and {family.label} is not an {other.label} model"
            )
    draft.hints["family_hint"] = (family, named[family])  # the files decide; the script only hints
