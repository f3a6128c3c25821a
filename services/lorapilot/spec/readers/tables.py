"""What a dialect's option tables say about each option, counted: honoured (mapped onto TrainSpec
by `To` or a handler), notice (`Ignored`: read, irrelevant here) or refused (`Unsupported`: an
error unless the value is the trainer's default or off)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from lorapilot.spec.draft import Ignored, Rule, Unsupported

KINDS = ("honoured", "notice", "refused")


def kind(rule: Rule) -> str:
    if isinstance(rule, Ignored):
        return "notice"
    if isinstance(rule, Unsupported):
        return "refused"
    return "honoured"


def census(tables: Mapping[str, Mapping[str, Rule]]) -> dict[str, int]:
    """Rows per kind over every section table of a dialect."""
    counts = Counter(kind(rule) for table in tables.values() for rule in table.values())
    return {name: counts.get(name, 0) for name in KINDS}
