"""ControlPilot: the dashboard, JSON API and monitor of the appliance (DESIGN §7, issue 8)."""

from lorapilot.controlpilot.app import create_app

__all__ = ["create_app"]
