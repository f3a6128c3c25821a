"""Model families: one adapter per family, registered by name (see `base.family_for`)."""

from lorapilot.engine.families import flux, sd, sd3, sdxl  # noqa: F401  (registers the families)
from lorapilot.engine.families.base import (
    Conditioning,
    ImageGeometry,
    LoadedModel,
    LoraSite,
    ModelFamily,
    family_for,
)

__all__ = ["Conditioning", "ImageGeometry", "LoadedModel", "LoraSite", "ModelFamily", "family_for"]
