"""What each TrainSpec field means, read from the pydantic models themselves.

`trainpilot validate --explain FIELD` and docs/config-reference.md are both made here, from each
field's type, default, constraints and description, so neither can drift from the spec. Regenerate
the reference with `python -m lorapilot.spec.explain --markdown > docs/config-reference.md`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from lorapilot.errors import LoraPilotError
from lorapilot.spec.issues import did_you_mean
from lorapilot.spec.model import TrainSpec

_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))  # pydantic's constraint objects


class UnknownFieldError(LoraPilotError, LookupError):
    """`--explain` was given a name that is no field of the spec."""


@dataclass(frozen=True)
class FieldDoc:
    """One field as a user writes it: `training.learning_rate`, `datasets.bucket.step`."""

    path: str
    type: str
    default: str
    accepted: str | None
    description: str
    section: type[BaseModel] | None  # the model of a field that holds more fields

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def field_docs(model: type[BaseModel] = TrainSpec, prefix: str = "") -> list[FieldDoc]:
    """Every field of `model` and of the sections inside it, in the order they are declared."""
    found = []
    for name, info in model.model_fields.items():
        doc = _field_doc(f"{prefix}{name}", info)
        found.append(doc)
        if doc.section is not None:
            found += field_docs(doc.section, f"{doc.path}.")
    return found


def sections() -> list[FieldDoc | None]:
    """The top level (None) and then every section, in declaration order."""
    return [None, *(doc for doc in field_docs() if doc.section is not None)]


def section_fields(section: FieldDoc | None) -> list[FieldDoc]:
    """The fields directly inside `section` (None: the top level)."""
    model = TrainSpec if section is None else section.section
    prefix = "" if section is None else f"{section.path}."
    return [_field_doc(f"{prefix}{name}", info) for name, info in model.model_fields.items()]


def lookup(name: str) -> FieldDoc:
    """The field `name` names; `datasets[].folder` and `datasets[0].folder` mean `datasets.folder`."""
    path = re.sub(r"\[\d*\]", "", name.strip())
    docs = {doc.path: doc for doc in field_docs()}
    if path in docs:
        return docs[path]
    raise UnknownFieldError(f"{name!r} is not a field of the training spec; {_suggestion(path, docs)}")


def explain(name: str) -> str:
    """The text `trainpilot validate --explain NAME` prints: a field, or a section's fields."""
    doc = lookup(name)
    lines = [doc.path, f"  type:     {doc.type}", f"  default:  {doc.default}"]
    if doc.accepted:
        lines.append(f"  accepted: {doc.accepted}")
    lines.append(f"  meaning:  {doc.description}")
    if doc.section is not None:
        fields = section_fields(doc)
        width = max(len(f.path) for f in fields)
        lines += ["", "fields:", *(f"  {f.path:<{width}}  {f.description}" for f in fields)]
    return "\n".join(lines)


def _suggestion(path: str, docs: dict[str, FieldDoc]) -> str:
    hint = did_you_mean(path, list(docs))
    if hint is not None:
        return hint
    # A bare or misspelt field name (learnig_rate): the fields of the nearest name, in any section.
    near = difflib.get_close_matches(
        path.rsplit(".", 1)[-1], {doc.name for doc in docs.values()}, cutoff=0.75
    )
    paths = [p for p, doc in docs.items() if doc.name in near]
    if paths:
        return "did you mean " + " or ".join(map(repr, paths)) + "?"
    return "`trainpilot validate --explain SECTION` lists a section's fields (e.g. training)"


# -- one field ---------------------------------------------------------------------------------------
def _field_doc(path: str, info: FieldInfo) -> FieldDoc:
    section = _section_model(info.annotation)
    return FieldDoc(
        path=path,
        type=_type_name(info.annotation),
        default=_default(info, section),
        accepted=_accepted(info),
        description=info.description or "",
        section=section,
    )


