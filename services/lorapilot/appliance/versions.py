"""The versions that decide how a run behaves: LoRA Pilot, Python, torch and the CUDA it was built
for, the NVIDIA driver, and the diffusion stack. A bug report quotes them; `lorapilot-appliance
version` prints them and ControlPilot shows them (`/api/versions`, the footer).

Read from the installed distributions' metadata, not by importing them: importing torch takes
seconds and hundreds of MB, too much for a web worker's page.
"""

from __future__ import annotations

import ast
import platform
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

import lorapilot

# The libraries whose releases change training results or break loading, in the order shown.
LIBRARIES = ("diffusers", "transformers", "peft", "accelerate", "bitsandbytes", "safetensors", "nvidia-ml-py")


@dataclass(frozen=True)
class Component:
    name: str
    version: str | None  # None: not installed (or, for the driver, no NVIDIA driver)
    detail: str = ""  # e.g. the build of torch: "CUDA 12.8" or "CPU build"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def report() -> list[Component]:
    """Every component, installed or not (a missing one says so rather than vanishing)."""
    return [
        Component("lorapilot", lorapilot.__version__),
        Component("python", platform.python_version(), platform.python_implementation()),
        _torch(),
        _driver(),
        *(Component(name, installed_version(name)) for name in LIBRARIES),
    ]


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _torch() -> Component:
    version = installed_version("torch")
    if version is None:
        return Component("torch", None)
    build = torch_build()
    if build.get("cuda"):
        return Component("torch", version, f"CUDA {build['cuda']}")
    if build.get("hip"):
        return Component("torch", version, f"ROCm {build['hip']}")
    return Component("torch", version, "CPU build" if build else "")


def torch_build() -> dict[str, str | None]:
    """The constants of torch/version.py (cuda, hip, …), read as literals without importing torch;
    {} when the file cannot be read."""
    try:
        path = metadata.distribution("torch").locate_file("torch/version.py")
        tree = ast.parse(path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
    except (metadata.PackageNotFoundError, OSError, SyntaxError):
        return {}
    constants: dict[str, str | None] = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
            constants[target.id] = value.value if isinstance(value.value, str) else None
    return constants


def _driver() -> Component:
    # NVML lives with ControlPilot's monitor; importing it loads that app (about 2 s), so only here,
    # not on every `lorapilot-appliance health`.
    from lorapilot.controlpilot import gpu  # noqa: PLC0415

    telemetry = gpu.read()
    if telemetry.driver:
        return Component("nvidia driver", telemetry.driver)
    return Component("nvidia driver", None, telemetry.reason or "")
