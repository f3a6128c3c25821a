"""Reading a training config the way every entry point does: file → dialect → layers → TrainSpec.

Layers, later ones winning: profile, `--dataset`, the config file (its file name names the run
unless it says otherwise), `--name`, `--set key=value`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorapilot.spec import document, profiles
from lorapilot.spec.draft import Draft, merge
from lorapilot.spec.issues import Notice, SpecError, SpecIssue
from lorapilot.spec.model import TrainSpec
from lorapilot.spec.preflight import preflight
from lorapilot.spec.readers import DIALECTS, READERS, detect_dialect
from lorapilot.spec.resolve import finalize
from lorapilot.workspace import Workspace


@dataclass
class LoadedSpec:
    spec: TrainSpec
    dialect: str | None
    notices: list[Notice] = field(default_factory=list)


def read_config(
    path: Path, dialect: str | None = None, workspace: Workspace | None = None
) -> tuple[Draft, str]:
    """Parse one config file in its dialect (detected unless given) into a draft."""
    doc = document.load(path)
    if dialect is not None and dialect not in READERS:
        raise SpecError([SpecIssue("--dialect", "unknown dialect", dialect, accepted=", ".join(DIALECTS))])
    chosen = dialect or detect_dialect(doc)
    if chosen is None:
        raise SpecError(
            [
                SpecIssue(
                    "(file)",
                    "cannot tell which trainer this config is for",
                    file=str(path),
                    accepted=", ".join(DIALECTS),
                    hint="pass --dialect, or check the top-level keys for typos",
                )
            ]
        )
    draft = Draft(file=str(path), workspace=workspace)
    READERS[chosen].read(doc, draft)
    return draft, chosen


def read_profile(name: str, workspace: Workspace) -> Draft:
    path = profiles.profile_path(name, workspace)
    draft, _ = read_config(path, dialect="lorapilot", workspace=workspace)
    return draft


def parse_override(text: str) -> Draft:
    """`training.max_steps=50` or `datasets[0].repeats=3` as a one-value draft."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError([SpecIssue("--set", "must be key=value, e.g. training.max_steps=50", text)])
    path: list[str | int] = []
    for part in key.strip().split("."):
        name, _, rest = part.partition("[")
        if not name:
            raise SpecError([SpecIssue("--set", "not a field path", key)])
        path.append(name)
        for index in filter(None, rest.replace("]", "").split("[")) if rest else []:
            if not re.fullmatch(r"[0-9]{1,3}", index):  # the draft grows the list up to the index
                raise SpecError([SpecIssue("--set", "list index must be a number below 1000", key)])
            path.append(int(index))
    value: Any = document.parse_value(raw, f"--set {key.strip()}") if raw.strip() else ""
    draft = Draft()
    draft.put(tuple(path), value, f"--set {key.strip()}")
    return draft


def load_spec(
    path: Path | None = None,
    *,
    dialect: str | None = None,
    profile: str | None = None,
    dataset: str | None = None,
    name: str | None = None,
    overrides: Sequence[str] = (),
    workspace: Workspace | None = None,
) -> LoadedSpec:
    """Build the TrainSpec for a run; raises SpecError naming every problem found."""
    ws = workspace or Workspace.from_env()
    layers: list[Draft] = []
    issues: list[SpecIssue] = []
    chosen = None
    for make in (
        (lambda: read_profile(profile, ws)) if profile else None,
        (lambda: _one(("datasets", 0, "folder"), dataset, "--dataset")) if dataset else None,
        (lambda: _one(("output", "name"), _name_from(path), "the config's file name")) if path else None,
        (lambda: read_config(path, dialect, ws)) if path is not None else None,
        (lambda: _one(("output", "name"), name, "--name")) if name else None,
        *((lambda text=text: parse_override(text)) for text in overrides),
    ):
        if make is None:
            continue
        try:
            result = make()
        except SpecError as exc:
            issues.extend(exc.issues)
            continue
        if isinstance(result, tuple):
            result, chosen = result
        layers.append(result)
    if issues:
        raise SpecError(issues)
    merged = Draft()
    for layer in layers:
        merged = merge(merged, layer)
    spec = finalize(merged, ws)
    return LoadedSpec(spec=spec, dialect=chosen, notices=merged.notices + preflight(spec))


def spec_from_data(data: Mapping[str, Any], workspace: Workspace, *, file: str | None = None) -> TrainSpec:
    """A TrainSpec from data in LoRA Pilot's own dialect that did not come from a config file (a job
    file's `spec:`), checked exactly as a config is: every path must be inside the workspace."""
    draft = Draft(file=file, workspace=workspace)
    READERS["lorapilot"].read(data, draft)
    return finalize(draft, workspace)


def _name_from(path: Path) -> str:
    """A run name from a config's file name, for configs that do not name their run."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._-")
    return stem or "lora"


def _one(native: tuple, value: str, source: str) -> Draft:
    draft = Draft()
    draft.put(native, value, source)
    return draft
