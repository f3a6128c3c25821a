"""Reading a safetensors file's JSON header (tensor names, shapes and `__metadata__`) without its
tensors: what telling a model's family and showing a LoRA's training metadata need."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit; a larger claim is a damaged file


class HeaderError(ValueError):
    """A file whose safetensors header cannot be read; the message says why, without the path."""


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor entries and `__metadata__`), read without tensors."""
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise HeaderError("shorter than a safetensors header; the file is empty or truncated")
        (length,) = struct.unpack("<Q", prefix)
        size = path.stat().st_size
        if length > MAX_HEADER_BYTES:
            raise HeaderError(
                f"its header claims {length} bytes (the limit is {MAX_HEADER_BYTES}); "
                "it is damaged or not a safetensors file"
            )
        if length > size - 8:
            raise HeaderError(
                f"its header claims {length} bytes but the file has {size}; it is truncated "
                "or not a safetensors file"
            )
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HeaderError(f"its header is not JSON ({exc}); the file is damaged") from None
    if not isinstance(header, dict):
        raise HeaderError("its header is not a JSON object; the file is damaged")
    return header


def tensor_names(header: dict[str, Any]) -> list[str]:
    return [key for key in header if key != "__metadata__"]


def lora_file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as a LoRA file (header only), or None when it can."""
    if not path.is_file():
        return "LoRA file not found" if not path.exists() else "not a file"
    if path.suffix.lower() not in (".safetensors", ".sft"):
        return "not a .safetensors LoRA file"
    try:
        names = tensor_names(read_header(path))
    except (OSError, HeaderError) as exc:
        return f"unreadable: {exc}"
    if not any("lora" in name.lower() for name in names):
        return "holds no LoRA layers (no lora_A/lora_B or lora_down/lora_up tensors)"
    return None
