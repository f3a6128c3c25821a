"""Reading a config file into plain data, defensively.

Configs arrive from browsers and shared volumes: they may be empty, binary, huge, deeply nested
or YAML "billion laughs" bombs. Each of those becomes a `SpecError` naming the file, never a
traceback, a hang or an out-of-memory kill.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from lorapilot.spec.issues import SpecError, SpecIssue

MAX_BYTES = 1 << 20  # 1 MiB: real training configs are a few KiB
MAX_ALIASES = 64  # YAML aliases allowed in one document
MAX_NODES = 50_000  # values after alias expansion
MAX_DEPTH = 32


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses documents with too many aliases (the billion-laughs shape)."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._alias_count = getattr(self, "_alias_count", 0) + 1
            if self._alias_count > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} YAML aliases; refusing a possible alias bomb")
        return super().compose_node(parent, index)


def _fail(path: Path, message: str, hint: str | None = None) -> SpecError:
    return SpecError([SpecIssue(field="(file)", message=message, hint=hint, file=str(path))])


def read_text(path: Path) -> str:
    """The file's text, refusing what cannot be a config."""
    try:
        if not path.is_file():
            raise _fail(path, "no such file" if not path.exists() else "not a regular file")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _fail(path, f"file is {size} bytes; configs larger than {MAX_BYTES} bytes are refused")
        raw = path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot read the file: {exc.strerror or exc}") from None
    if not raw.strip():
        raise _fail(path, "file is empty", "write a YAML or TOML training config")
    if b"\x00" in raw:
        raise _fail(path, "file is binary, not a YAML or TOML config")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(path, f"file is not UTF-8 text (byte {exc.start})") from None


def parse(text: str, path: Path) -> dict[str, Any]:
    """Parse YAML or TOML (chosen by extension, TOML first for `.toml`) into a mapping."""
    suffix = path.suffix.lower()
    data = _parse_toml(text, path) if suffix == ".toml" else _parse_yaml(text, path)
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "nothing"
        raise _fail(path, f"the top level must be a mapping of keys, found {kind}")
    _check_shape(data, path)
    return data


def load(path: Path) -> dict[str, Any]:
    return parse(read_text(path), path)


def _parse_toml(text: str, path: Path) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"invalid TOML: {exc}") from None
    except RecursionError:
        raise _fail(path, f"nesting deeper than {MAX_DEPTH} levels") from None


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise _fail(path, f"invalid YAML{line}: {problem}") from None
    except RecursionError:
        raise _fail(path, f"nesting deeper than {MAX_DEPTH} levels") from None


def _check_shape(data: Any, path: Path) -> None:
    """Walk the parsed tree with a budget: shared (aliased) nodes count every time they appear."""
    budget = MAX_NODES
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise _fail(path, f"more than {MAX_NODES} values once aliases are expanded; refusing")
        if depth > MAX_DEPTH:
            raise _fail(path, f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise _fail(path, f"key {key!r} is not text", "quote the key")
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
