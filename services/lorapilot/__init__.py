"""LoRA Pilot: one engine, one job spool and one /workspace for LoRA training."""

from lorapilot.library_noise import quiet_library_noise

__version__ = "0.1.0"

# Before any library is imported, so their start-up lines that concern no user never print.
quiet_library_noise()
