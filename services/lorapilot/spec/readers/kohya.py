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
from lorapilot.spec.readers.kohya_args import TABLE

DIALECT = "kohya"

# Sections of the guide's YAML; any other section name is flattened as kohya's loader does.
GUIDE_SECTIONS = ("model", "training", "network", "dataset", "sample", "save", "output")


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
        return
    for key, (value, source) in _flatten(doc).items():
        apply_table(draft, {key: value}, TABLE, source.rsplit(".", 1)[0] if "." in source else "")
    _save_last_n(draft, doc)
    _choose_family(draft)
    if "network_dim" in _flatten(doc) and "network_alpha" not in _flatten(doc) and not _is_guide(doc):
        # kohya's own default; the guide's YAML always states alpha.
        draft.put(("network", "alpha"), 1.0, "network_alpha (kohya default)")
        draft.notice("network_alpha", "not set: kohya's default of 1 is used (scale = 1 / network_dim)")


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