def _parts(annotation: Any) -> tuple[list[Any], bool]:
    """The members of a union and whether None (unset) is one of them."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = list(typing.get_args(annotation))
        return [m for m in members if m is not type(None)], type(None) in members
    return [annotation], False


def _section_model(annotation: Any) -> type[BaseModel] | None:
    members, _ = _parts(annotation)
    for member in members:
        for candidate in (member, *typing.get_args(member)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                return candidate
    return None


def _type_name(annotation: Any) -> str:
    members, optional = _parts(annotation)
    name = " or ".join(_one_type(m) for m in members)
    return f"{name}, optional" if optional else name


def _one_type(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return _one_type(type(args[0]))
    if origin is list:
        return f"list of {_one_type(args[0])}s"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
        getattr(annotation, "__name__", str(annotation)), str(annotation)
    )


def _default(info: FieldInfo, section: type[BaseModel] | None) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        if section is not None:
            return "its fields' defaults"
        return _value(info.default_factory())
    return _value(info.default)


def _value(value: Any) -> str:
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, str):
        return value or '""'
    return json.dumps(value)


def _accepted(info: FieldInfo) -> str | None:
    members, optional = _parts(info.annotation)
    choices = [a for m in members if typing.get_origin(m) is Literal for a in typing.get_args(m)]
    parts = []
    if choices:
        parts.append("one of " + ", ".join(str(c) for c in choices))
    bounds = [
        f"{sign} {getattr(item, attr)}"
        for item in info.metadata
        for attr, sign in _BOUNDS
        if getattr(item, attr, None) is not None
    ]
    if bounds:
        parts.append(" and ".join(bounds))
    for item in info.metadata:
        if getattr(item, "multiple_of", None) is not None:
            parts.append(f"a multiple of {item.multiple_of}")
        if getattr(item, "min_length", None) is not None:
            parts.append(f"at least {item.min_length} item(s)")
    if not parts:
        return None
    return ", ".join(parts) + (" (or unset)" if optional else "")


# -- the reference page ------------------------------------------------------------------------------
INTRO = """\
# Training config reference

LoRA Pilot trains from one config shape, the TrainSpec, listed here section by section. Configs
come in several dialects — the kohya-ss YAML of the guide, kohya's training-args and dataset TOML,
an ai-toolkit `job: extension` YAML, a diffusion-pipe main and dataset TOML, a profile — and
mapping each dialect's keys onto these fields is `trainpilot validate`'s job:
`trainpilot validate FILE` reads the file in its own dialect and prints the TrainSpec it becomes,
or every key it could not place, with the fix (an unknown key gets a "did you mean"). A TrainSpec
written out as `validate` prints it (`spec_version: 1`) is read as it is.

`trainpilot validate --explain FIELD` prints one field (`training.learning_rate`,
`datasets.folder`) and `--explain SECTION` lists a section's fields (`--explain training`).
Dataset fields belong to each entry of the `datasets` list. "unset" means the field is left out
(null); its description says what is used then.

This page is generated from the spec itself (`lorapilot.spec.explain`); do not edit it by hand.
Regenerate it with `python -m lorapilot.spec.explain --markdown > docs/config-reference.md`.
"""
_NOT_VALUES = ("required", "unset", "its fields' defaults")


def reference_markdown() -> str:
    """docs/config-reference.md: every section, and every field with type, default and meaning."""
    blocks = [INTRO]
    for section in sections():
        title = "Top level" if section is None else f"`{section.path}`"
        blocks.append(f"## {title}\n")
        if section is not None:
            text = section.description[:1].upper() + section.description[1:]
            blocks.append(f"{text}. {_section_note(section)}\n")
        rows = ["| field | type | default | accepted | description |", "|---|---|---|---|---|"]
        for doc in section_fields(section):
            default = doc.default if doc.default in _NOT_VALUES else f"`{doc.default}`"
            cells = (f"`{doc.path}`", doc.type, default, doc.accepted or "", doc.description)
            rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        blocks.append("\n".join(rows) + "\n")
    return "\n".join(blocks)


def _cell(text: str) -> str:
    """Table-safe: a `|` would end the cell and `<name>` would read as an HTML tag."""
    if text.startswith("`"):
        return text.replace("|", "\\|")
    return text.replace("|", "\\|").replace("<", "\\<")


def _section_note(section: FieldDoc) -> str:
    if section.type.startswith("list of"):
        return f"A list; each entry has these fields (`{section.path}.FIELD` in `--explain`)."
    if section.type.endswith("optional"):
        return "Optional: leave the section out to turn it off."
    return "Every field has a default unless it says required."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lorapilot.spec.explain", description=__doc__)
    parser.add_argument("--markdown", action="store_true", required=True, help="print the config reference")
    parser.parse_args(argv)
    sys.stdout.write(reference_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
