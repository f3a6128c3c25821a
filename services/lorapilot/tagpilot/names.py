"""Names users give datasets and files: checked before they become paths.

Dataset names are refused when unsafe (the user picked them and should know); uploaded file names
are cleaned instead (they come from other machines and the user did not pick them here).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

from lorapilot.tagpilot.errors import InvalidNameError

_DATASET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_DOTS = re.compile(r"\.{2,}")


def check_dataset_name(name: object) -> str:
    """`name` if it is a usable dataset folder name, else InvalidNameError saying what is allowed."""
    if not isinstance(name, str) or not _DATASET.fullmatch(name) or ".." in name:
        raise InvalidNameError(
            f"dataset name {name!r} is not allowed: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def check_file_name(name: object) -> str:
    """`name` if it can name a file inside a dataset (no folders, no hidden files)."""
    if not isinstance(name, str) or not _FILE.fullmatch(name) or ".." in name:
        raise InvalidNameError(f"file name {name!r} is not allowed")
    return name


def clean_stem(original: str) -> str:
    """A safe file stem from an uploaded name: folders dropped, odd characters become '_'."""
    base = PurePosixPath(original.replace("\\", "/")).name
    stem = base.rsplit(".", 1)[0] if "." in base else base
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE_CHARS.sub("_", ascii_stem)
    cleaned = _DOTS.sub(".", cleaned).strip("._-")[:80]  # `..` in a name is refused by check_file_name
    return cleaned or "image"


def unsafe_archive_path(name: str) -> str | None:
    """Why a path inside an archive is unsafe, or None: absolute, drive letters, '..' parts."""
    normal = name.replace("\\", "/")
    if normal.startswith("/") or re.match(r"^[A-Za-z]:", normal):
        return "absolute path inside the archive"
    if any(part == ".." for part in normal.split("/")):
        return "'..' in the path inside the archive"
    if "\x00" in normal:
        return "NUL byte in the file name"
    return None
