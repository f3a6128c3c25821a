"""A partial TrainSpec as readers build it, and the key tables that drive them.

A reader walks the user's document with a table per section: each key is mapped onto a native
field (`To`), read and ignored with a notice (`Ignored`), refused (`Unsupported`), or handled by
a function. Keys that are not in the table are errors with a "did you mean". Every value put
into the draft remembers the user's field name, so later validation errors point at what the
user wrote, not at our internal names.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorapilot.spec.document import parse_value
from lorapilot.spec.issues import UNSET, Notice, SpecError, SpecIssue, did_you_mean
from lorapilot.workspace import PathEscapeError, Workspace, path_problem

NativePath = tuple[str | int, ...]
TRAINER_DEFAULTS = "trainer_defaults"  # hint: [(path, value, source)] a reader's trainer defaults


@dataclass
class Draft:
    """Native-shaped data (only what the user wrote) plus provenance, issues and notices."""

    file: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    origin: dict[NativePath, str] = field(default_factory=dict)
    issues: list[SpecIssue] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    # Reader-to-resolver facts that are not spec fields, e.g. a family guessed from a model name.
    hints: dict[str, Any] = field(default_factory=dict)
    # Where files that the config names (dataset TOML, prompt files) may be read from.
    workspace: Workspace | None = None

    def put(self, path: NativePath, value: Any, source: str) -> None:
        node: Any = self.data
        for i, key in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(key, int):
                while len(node) <= key:
                    node.append([] if isinstance(nxt, int) else {})  # `a[0][1]`: a list in a list
                node = node[key]
            else:
                node = node.setdefault(key, [] if isinstance(nxt, int) else {})
        last = path[-1]
        if isinstance(last, int):
            while len(node) <= last:
                node.append({})
        node[last] = value
        self.origin[path] = source

    def get(self, path: NativePath, default: Any = None) -> Any:
        node: Any = self.data
        for key in path:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                return default
        return node

    def referenced_file(self, value: Any, source: str) -> Path | None:
        """A file the config names: relative paths beside the config, absolute ones in the workspace.

        Anything else (`../..`, `/etc/...`) is an issue: a config must not make us read files
        that the web services would then show back to whoever submitted it.
        """
        if not isinstance(value, str) or not value.strip():
            self.issue(source, "must be a file path", value)
            return None
        if problem := path_problem(value):
            self.issue(source, problem, value)
            return None
        base = Path(self.file).resolve().parent if self.file else None
        raw = Path(value)
        try:
            if not raw.is_absolute() and base is not None:
                path = (base / raw).resolve()
                if base not in path.parents:
                    raise PathEscapeError(f"{value} leaves the config's folder")
                return path
            if self.workspace is None:
                raise PathEscapeError(f"{value} is not beside the config")
            return self.workspace.resolve(value)
        except PathEscapeError as exc:
            self.issue(source, str(exc), value, hint="keep it beside the config or under /workspace/")
            return None

    def issue(
        self,
        source: str,
        message: str,
        value: Any = UNSET,
        accepted: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.issues.append(SpecIssue(source, message, value, accepted, hint, self.file))

    def notice(self, source: str, message: str) -> None:
        self.notices.append(Notice(source, message))

    def default(self, path: NativePath, value: Any, source: str) -> None:
        """The source trainer's own default for `path`, used when no layer (profile, config,
        --set) sets it: a key the trainer's config leaves out means what the trainer does."""
        self.hints.setdefault(TRAINER_DEFAULTS, []).append((path, value, source))

    def with_defaults(self) -> Draft:
        """A copy with the trainer defaults filled in where nothing set the field."""
        out = copy.copy(self)
        out.data, out.origin = copy.deepcopy(self.data), dict(self.origin)
        for path, value, source in self.hints.get(TRAINER_DEFAULTS, ()):
            if out.get(path) is None:
                out.put(path, copy.deepcopy(value), source)
        return out


# -- rules ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class To:
    """Map the key onto a native field, converting the value first when `convert` is set."""

    path: NativePath
    convert: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Ignored:
    """Accepted, but irrelevant here; the reason is printed as a notice."""

    reason: str


@dataclass(frozen=True)
class Unsupported:
    """A real option of the dialect that LoRA Pilot does not do: an error that says so, but only
    when the value would change what is trained. Unset, off or empty values and the trainer's own
    default (`defaults`) pass with a notice."""

    reason: str
    defaults: tuple[Any, ...] = ()

    def is_neutral(self, value: Any) -> bool:
        if value is None or value is False or value in ([], {}, ""):
            return True
        return any((value == d and type(value) is type(d)) or _same_number(value, d) for d in self.defaults)


def _same_number(value: Any, default: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(value, numbers)
        and isinstance(default, numbers)
        and not isinstance(value, bool)
        and not isinstance(default, bool)
        and value == default
    )


Handler = Callable[[Draft, Any, str], None]
Rule = To | Ignored | Unsupported | Handler


