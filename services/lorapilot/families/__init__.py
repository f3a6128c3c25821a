"""Model families: one registry entry each, which every layer asks (the spec readers, the file probe,
TagPilot, ControlPilot, the ComfyUI workflows, kohya metadata and the engine's adapters).

No module outside this package spells a family id; they use these constants or the registry.
"""

from lorapilot.families.builtin import FLUX_DEV, FLUX_SCHNELL, SD2, SD3, SD15, SDXL
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

__all__ = [
    "AITOOLKIT_ARCH",
    "AITOOLKIT_FLAG",
    "DIFFUSION_PIPE_TYPE",
    "FLUX_DEV",
    "FLUX_SCHNELL",
    "KOHYA_COMPONENT",
    "KOHYA_FLAG",
    "SD2",
    "SD3",
    "SD15",
    "SDXL",
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
