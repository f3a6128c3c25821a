"""What a dialect's option tables say about each option: honoured (mapped onto TrainSpec by `To`
or a handler), notice (`Ignored`: read, irrelevant here) or refused (`Unsupported`: an error
unless the value is the trainer's default or off); counted, and written out as a page.

`python -m lorapilot.spec.readers.tables --markdown > docs/dialect-options.md` regenerates the page
from every reader that exposes `TABLES`.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping, Sequence

from lorapilot.spec.draft import Ignored, Rule, To, Unsupported
from lorapilot.spec.readers import READERS

KINDS = ("honoured", "notice", "refused")
_INTRO = """# Options of the trainers' own configs

Every option a dialect's trainer documents, as `trainpilot validate` reads it: **honoured** (mapped
onto the TrainSpec field named, with the trainer's meaning), **notice** (read and ignored, with the
reason printed), or **refused** (an error naming the option, unless its value is off, empty or the
trainer's own default, which passes with a notice). Any other key is an "unknown key" error.

This page is generated from the readers' tables; do not edit it by hand. Regenerate it with
`python -m lorapilot.spec.readers.tables --markdown > docs/dialect-options.md`.
"""


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


def dialect_tables() -> dict[str, Mapping[str, Mapping[str, Rule]]]:
    """Each dialect whose reader exposes its option tables."""
    found = {}
    for name in READERS:
        module = sys.modules.get(READERS[name].read.__module__)
        tables = getattr(module, "TABLES", None)
        if tables:
            found[name] = tables
    return found


def markdown() -> str:
    parts = [_INTRO]
    for dialect, tables in dialect_tables().items():
        counts = census(tables)
        summary = ", ".join(f"{counts[k]} {k}" for k in KINDS)
        parts.append(f"\n## {dialect}\n\n{sum(counts.values())} options: {summary}.\n")
        for section, table in tables.items():
            parts.append(f"\n### `{section}`\n\n| option | read as | what happens |\n|---|---|---|\n")
            parts.extend(
                f"| `{key}` | {kind(rule)} | {_cell(_what(rule))} |\n" for key, rule in table.items()
            )
    return "".join(parts)


def _what(rule: Rule) -> str:
    if isinstance(rule, To):
        return "→ `" + ".".join(str(p) for p in rule.path if not isinstance(p, int)) + "`"
    if isinstance(rule, (Ignored, Unsupported)):
        return rule.reason
    doc = (getattr(rule, "__doc__", None) or "").strip().split("\n\n")[0]
    return " ".join(doc.split()) or "read with the options it depends on"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "\\<")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lorapilot.spec.readers.tables", description=__doc__)
    parser.add_argument("--markdown", action="store_true", required=True, help="print the options page")
    parser.parse_args(argv)
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
