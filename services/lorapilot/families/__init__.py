"""Model families: one registry entry each, which every layer asks (the spec readers, the file probe,
TagPilot, ControlPilot, the ComfyUI workflows, kohya metadata and the engine's adapters).

No module outside this package spells a family id; they use these constants or the registry.
"""

from lorapilot.families import builtin
from lorapilot.families.builtin import *  # noqa: F403 - every family's constant: SD15, SDXL, FLUX_DEV, …
from lorapilot.families.family import ComfyGraph, Family, KohyaNames, LoraTargets, Recognition
from lorapilot.families.registry import (
    AITOOLKIT_ARCH,
    AITOOLKIT_FLAG,
    DIFFUSION_PIPE_TYPE,
    KOHYA_COMPONENT,
    KOHYA_FLAG,
    UnknownFamilyError,
    alias_names,
    all_families,
    by_alias,
    find,
    get,
    ids,
    newest_first,
    where,
)

__all__ = [  # noqa: PLE0604 - the family constants are added from builtin.__all__
    *builtin.__all__,
    "AITOOLKIT_ARCH",
    "AITOOLKIT_FLAG",
    "DIFFUSION_PIPE_TYPE",
    "KOHYA_COMPONENT",
    "KOHYA_FLAG",
    "ComfyGraph",
    "Family",
    "KohyaNames",
    "LoraTargets",
    "Recognition",
    "UnknownFamilyError",
    "alias_names",
    "all_families",
    "by_alias",
    "find",
    "get",
    "ids",
    "newest_first",
    "where",
]
