"""What every captioning back-end provides, and the registry that picks one by name.

A back-end turns a batch of upright RGB images into one caption each. `style` says whether its
captions are sentences (BLIP, VLMs) or tag lists (WD14), which decides how "append" joins them.
Back-ends register themselves, as peft's LoRA variants do, instead of an if/elif on the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from lorapilot.tagpilot.errors import TagPilotError
from lorapilot.workspace import PathEscapeError, Workspace


class CaptionerError(TagPilotError):
    """A captioner that cannot be loaded or run; the message names the model and the fix."""


class Captioner(Protocol):
    style: str

    def caption(self, images: list[Image.Image]) -> list[str]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CaptionerChoice:
    """What the user picked: a back-end, where its model is, and back-end options."""

    backend: str
    source: str
    options: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.source}"

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)


Factory = Callable[[CaptionerChoice, Workspace], Captioner]
BACKENDS: dict[str, Factory] = {}
# Options a back-end accepts, so a typo is an error instead of a silently ignored setting.
BACKEND_OPTIONS: dict[str, frozenset[str]] = {}


def register_backend(name: str, options: tuple[str, ...] = ()) -> Callable[[Factory], Factory]:
    def add(factory: Factory) -> Factory:
        BACKENDS[name] = factory
        BACKEND_OPTIONS[name] = frozenset(options)
        return factory

    return add


def model_source(workspace: Workspace, source: str) -> str:
    """A folder under models/captioners/ (by name or workspace path), else a hub id `org/name`."""
    if not isinstance(source, str) or not source.strip():
        raise CaptionerError("captioner source is empty; name a folder in models/captioners or a hub id")
    folder = workspace.model_dir("captioners")
    try:
        local = workspace.resolve(source, base=folder)
    except PathEscapeError as exc:
        raise CaptionerError(f"captioner source {source!r} is outside the workspace") from exc
    if local.is_dir():
        return str(local)
    if source.count("/") == 1 and not source.startswith((".", "/")):
        return source  # a hub id; downloads only where the appliance is online and allowed to
    raise CaptionerError(f"no captioner folder {source!r} in {workspace.display(folder)} and not a hub id")


def choice_from_json(body: Any) -> CaptionerChoice:
    if not isinstance(body, dict):
        raise CaptionerError("'captioner' must be an object with 'backend' and 'source'")
    backend, source = body.get("backend"), body.get("source")
    if backend not in BACKENDS:
        raise CaptionerError(
            f"unknown captioner backend {backend!r}; use one of {', '.join(sorted(BACKENDS))}"
        )
    if not isinstance(source, str) or not source:
        raise CaptionerError("'captioner.source' is required: a model folder name, hub id or endpoint URL")
    options = {key: value for key, value in body.items() if key not in ("backend", "source")}
    unknown = sorted(set(options) - BACKEND_OPTIONS[backend])
    if unknown:
        allowed = ", ".join(sorted(BACKEND_OPTIONS[backend])) or "none"
        raise CaptionerError(f"unknown option(s) {', '.join(unknown)} for {backend}; allowed: {allowed}")
    return CaptionerChoice(backend, source, tuple(sorted(options.items())))


def torch_device() -> tuple[str, Any]:
    """The device and weight dtype for transformers back-ends: fp16 on CUDA, fp32 on CPU."""
    import torch  # noqa: PLC0415 - heavy; only loaded when a model is

    if torch.cuda.is_available():
        return "cuda", torch.float16
    return "cpu", torch.float32


def is_folder(source: str) -> bool:
    return Path(source).is_dir()
