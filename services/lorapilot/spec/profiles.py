"""Named presets (`quick_test`, `regular`, …) that user configs are merged over.

A profile is a partial spec in LoRA Pilot's own dialect. The workspace's `config/profiles/`
wins over the presets shipped in the package, so users can edit or add their own.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from lorapilot.spec.issues import SpecError, SpecIssue, did_you_mean
from lorapilot.workspace import Workspace

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def shipped_dir() -> Path:
    return Path(str(resources.files("lorapilot") / "profiles"))


def available(workspace: Workspace) -> list[str]:
    names = {p.stem for p in shipped_dir().glob("*.yaml")}
    if workspace.profiles.is_dir():
        names |= {p.stem for p in workspace.profiles.glob("*.yaml")}
    return sorted(names)


def profile_path(name: str, workspace: Workspace) -> Path:
    """The file of profile `name`; a clear error when there is none."""
    if not _NAME.match(name):
        raise SpecError([SpecIssue("profile", "not a profile name (letters, digits, _ and -)", name)])
    for folder in (workspace.profiles, shipped_dir()):
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    names = available(workspace)
    raise SpecError(
        [
            SpecIssue(
                "profile", "no such profile", name, accepted=", ".join(names), hint=did_you_mean(name, names)
            )
        ]
    )
