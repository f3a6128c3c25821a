"""The registry every layer asks about model families (peft's `register_peft_method`, for families).

Families register once, in `lorapilot.families.builtin`; the order of registration is the order
people see them in (SD1.5 first), and recognition asks the newest first, so a family may refine
an earlier one.
"""

from __future__ import annotations

from lorapilot.errors import LoraPilotError
from lorapilot.families.family import Family

# Where another trainer's config names a family, as keys of `Family.aliases`.
AITOOLKIT_ARCH = "ai-toolkit model.arch"
AITOOLKIT_FLAG = "ai-toolkit model flag"  # legacy booleans: is_xl, is_v2, …
DIFFUSION_PIPE_TYPE = "diffusion-pipe model.type"
KOHYA_FLAG = "kohya flag"  # true/false options that pick sd-scripts' model: sdxl, v2
KOHYA_COMPONENT = "kohya component argument"  # file arguments only one family's script takes
DIALECT_NAMES = (AITOOLKIT_ARCH, AITOOLKIT_FLAG, DIFFUSION_PIPE_TYPE, KOHYA_FLAG, KOHYA_COMPONENT)

_FAMILIES: dict[str, Family] = {}


class UnknownFamilyError(LoraPilotError, ValueError):
    """A family id that no registered family has."""


def register(family: Family) -> Family:
    """Add a family; its id must be new, and its aliases must name dialects the readers know."""
    if family.id in _FAMILIES:
        raise ValueError(f"family {family.id!r} is registered twice")
    unknown = set(family.aliases) - set(DIALECT_NAMES)
    if unknown:
        raise ValueError(f"family {family.id!r}: aliases for unknown dialect keys {sorted(unknown)}")
    _FAMILIES[family.id] = family
    return family


def get(family_id: str) -> Family:
    try:
        return _FAMILIES[family_id]
    except (KeyError, TypeError):
        raise UnknownFamilyError(
            f"unknown model family {family_id!r}; known: {', '.join(_FAMILIES)}"
        ) from None


def find(family_id: object) -> Family | None:
    """The family with this id, or None (for values read from files that may hold anything)."""
    return _FAMILIES.get(family_id) if isinstance(family_id, str) else None


def all_families() -> tuple[Family, ...]:
    """Every family, in the order people see them."""
    return tuple(_FAMILIES.values())


def ids() -> tuple[str, ...]:
    return tuple(_FAMILIES)


def newest_first() -> tuple[Family, ...]:
    """The order recognition asks in: a later family may refine an earlier one."""
    return tuple(reversed(_FAMILIES.values()))


def where(**facts: object) -> tuple[Family, ...]:
    """The families whose attributes equal `facts`, e.g. `where(flow=True)`."""
    return tuple(f for f in all_families() if all(getattr(f, name) == value for name, value in facts.items()))


def alias_names(dialect: str) -> tuple[str, ...]:
    """Every name `dialect` uses for a family, each once, in registration order."""
    names: dict[str, None] = {}
    for family in all_families():
        names |= dict.fromkeys(family.aliases.get(dialect, ()))
    return tuple(names)


def by_alias(dialect: str, name: object, path: object = None) -> Family | None:
    """The family `dialect` means by `name`; when it names several (FLUX dev and schnell), the one
    whose path keyword the model path contains, else the one without a keyword."""
    candidates = [f for f in all_families() if name in f.aliases.get(dialect, ())]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    lowered = path.lower() if isinstance(path, str) else ""
    for family in candidates:
        keyword = family.recognition.path_keyword
        if keyword and keyword in lowered:
            return family
    return next((f for f in candidates if not f.recognition.path_keyword), candidates[0])
