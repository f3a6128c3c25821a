"""What a config reader reports: errors that stop a run, notices that do not."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lorapilot.errors import LoraPilotError

_UNSET: Any = object()


@dataclass(frozen=True)
class SpecIssue:
    """One problem with one field, phrased so the user can fix it without reading code."""

    field: str
    message: str
    value: Any = _UNSET
    accepted: str | None = None
    hint: str | None = None
    file: str | None = None

    def render(self) -> str:
        where = f"{self.file}: " if self.file else ""
        lines = [f"{where}{self.field}: {self.message}"]
        if self.value is not _UNSET:
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
