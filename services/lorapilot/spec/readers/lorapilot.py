"""LoRA Pilot's own dialect: the TrainSpec shape itself, as `trainpilot validate` prints it.

Profiles are written in it, and a normalised spec read back gives the same spec. On top of the
TrainSpec fields it accepts `dataset_defaults:` (a dataset's fields that apply to every entry of
`datasets:`) so a profile can set resolution and captions without naming a folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_origin

from pydantic import BaseModel

from lorapilot.spec.draft import Draft, NativePath, join, section
from lorapilot.spec.issues import did_you_mean
from lorapilot.spec.model import DatasetSpec, Section, TrainSpec

DIALECT = "lorapilot"
_LIST_SECTIONS: dict[str, type[BaseModel]] = {"datasets": DatasetSpec}
_EXTRA_SECTIONS: dict[str, type[BaseModel]] = {"dataset_defaults": DatasetSpec}


def detect(doc: Mapping[str, Any]) -> bool:
    return "spec_version" in doc


def read(doc: Mapping[str, Any], draft: Draft) -> None:
    _read_model(draft, doc, TrainSpec, (), "", top=True)


def _read_model(
    draft: Draft,
    mapping: Mapping[str, Any],
    model: type[BaseModel],
    path: NativePath,
    prefix: str,
    *,
    top: bool = False,
) -> None:
    fields = dict(model.model_fields)
    extra = _EXTRA_SECTIONS if top else {}
    for key, value in mapping.items():
        source = join(prefix, key)
        if key in extra:
            sub = section(draft, value, source)
            if sub is not None:
                _read_model(draft, sub, extra[key], (*path, key), source)
        elif key not in fields:
            draft.issue(source, "unknown key", hint=did_you_mean(key, [*fields, *extra]))
        elif top and key in _LIST_SECTIONS:
            _read_list(draft, value, _LIST_SECTIONS[key], (*path, key), source)
        elif _section_type(fields[key].annotation) is not None and value is not None:
            sub = section(draft, value, source)  # a section given as text or a list is an issue here
            if sub is not None:
                _read_model(draft, sub, _section_type(fields[key].annotation), (*path, key), source)
        else:
            draft.put((*path, key), value, source)


def _read_list(draft: Draft, value: Any, model: type[BaseModel], path: NativePath, source: str) -> None:
    if not isinstance(value, list):
        draft.issue(source, "must be a list", value)
        return
    if not value:
        draft.put(path, [], source)
    for i, item in enumerate(value):
        sub = section(draft, item, join(source, i))
        if sub is not None:
            draft.put((*path, i), {}, join(source, i))
            _read_model(draft, sub, model, (*path, i), join(source, i))


def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The Section class of a field typed `X` or `X | None`, else None (`list[X]` included)."""
    if get_origin(annotation) in (list, dict):
        return None
    candidates = getattr(annotation, "__args__", (annotation,))
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, Section):
            return candidate
    return None
