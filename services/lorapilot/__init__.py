"""LoRA Pilot: one engine, one job spool and one /workspace for LoRA training."""

__version__ = "0.1.0"
