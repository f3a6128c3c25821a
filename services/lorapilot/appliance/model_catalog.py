"""The model catalog: base models a user pulls by name instead of knowing hub repos and ComfyUI folders.

The shipped manifest (`model_catalog.yaml` beside this module) lists the bases of every family; a
user adds or overrides entries under `catalog:` in `config/models.yaml` (the file that also holds the
Models page's registered `paths:`). Every entry is checked here, so a bad one is refused naming the
file, the entry and the field, before anything is downloaded.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lorapilot import families
from lorapilot.errors import LoraPilotError
from lorapilot.workspace import Workspace

SHIPPED = "model_catalog.yaml"
USER_KEY = "catalog"  # the list of entries in config/models.yaml
# Where pulled files go (models/<folder>/): the folders ComfyUI reads each kind of file from
Folder = Literal["checkpoints", "diffusion_models", "text_encoders", "vae", "diffusers"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
USER_EXAMPLE = (
    "catalog:\n  - {name: my-sdxl, family: sdxl, folder: checkpoints, repo: owner/name, "
    "filename: model.safetensors, size_bytes: 6938078334}"
)


class CatalogError(LoraPilotError):
    """A catalog file that cannot be used, or a name no entry has; the message names the fix."""


class CatalogEntry(BaseModel):
    """One pullable model: a single file of a hub repo, or (folder `diffusers`) a whole pipeline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=80)
    family: str
    description: str = ""
    folder: Folder
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    filename: str | None = None  # the file's path in the repo; None for a diffusers pipeline
    revision: str = Field("main", pattern=r"^[\w.-]+$")
    size_bytes: int = Field(gt=0)
    size_is_estimate: bool = False  # a pipeline's total, not one file's exact size
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    gated: bool = False  # the licence must be accepted on the hub, and a token given
    license: str | None = None
    comfy: dict[str, str] = Field(default_factory=dict)  # family -> the comfy.yaml base input it fills
    source: str = "shipped"  # shipped, or the user's file (set by the loader)

    @field_validator("family")
    @classmethod
    def _family(cls, value: str) -> str:
        if families.find(value) is None:
            raise ValueError(f"unknown family {value!r}; known: {', '.join(families.ids())}")
        return value

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = PurePosixPath(value)
        if value.startswith("/") or ".." in path.parts or "\\" in value or not path.name:
            raise ValueError(f"the file's path inside the repo, e.g. model.safetensors; found {value!r}")
        return value

    @field_validator("comfy")
    @classmethod
    def _comfy(cls, value: dict[str, str]) -> dict[str, str]:
        for family_id, key in value.items():
            family = families.find(family_id)
            if family is None:
                raise ValueError(f"unknown family {family_id!r}; known: {', '.join(families.ids())}")
            if key not in family.comfy.files:
                raise ValueError(
                    f"{family_id} takes no {key!r}; its base files: {', '.join(family.comfy.files)}"
                )
        return value

    @model_validator(mode="after")
    def _shape(self) -> CatalogEntry:
        if self.folder == "diffusers" and (self.filename or self.comfy):
            raise ValueError("a diffusers entry is a whole repo: leave out filename and comfy")
        if self.folder != "diffusers" and not self.filename:
            raise ValueError(f"filename: which file of {self.repo} to put in models/{self.folder}/")
        return self

    @property
    def target_name(self) -> str:
        """The file's (or pipeline folder's) name in models/<folder>/."""
        return PurePosixPath(self.filename).name if self.filename else self.name

    def target(self, ws: Workspace) -> Path:
        return ws.model_folder(self.folder) / self.target_name


class Catalog(BaseModel):
    """A catalog file: `entries:` (shipped) or `catalog:` (the user's config/models.yaml)."""

    model_config = ConfigDict(extra="forbid")

    entries: list[CatalogEntry]


def shipped_entries() -> list[CatalogEntry]:
    text = (resources.files("lorapilot.appliance") / SHIPPED).read_text(encoding="utf-8")
    return _parse(yaml.safe_load(text), "entries", f"lorapilot/appliance/{SHIPPED}", "shipped")


def user_entries(ws: Workspace) -> list[CatalogEntry]:
    """The `catalog:` entries of config/models.yaml ([] without the file or the key)."""
    path = ws.models_config
    shown = ws.display(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{shown} cannot be read ({exc}); fix or remove it") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{shown} is not valid YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise CatalogError(f"{shown} must be a mapping with paths: and catalog: lists, e.g.\n{USER_EXAMPLE}")
    if data.get(USER_KEY) is None:
        return []
    return _parse(data, USER_KEY, shown, shown)


def load(ws: Workspace) -> list[CatalogEntry]:
    """Every entry, shipped first; a user entry with a shipped entry's name replaces it."""
    by_name = {entry.name: entry for entry in shipped_entries()}
    for entry in user_entries(ws):
        by_name[entry.name] = entry
    return list(by_name.values())


def find(ws: Workspace, name: str) -> CatalogEntry:
    entries = load(ws)
    for entry in entries:
        if entry.name == name:
            return entry
    names = ", ".join(entry.name for entry in entries)
    raise CatalogError(f"no catalog entry {name!r}; the catalog has: {names}")


def _parse(data: Any, key: str, shown: str, source: str) -> list[CatalogEntry]:
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise CatalogError(f"{shown}: {key} must be a list of entries, e.g.\n{USER_EXAMPLE}")
    entries, problems = [], []
    for index, item in enumerate(items):
        label = f"{key}[{index}]" + (
            f" ({item['name']})" if isinstance(item, dict) and "name" in item else ""
        )
        if not isinstance(item, dict):
            problems.append(
                f"{label}: an entry is a mapping of name, family, folder, repo, … ; found {item!r}"
            )
            continue
        try:
            entries.append(CatalogEntry.model_validate({**item, "source": source}))
        except ValidationError as exc:
            problems += [f"{label}.{_where(error['loc'])}: {_message(error)}" for error in exc.errors()]
    names = [entry.name for entry in entries]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        problems.append(f"{key}: the name(s) {', '.join(twice)} appear more than once; each name once")
    if problems:
        raise CatalogError(f"{shown}: " + "; ".join(problems))
    return entries


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "entry"


def _message(error: dict[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown field; accepted: {', '.join(f for f in CatalogEntry.model_fields if f != 'source')}"
    if error["type"] == "string_pattern_mismatch" and error["loc"][-1:] == ("name",):
        return "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"
    return message
