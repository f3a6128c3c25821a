"""Engine adapters of the model families: one module per family (or group of alike families), each
registered against its entries of `lorapilot.families` (see `base.adapter_for`).

Every module of this package is imported here, so an adapter registers itself by being a file in
it; nothing else lists the adapters.
"""

import importlib
import pkgutil

from lorapilot.engine.families.base import (
    Conditioning,
    FamilyAdapter,
    ImageGeometry,
    LoadedModel,
    LoraSite,
    ModelFacts,
    adapter_for,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Conditioning",
    "FamilyAdapter",
    "ImageGeometry",
    "LoadedModel",
    "LoraSite",
    "ModelFacts",
    "adapter_for",
]
