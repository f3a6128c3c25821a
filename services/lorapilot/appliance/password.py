"""The appliance password: from LORAPILOT_PASSWORD, else generated once into `config/password` (0600).

Every web service reads it through `appliance_password`; nothing else writes or logs it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from lorapilot.workspace import Workspace

ENV = "LORAPILOT_PASSWORD"
FILE_NAME = "password"
MIN_LENGTH = 8


class PasswordError(RuntimeError):
    """The configured password is unusable; the message says where it came from and the fix."""


@dataclass(frozen=True)
class AppliancePassword:
    value: str
    source: str  # "environment" or the file's path
    created: bool = False  # generated just now: the caller shows it once

    def __repr__(self) -> str:  # never print the secret by accident
        return f"AppliancePassword(source={self.source!r}, created={self.created})"


def appliance_password(workspace: Workspace, *, create: bool = False) -> AppliancePassword:
    """The password users log in with; with `create`, generate and store one when none exists."""
    from_env = os.environ.get(ENV, "")
    if from_env:
        if len(from_env) < MIN_LENGTH:
            raise PasswordError(f"{ENV} is shorter than {MIN_LENGTH} characters; choose a longer password")
        return AppliancePassword(from_env, "environment")
    path = workspace.config / FILE_NAME
    if path.is_file():
        value = path.read_text(encoding="utf-8").strip()
        if len(value) < MIN_LENGTH:
            raise PasswordError(f"{path} holds a password shorter than {MIN_LENGTH} characters")
        return AppliancePassword(value, str(path))
    if not create:
        raise PasswordError(f"no appliance password: set {ENV} or run the bootstrap to create {path}")
    value = secrets.token_urlsafe(18)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{FILE_NAME}.tmp")
    handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(value + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # fails if another process created it meanwhile: keep theirs
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        return appliance_password(workspace)
    tmp.unlink(missing_ok=True)
    return AppliancePassword(value, str(path), created=True)
