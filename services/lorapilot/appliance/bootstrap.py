"""First-start set-up of a workspace volume: the layout, the skeleton's files, the password.

Idempotent by construction: files are copied only where nothing exists, so a second run changes
nothing, and files a user placed or edited are never touched.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lorapilot.web.credentials import create_password_file, password_file, password_from_environment
from lorapilot.workspace import Workspace

log = logging.getLogger(__name__)
SKELETON_ENV = "LORAPILOT_SKELETON"


@dataclass(frozen=True)
class AppliancePassword:
    value: str
    source: str  # "environment" or the file's path
    created: bool = False  # generated just now: the caller shows it once

    def __repr__(self) -> str:  # never print the secret by accident
        return f"AppliancePassword(source={self.source!r}, created={self.created})"


@dataclass
class BootstrapReport:
    created: list[Path] = field(default_factory=list)
    password: AppliancePassword | None = None


def skeleton_dir() -> Path:
    """`$LORAPILOT_SKELETON` (the image sets it), else the checkout's `workspace_skel/`."""
    configured = os.environ.get(SKELETON_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "workspace_skel"


def bootstrap(workspace: Workspace, skeleton: Path | None = None) -> BootstrapReport:
    skeleton = skeleton or skeleton_dir()
    if not skeleton.is_dir():
        raise FileNotFoundError(f"workspace skeleton not found at {skeleton}; set {SKELETON_ENV}")
    report = BootstrapReport()
    existed = {p for p in workspace.directories() if p.exists()}
    workspace.ensure()
    report.created += [p for p in workspace.directories() if p not in existed]
    for source in sorted(skeleton.rglob("*")):
        relative = source.relative_to(skeleton)
        target = workspace.root / relative
        if source.is_dir():
            if not target.exists():
                target.mkdir(parents=True)
                report.created.append(target)
            continue
        if target.exists() or target.is_symlink() or source.name == ".keep":
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.bootstrap")
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, target)  # never replaces a file that appeared meanwhile
            report.created.append(target)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    report.password = settle_password(workspace)
    return report


def settle_password(workspace: Workspace) -> AppliancePassword:
    """The environment's password, else config/password, generated now if there is none."""
    from_env = password_from_environment()
    if from_env:
        return AppliancePassword(from_env, "environment")
    created, value = create_password_file(workspace)
    return AppliancePassword(value, str(password_file(workspace)), created)
