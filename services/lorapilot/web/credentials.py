"""The appliance password and the session-signing key: one secret file each in `<workspace>/config/`.

Several services start at once on first boot, so a secret is created with a link-into-place that
fails when another process won the race; the loser reads the winner's file. Neither secret is
ever logged.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from lorapilot.errors import LoraPilotError
from lorapilot.workspace import Workspace

logger = logging.getLogger(__name__)

ENV_PASSWORD = "LORAPILOT_PASSWORD"
PASSWORD_FILE = "password"
SESSION_KEY_FILE = "web-session-key"
MIN_PASSWORD_LENGTH = 8


class CredentialsError(LoraPilotError, RuntimeError):
    """A secret file exists but cannot be used (unreadable or empty)."""


def password_from_environment() -> str | None:
    """`$LORAPILOT_PASSWORD` when set; refuses one too short to protect anything."""
    value = os.environ.get(ENV_PASSWORD, "").strip()
    if value and len(value) < MIN_PASSWORD_LENGTH:
        raise CredentialsError(
            f"{ENV_PASSWORD} is shorter than {MIN_PASSWORD_LENGTH} characters; choose a longer password"
        )
    return value or None


def password_file(workspace: Workspace) -> Path:
    return workspace.config / PASSWORD_FILE


def create_password_file(workspace: Workspace) -> tuple[bool, str]:
    """(created, password) of config/password, generating it (0600) when missing."""
    return read_or_create_secret(password_file(workspace), lambda: secrets.token_urlsafe(15))


def appliance_password(workspace: Workspace) -> str:
    """`$LORAPILOT_PASSWORD`, else the password file in config/ (generated on first use)."""
    from_env = password_from_environment()
    if from_env:
        return from_env
    path = password_file(workspace)
    created, value = create_password_file(workspace)
    if created:
        logger.warning(
            "%s is not set: generated an appliance password into %s (owner-only); read it there "
            "or set %s to choose one",
            ENV_PASSWORD,
            path,
            ENV_PASSWORD,
        )
    return value


def session_key(workspace: Workspace) -> str:
    """The key that signs session cookies; shared by all services so one login serves them all."""
    return read_or_create_secret(workspace.config / SESSION_KEY_FILE, lambda: secrets.token_hex(32))[1]


def read_or_create_secret(path: Path, generate: Callable[[], str]) -> tuple[bool, str]:
    """(created, value) of a one-line secret file; creates it with mode 0600 when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = False
    if not path.exists():
        created = _create_exclusively(path, generate())
    _make_owner_only(path)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(f"cannot read {path} ({exc}); fix its owner or delete it") from exc
    if not value:
        raise CredentialsError(f"{path} is empty; write a secret into it or delete it to regenerate")
    return created, value


def _create_exclusively(path: Path, value: str) -> bool:
    """Write `value` to a private temp file and link it into place; False if another process did first."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _make_owner_only(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning("%s was readable by others (mode %o); setting it to 0600", path, mode)
        path.chmod(0o600)
