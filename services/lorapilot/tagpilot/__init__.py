"""TagPilot: the dataset and caption service (upload, checks, captions, auto-captioning, export)."""

from lorapilot.tagpilot.app import create_app

__all__ = ["create_app"]
