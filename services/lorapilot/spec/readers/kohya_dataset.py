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
    Rule,
    To,
    Unsupported,
    apply_table,
    as_resolutions,
    join,
    section,
)

DEFAULT_CAPTION_EXTENSION = ".caption"  # kohya's default for dataset configs

# Keys valid at every level, mapped relative to one dataset entry.
SUBSET_KEYS: dict[str, Rule] = {
    "num_repeats": To(("repeats",)),
    "class_tokens": To(("class_tokens",)),
    "caption_extension": To(("caption_extension",)),
    "shuffle_caption": To(("shuffle_caption",)),
    "keep_tokens": To(("keep_tokens",)),
    "caption_dropout_rate": To(("caption_dropout",)),
    "flip_aug": To(("flip",)),
    "cache_info": Ignored("the latent cache is content-addressed in /workspace/cache"),
    "color_aug": Unsupported("colour augmentation"),
    "random_crop": Unsupported("random crops (images are resized into buckets)"),
    "face_crop_aug_range": Unsupported("face crop augmentation"),
    "keep_tokens_separator": Unsupported("a keep-tokens separator; use keep_tokens"),
    "secondary_separator": Unsupported("a secondary tag separator"),
    "enable_wildcard": Unsupported("caption wildcards"),
    "caption_prefix": Unsupported("caption prefixes; use trigger words"),
    "caption_suffix": Unsupported("caption suffixes"),
    "caption_tag_dropout_rate": Unsupported("per-tag dropout; use caption_dropout_rate"),
    "caption_dropout_every_n_epochs": Unsupported("epoch-periodic caption dropout"),
    "token_warmup_min": Unsupported("token warm-up"),
    "token_warmup_step": Unsupported("token warm-up"),
    "alpha_mask": Unsupported("alpha masks as loss masks"),
}
SUBSET_ONLY: dict[str, Rule] = {
    "image_dir": To(("folder",)),
    "is_reg": To(("is_reg",)),
    "metadata_file": Unsupported("fine-tuning metadata files; use caption files beside the images"),
    "conditioning_data_dir": Unsupported("ControlNet conditioning images"),
}
# Keys of [general] and [[datasets]] that are training settings rather than dataset fields.
TRAINING_KEYS = {
    "batch_size": ("training", "batch_size"),
    "prior_loss_weight": ("training", "prior_loss_weight"),
}
# Keys valid in [general] and [[datasets]].
DATASET_KEYS: dict[str, Rule] = {
    "resolution": To(("resolutions",), as_resolutions),
    "enable_bucket": To(("bucket", "enabled")),
    "min_bucket_reso": To(("bucket", "min_resolution")),
    "max_bucket_reso": To(("bucket", "max_resolution")),
    "bucket_reso_steps": To(("bucket", "step")),
    "bucket_no_upscale": To(("bucket", "no_upscale")),
    "validation_split": Unsupported("validation splits"),
    "validation_seed": Unsupported("validation splits"),
}


def detect(doc: Mapping[str, Any]) -> bool:
    return (
        "datasets" in doc
        and isinstance(doc.get("datasets"), list)
        and ("general" in doc or any(isinstance(d, Mapping) and "subsets" in d for d in doc["datasets"]))
    )


def read(doc: Mapping[str, Any], draft: Draft) -> None:
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
    mine.put(("caption_extension",), DEFAULT_CAPTION_EXTENSION, f"{where}.caption_extension (kohya default)")
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
