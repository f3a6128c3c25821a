"""Reading a YAML settings file of the workspace (config/*.yaml) the same way everywhere: no file is
the defaults, and a file that cannot be read or parsed is an error naming it."""

from __future__ import annotations

from pathlib import Path

import yaml


def read_settings_yaml(path: Path, shown: str, error: type[Exception]) -> object | None:
    """The file's YAML, or None when there is no file or it is empty; `error(message)` otherwise,
    with the file spelt as `shown` (e.g. /workspace/config/idle.yaml)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{shown}: cannot be read ({exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{shown}: not valid YAML ({exc})") from None
