"""kohya-ss dataset-config TOML: `[general]` → `[[datasets]]` → `[[datasets.subsets]]`.

Each subset becomes one TrainSpec dataset; a lower level overrides a higher one, as in kohya.
kohya refuses unknown keys here too, and so do we.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lorapilot.spec.draft import (
    Draft,
    Ignored,
    NativePath,
    Rule,
    To,
    apply_table,
    as_resolutions,
    join,
    section,
)
from lorapilot.spec.readers.kohya_options import DATASET_IGNORED, DATASET_UNSUPPORTED, UNSUPPORTED

_DATASET_LEVEL = ("network_multiplier", "validation_seed", "validation_split")


def caption_prefix(target: NativePath):
    """kohya's caption_prefix puts text before every caption: LoRA Pilot's trigger word."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        if value in (None, ""):
            return
        if not isinstance(value, str):
            draft.issue(source, "must be text", value)
            return
        draft.put(target, value.strip().rstrip(",").strip(), source)
        draft.notice(
            source,
            "used as the trigger word: it is put first, as its own tag, unless the caption already has it",
        )

    return handle


DEFAULT_CAPTION_EXTENSION = ".caption"  # sd-scripts' default, for its arguments and dataset configs

# Keys valid at every level, mapped relative to one dataset entry.
SUBSET_KEYS: dict[str, Rule] = {
    "num_repeats": To(("repeats",)),
    "class_tokens": To(("class_tokens",)),
    "caption_extension": To(("caption_extension",)),
    "caption_prefix": caption_prefix(("trigger_word",)),
    "shuffle_caption": To(("shuffle_caption",)),
    "keep_tokens": To(("keep_tokens",)),
    "caption_dropout_rate": To(("caption_dropout",)),
    "flip_aug": To(("flip",)),
    **{name: Ignored(reason) for name, reason in DATASET_IGNORED.items()},
    **{name: rule for name, rule in DATASET_UNSUPPORTED.items() if name not in _DATASET_LEVEL},
}
SUBSET_ONLY: dict[str, Rule] = {
    "image_dir": To(("folder",)),
    "is_reg": To(("is_reg",)),
    "metadata_file": UNSUPPORTED["in_json"],
    "conditioning_data_dir": UNSUPPORTED["conditioning_data_dir"],
}
# Keys of [general] and [[datasets]] that are training settings rather than dataset fields.
TRAINING_KEYS = {
    "prior_loss_weight": ("training", "prior_loss_weight"),
}
# Keys valid in [general] and [[datasets]].
DATASET_KEYS: dict[str, Rule] = {
    "batch_size": To(("batch_size",)),
    "resolution": To(("resolutions",), as_resolutions),
    "enable_bucket": To(("bucket", "enabled")),
    "min_bucket_reso": To(("bucket", "min_resolution")),
    "max_bucket_reso": To(("bucket", "max_resolution")),
    "bucket_reso_steps": To(("bucket", "step")),
    "bucket_no_upscale": To(("bucket", "no_upscale")),
    **{name: DATASET_UNSUPPORTED[name] for name in _DATASET_LEVEL},
}
# What sd-scripts assumes for a dataset config read on its own (with arguments, theirs fill in).
DEFAULTS: tuple[tuple[NativePath, Any], ...] = (
    (("caption_extension",), DEFAULT_CAPTION_EXTENSION),
    (("bucket", "enabled"), False),
)


def detect(doc: Mapping[str, Any]) -> bool:
    return (
        "datasets" in doc
        and isinstance(doc.get("datasets"), list)
        and ("general" in doc or any(isinstance(d, Mapping) and "subsets" in d for d in doc["datasets"]))
    )


def read(doc: Mapping[str, Any], draft: Draft, *, defaults: bool = True) -> None:
    """Read a dataset config; `defaults` puts sd-scripts' own where the config is all there is."""
    if defaults:
        for path, value in DEFAULTS:
            draft.put(("dataset_defaults", *path), value, f"{path[-1]} (sd-scripts default)")
    general_draft = Draft(file=draft.file)
    for key in doc:
        if key not in ("general", "datasets"):
            draft.issue(
                key, "unknown key in a kohya dataset config", hint="expected [general] or [[datasets]]"
            )
    general = section(draft, doc.get("general"), "general")
    if general is not None:
        _read_level(general_draft, general, "general", draft)
    datasets = doc.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        draft.issue("datasets", "needs at least one [[datasets]] table", datasets)
        return
    for d_index, dataset in enumerate(datasets):
        _read_dataset(draft, general_draft, dataset, d_index)
    draft.issues.extend(general_draft.issues)
    draft.notices.extend(general_draft.notices)


def _read_dataset(draft: Draft, general: Draft, dataset: Any, d_index: int) -> None:
    where = join("datasets", d_index)
    mapping = section(draft, dataset, where)
    if mapping is None:
        return
    level = Draft(file=draft.file)
    _read_level(level, {k: v for k, v in mapping.items() if k != "subsets"}, where, draft)
    subsets = mapping.get("subsets")
    if not isinstance(subsets, list) or not subsets:
        draft.issue(join(where, "subsets"), "needs at least one [[datasets.subsets]] table with image_dir")
        return
    for s_index, subset in enumerate(subsets):
        s_where = join(join(where, "subsets"), s_index)
        s_map = section(draft, subset, s_where)
        if s_map is None:
            continue
        _add_subset(draft, [general, level], s_map, s_where)
    draft.issues.extend(level.issues)
    draft.notices.extend(level.notices)


def _add_subset(draft: Draft, parents: list[Draft], subset: Mapping[str, Any], where: str) -> None:
    index = len(draft.data.get("datasets", []))
    mine = Draft(file=draft.file)
    for parent in parents:
        for path, source in parent.origin.items():
            mine.put(path, parent.get(path), source)
    apply_table(mine, subset, {**SUBSET_KEYS, **SUBSET_ONLY}, where)
    if "image_dir" not in subset:
        draft.issue(join(where, "image_dir"), "required: the folder of this subset's images")
    draft.put(("datasets", index), {}, where)
    for path, source in mine.origin.items():
        draft.put(("datasets", index, *path), mine.get(path), source)
    draft.issues.extend(mine.issues)
    draft.notices.extend(mine.notices)


def _read_level(level: Draft, mapping: Mapping[str, Any], where: str, top: Draft) -> None:
    """Keys of [general] or one [[datasets]]: dataset fields go to `level`, training ones to `top`."""

    def to_top(path: tuple[str, str]) -> Rule:
        return lambda _draft, value, source: top.put(path, value, source)

    table = {**DATASET_KEYS, **SUBSET_KEYS, **{k: to_top(p) for k, p in TRAINING_KEYS.items()}}
    apply_table(level, mapping, table, where)


def table() -> dict[str, Rule]:
    """Every key a dataset config may hold, at whichever level, for counting and contract tests."""
    training = {key: To(path) for key, path in TRAINING_KEYS.items()}
    return {**DATASET_KEYS, **SUBSET_KEYS, **SUBSET_ONLY, **training}
