"""What can go wrong between LoRA Pilot and ComfyUI; every error says what to do about it."""

from __future__ import annotations

from typing import Any

from lorapilot.errors import LoraPilotError


class ComfyError(LoraPilotError):
    """Base class of the bridge's errors."""


class PublishError(ComfyError):
    """A finished job's LoRA cannot be handed to ComfyUI (no file, not finished, unreadable)."""


class ComfyUnavailableError(ComfyError):
    """ComfyUI does not answer (not running, wrong URL, still starting)."""


class ComfyTimeoutError(ComfyError):
    """ComfyUI accepted a prompt but did not finish it in time."""


class ComfyHTTPError(ComfyError):
    """ComfyUI answered with an HTTP error that is not a rejected workflow."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class WorkflowRejectedError(ComfyError):
    """`POST /prompt` answered 400: the workflow names an unknown node, a missing input or a bad value."""

    def __init__(self, error: dict[str, Any], node_errors: dict[str, Any]) -> None:
        self.error = error
        self.node_errors = node_errors
        super().__init__(self.render())

    def render(self) -> str:
        head = self.error.get("message") or self.error.get("type") or "workflow rejected"
        lines = [f"ComfyUI rejected the workflow: {head}"]
        if self.error.get("details"):
            lines[0] += f" ({self.error['details']})"
        for node_id, info in sorted(self.node_errors.items()):
            for err in info.get("errors", []):
                detail = f": {err['details']}" if err.get("details") else ""
                lines.append(
                    f"  node {node_id} ({info.get('class_type', '?')}): {err.get('message', '?')}{detail}"
                )
        return "\n".join(lines)


class PromptFailedError(ComfyError):
    """ComfyUI ran the prompt and it failed (`execution_error`) or was interrupted."""


class WorkflowCheckError(ComfyError):
    """A workflow uses a node class or input that this ComfyUI's /object_info does not list."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("the workflow does not fit this ComfyUI:\n  " + "\n  ".join(problems))


class SettingsError(ComfyError):
    """The bridge's settings (config/comfy.yaml) are missing something a render needs."""