def to_hint(key: str, what: str) -> Handler:
    """An option read once the whole document is known (it depends on others): kept in
    `draft.hints[key]` as (value, source); `what` says how, for the options page."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        draft.hints[key] = (value, source)

    handle.__doc__ = what
    return handle


def join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def apply_table(draft: Draft, mapping: Mapping[str, Any], table: Mapping[str, Rule], prefix: str) -> None:
    """Apply `table` to every key of `mapping`; `prefix` is the user's path to `mapping`."""
    for key, value in mapping.items():
        source = join(prefix, key)
        rule = table.get(key)
        if rule is None:
            draft.issue(source, "unknown key", hint=did_you_mean(key, table))
        elif isinstance(rule, To):
            apply_to(draft, rule, value, source)
        elif isinstance(rule, Ignored):
            draft.notice(source, f"ignored: {rule.reason}")
        elif isinstance(rule, Unsupported) and rule.is_neutral(value):
            draft.notice(source, f"ignored: {value!r} leaves it off (LoRA Pilot does not do {rule.reason})")
        elif isinstance(rule, Unsupported):
            draft.issue(source, f"not supported by LoRA Pilot: {rule.reason}", value)
        else:
            rule(draft, value, source)


def apply_to(draft: Draft, rule: To, value: Any, source: str) -> None:
    if rule.convert is not None:
        try:
            value = rule.convert(value)
        except (TypeError, ValueError) as exc:
            draft.issue(source, str(exc), value)
            return
    draft.put(rule.path, value, source)


def section(draft: Draft, value: Any, source: str) -> Mapping[str, Any] | None:
    """`value` if it is a mapping, else an issue and None."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        draft.issue(source, "must be a mapping of keys", value)
        return None
    return value


# -- value converters shared by readers -------------------------------------------------------
def as_resolutions(value: Any) -> list[int]:
    """512, "512", "512,768", [512, 768] or [[512, 512]] → sorted list of sides."""
    if isinstance(value, bool):
        raise ValueError("must be a number of pixels such as 512, or a list such as [512, 768]")
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace("x", ",").split(",") if p.strip()]
        try:
            sides = [int(p) for p in parts]
        except ValueError:
            raise ValueError('must be a number of pixels such as 512 or "512,512"') from None
        if len(sides) == 2 and sides[0] != sides[1]:
            return [int((sides[0] * sides[1]) ** 0.5) // 8 * 8]
        return sides[:1] if sides else []
    if isinstance(value, list):
        sides: list[int] = []
        for item in value:
            if isinstance(item, list) and len(item) == 2 and all(isinstance(v, int) for v in item):
                sides.append(int((item[0] * item[1]) ** 0.5) // 8 * 8)
            elif isinstance(item, int) and not isinstance(item, bool):
                sides.append(item)
            else:
                raise ValueError("each resolution must be a number of pixels such as 512")
        return sides
    raise ValueError("must be a number of pixels such as 512, or a list such as [512, 768]")


def one_of(spellings: Mapping[str, str], accepted: str | None = None) -> Callable[[Any], str]:
    """A converter from a dialect's spellings (matched case-insensitively) to TrainSpec values."""
    lowered = {key.lower(): value for key, value in spellings.items()}
    message = f"must be one of {accepted or ', '.join(spellings)}"

    def convert(value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in lowered:
            raise ValueError(message)
        return lowered[value.strip().lower()]

    return convert


def as_str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError("must be a string or a list of strings")


def as_kwargs(value: Any) -> dict[str, Any]:
    """kohya's `["key=value", ...]` / "k=v k=v", or a mapping → dict with YAML-typed values."""
    if isinstance(value, Mapping):
        return dict(value)
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError('must be a mapping or a list such as ["weight_decay=0.01"]')
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"{item!r} is not key=value")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = parse_value(raw.strip(), key.strip(), as_text=False) if raw.strip() else ""
        except SpecError as exc:  # YAML that cannot be read: a 5,000-digit number, `!!int x`
            raise ValueError(f"{key.strip()}: {exc.issues[0].message}") from None
    return out


# -- merging layers ---------------------------------------------------------------------------
# Setting the first field in a later layer removes these from earlier layers, because they
# described or contradicted the value being replaced (a new model has its own family; a new rank
# its own alpha; steps and epochs are two ways of saying one thing).
_REPLACES: dict[NativePath, tuple[NativePath, ...]] = {
    ("training", "max_steps"): (("training", "epochs"),),
    ("training", "epochs"): (("training", "max_steps"),),
    ("model", "path"): (("model", "family"), ("model", "source")),
    ("network", "dim"): (("network", "alpha"),),
    ("network", "conv_dim"): (("network", "conv_alpha"),),
}


def merge(base: Draft, over: Draft) -> Draft:
    """`over` on top of `base`: mappings merge, lists of mappings merge item by item up to the
    length of `over`'s list, everything else is replaced; see `_REPLACES` for coupled fields."""
    data = copy.deepcopy(base.data)
    origin = dict(base.origin)
    missing = object()
    for key, dependents in _REPLACES.items():
        if over.get(key, missing) is missing:
            continue
        for dep in dependents:
            parent = Draft(data=data).get(dep[:-1])
            if over.get(dep, missing) is missing and isinstance(parent, dict):
                parent.pop(dep[-1], None)
    data = _merge_values(data, over.data)
    origin.update(over.origin)
    return Draft(
        file=over.file or base.file,
        data=data,
        origin=origin,
        issues=base.issues + over.issues,
        notices=base.notices + over.notices,
        hints={**base.hints, **over.hints},
    )


def _merge_values(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge_values(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(over, list) and all(isinstance(v, dict) for v in over):
        return [
            _merge_values(base[i], item) if i < len(base) and isinstance(base[i], dict) else item
            for i, item in enumerate(copy.deepcopy(over))
        ]
    return copy.deepcopy(over)
