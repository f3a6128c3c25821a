"""Reading a config file into plain data, defensively.

Configs arrive from browsers and shared volumes: they may be empty, binary, huge, deeply nested
or YAML "billion laughs" bombs. Each of those becomes a `SpecError` naming the file, never a
traceback, a hang or an out-of-memory kill.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

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


# What the scalar tags' constructors can read. An explicit tag (`!!int ""`, `!!timestamp x`) skips
# YAML's implicit typing, and PyYAML's constructors then fail with whatever Python raises on the text.
_PATTERNS = {
    tag: pattern for kind in yaml.resolver.Resolver.yaml_implicit_resolvers.values() for tag, pattern in kind
}
_LONG_INTEGER = re.compile(r"[0-9][0-9_]*")
# Python's limit on the digits of an integer it converts to or from text (4300 unless changed).
MAX_DIGITS = sys.get_int_max_str_digits() or 4300
_MAX_INT_BITS = int(MAX_DIGITS * 3.32)  # the largest integers of MAX_DIGITS digits, roughly


def _is_float(text: str) -> bool:
    """What `!!float` reads: YAML 1.1's floats, or any text Python's float() reads (`!!float 1e-4`)."""
    if _PATTERNS["tag:yaml.org,2002:float"].match(text):
        return True
    try:
        float(text.replace("_", ""))
    except ValueError:
        return False
    return True


_READABLE: dict[str, tuple[str, Callable[[str], object]]] = {
    "tag:yaml.org,2002:int": ("integer", _PATTERNS["tag:yaml.org,2002:int"].match),
    "tag:yaml.org,2002:float": ("number", _is_float),
    "tag:yaml.org,2002:bool": ("boolean", _PATTERNS["tag:yaml.org,2002:bool"].match),
    "tag:yaml.org,2002:timestamp": ("date", yaml.SafeLoader.timestamp_regexp.match),
}


def _checked_scalar(tag: str) -> Callable[[yaml.SafeLoader, yaml.Node], Any]:
    """SafeLoader's constructor for `tag`, refusing text it cannot read (or a number longer than
    Python reads, or a date that does not exist) as a YAML error at the value's line."""
    construct = yaml.SafeLoader.yaml_constructors[tag]
    kind, readable = _READABLE[tag]

    def construct_checked(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            if not readable(node.value):
                raise ConstructorError(
                    None, None, f"{_clip(node.value)} is not a valid {kind}", node.start_mark
                )
            digits = max(map(_digits, _LONG_INTEGER.finditer(node.value)), default=0)
            if kind == "integer" and digits > MAX_DIGITS:
                raise ConstructorError(None, None, _too_many_digits(digits), node.start_mark)
        try:
            return construct(loader, node)
        except ValueError as exc:  # a date that does not exist (2024-02-30)
            problem = f"{_clip(node.value)} is not a valid {kind}: {exc}"
            raise ConstructorError(None, None, problem, node.start_mark) from None

    return construct_checked


def _digits(match: re.Match[str]) -> int:
    return len(match.group().replace("_", ""))


def _too_many_digits(digits: int) -> str:
    return f"an integer of {digits} digits; at most {MAX_DIGITS} digits are read"


def _clip(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


for _tag in _READABLE:
    _BoundedLoader.add_constructor(_tag, _checked_scalar(_tag))


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
    problem = shape_problem(data)
    if problem is not None:
        raise _fail(path, problem, "quote the key" if problem.startswith("key ") else None)
    return data


def parse_value(text: str, field: str, *, as_text: bool = True) -> Any:
    """One YAML value written as text (`--set key=VALUE`, kohya's `key=value` arguments), within a
    file's limits; text that is not YAML at all stays text when `as_text` (`--set output.name=a: b`)."""
    try:
        value = yaml.load(text, Loader=_BoundedLoader)
    except ConstructorError as exc:  # YAML, but a value that cannot be read (`!!int x`, 5,000 digits)
        raise SpecError([SpecIssue(field, f"cannot read the value: {exc.problem}", text)]) from None
    except yaml.YAMLError as exc:
        if as_text:
            return text
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([SpecIssue(field, f"cannot read the value: {problem}", text)]) from None
    except RecursionError:
        raise SpecError([SpecIssue(field, f"nesting deeper than {MAX_DEPTH} levels")]) from None
    problem = shape_problem(value)
    if problem is not None:
        raise SpecError([SpecIssue(field, problem)])
    return value


def load(path: Path) -> dict[str, Any]:
    return parse(read_text(path), path)


def _parse_toml(text: str, path: Path) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"invalid TOML: {exc}") from None
    except ValueError as exc:  # tomllib converts a number longer than Python reads, without a position
        longest = max(_LONG_INTEGER.finditer(text), key=_digits, default=None)
        if longest is None or _digits(longest) <= MAX_DIGITS:
            raise _fail(path, f"invalid TOML: {exc}") from None
        line = text.count("\n", 0, longest.start()) + 1
        raise _fail(path, f"invalid TOML (line {line}): {_too_many_digits(_digits(longest))}") from None
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


def shape_problem(data: Any) -> str | None:
    """What makes a parsed tree unusable, or None: too many values (shared, aliased nodes count every
    time they appear), too deep, a key that is not text, an integer too long to print."""
    budget = MAX_NODES
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    while stack:
        node, depth, where = stack.pop()
        budget -= 1
        if budget < 0:
            return f"more than {MAX_NODES} values once aliases are expanded; refusing"
        if depth > MAX_DEPTH:
            return f"nesting deeper than {MAX_DEPTH} levels"
        if isinstance(node, int) and node.bit_length() > _MAX_INT_BITS:
            return f"{where or 'a value'}: an integer of more than {MAX_DIGITS} digits"
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    long = isinstance(key, int) and key.bit_length() > _MAX_INT_BITS
                    return f"key {'(a long integer)' if long else repr(key)} is not text"
                stack.append((value, depth + 1, f"{where}.{key}" if where else key))
        elif isinstance(node, list):
            stack.extend((item, depth + 1, f"{where}[{i}]") for i, item in enumerate(node))
    return None
