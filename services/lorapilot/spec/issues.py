"""What a config reader reports: errors that stop a run, notices that do not."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from lorapilot.errors import LoraPilotError

UNSET: Any = object()  # the value of an issue that names none (a missing or unknown key)


@dataclass(frozen=True)
class SpecIssue:
    """One problem with one field, phrased so the user can fix it without reading code."""

    field: str
    message: str
    value: Any = UNSET
    accepted: str | None = None
    hint: str | None = None
    file: str | None = None

    def render(self) -> str:
        where = f"{self.file}: " if self.file else ""
        lines = [f"{where}{self.field}: {self.message}"]
        if self.value is not UNSET:
            lines.append(f"    found:    {_short(self.value)}")
        if self.accepted:
            lines.append(f"    accepted: {self.accepted}")
        if self.hint:
            lines.append(f"    hint:     {self.hint}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Notice:
    """An option that was read but does not change training here (logging folders, worker counts)."""

    field: str
    message: str

    def render(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass
class SpecError(LoraPilotError):
    """Every problem found in a config, reported together so one edit fixes them all."""

    issues: list[SpecIssue] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in the training config:"
        return "\n".join([head, *(issue.render() for issue in self.issues)])


def validation_issues(exc: ValidationError, *, prefix: str = "", file: str | None = None) -> list[SpecIssue]:
    """pydantic's errors as SpecIssues naming each field the way a file spells it (`a.b[0].c`)."""
    return [
        issue_of(error, field_path(error["loc"], prefix), file=file)
        for error in exc.errors(include_url=False)
    ]


def issue_of(error: ErrorDetails, field: str, *, file: str | None = None) -> SpecIssue:
    """One pydantic error as a SpecIssue on `field` (the user's name for it): `required`, `unknown key`,
    or pydantic's message with the value found and what is accepted."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return SpecIssue(field, "unknown key", file=file)
    if kind == "missing":
        return SpecIssue(field, "required", file=file)
    value = error.get("input", UNSET)
    if kind == "value_error" and isinstance(value, dict):
        value = UNSET  # a cross-field rule of a whole section: the section is not a useful "found"
    message = str(error["msg"]).removeprefix("Value error, ")
    return SpecIssue(field, message, value, accepted=_accepted(error), file=file)


def field_path(loc: Sequence[int | str], prefix: str = "") -> str:
    """`("datasets", 0, "folder")` → `datasets[0].folder`; an empty location is the whole file."""
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f"{'.' if path else ''}{part}"
    return path or "(file)"


def _accepted(error: ErrorDetails) -> str | None:
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        return str(ctx["expected"])
    bounds = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    parts = [f"{sign} {ctx[key]}" for key, sign in bounds.items() if key in ctx]
    if parts:
        return "a number " + " and ".join(parts)
    if "min_length" in ctx:
        return f"at least {ctx['min_length']} item(s)"
    return None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean" hint for a near-miss key, or None when nothing is close."""
    pool = sorted(set(candidates))
    matches = difflib.get_close_matches(word, pool, n=3, cutoff=0.75)
    if not matches:
        lowered = {c.lower().replace("-", "_"): c for c in pool}
        key = word.lower().replace("-", "_")
        matches = [lowered[key]] if key in lowered else []
    if not matches:
        return None
    return "did you mean " + " or ".join(repr(m) for m in matches) + "?"


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
