"""Run ComfyUI inside the appliance, when the image has it (Docker build argument WITH_COMFYUI=1).

ComfyUI reads its models from the workspace's `models/` folder through an `extra_model_paths.yaml`
written at each start (so LoRAs the bridge publishes to `models/loras/` show up in its LoRA
loaders), and writes its images to `outputs/comfy/`. It listens on the appliance's bind address.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from lorapilot.atomic_files import write_atomic
from lorapilot.workspace import Workspace

COMFYUI_DIR_ENV = "LORAPILOT_COMFYUI_DIR"
DEFAULT_COMFYUI_DIR = Path("/opt/ComfyUI")
# ComfyUI's folder names (folder_paths.py) → the workspace's models/ subfolders that hold them
MODEL_FOLDERS = {
    "checkpoints": "checkpoints",
    "loras": "loras",
    "vae": "vae",
    "text_encoders": "text_encoders",
    "diffusion_models": "diffusion_models",
    "embeddings": "embeddings",
    "controlnet": "controlnet",
    "upscale_models": "upscale_models",
    "clip_vision": "clip_vision",
}


@dataclass(frozen=True)
class ComfyUILaunch:
    main: Path
    argv: list[str]
    model_paths: Path


def comfyui_dir() -> Path:
    return Path(os.environ.get(COMFYUI_DIR_ENV) or DEFAULT_COMFYUI_DIR)


def installed(folder: Path | None = None) -> bool:
    return ((folder or comfyui_dir()) / "main.py").is_file()


def extra_model_paths(workspace: Workspace) -> str:
    document = {"lorapilot": {"base_path": str(workspace.models), "is_default": True, **MODEL_FOLDERS}}
    return yaml.safe_dump(document, sort_keys=False)


def prepare_launch(workspace: Workspace, host: str, port: int, folder: Path | None = None) -> ComfyUILaunch:
    """Write the model-paths file and the folders ComfyUI uses; the command line that starts it."""
    folder = folder or comfyui_dir()
    main = folder / "main.py"
    if not main.is_file():
        raise FileNotFoundError(
            f"ComfyUI is not installed: {main} does not exist. Build the image with "
            f"--build-arg WITH_COMFYUI=1, or point {COMFYUI_DIR_ENV} at a ComfyUI checkout."
        )
    own = workspace.config / "comfyui"
    outputs, inputs = workspace.outputs / "comfy", workspace.cache / "comfyui-input"
    for path in (own, outputs, inputs, *(workspace.models / sub for sub in MODEL_FOLDERS.values())):
        path.mkdir(parents=True, exist_ok=True)
    model_paths = own / "extra_model_paths.yaml"
    write_atomic(model_paths, extra_model_paths(workspace).encode("utf-8"))
    argv = [
        sys.executable,
        str(main),
        "--listen",
        host,
        "--port",
        str(port),
        "--extra-model-paths-config",
        str(model_paths),
        "--output-directory",
        str(outputs),
        "--input-directory",
        str(inputs),
        "--user-directory",
        str(own / "user"),
        "--disable-auto-launch",
    ]
    return ComfyUILaunch(main, argv, model_paths)


def run(workspace: Workspace, host: str, port: int) -> int:
    """Replace this process with ComfyUI (supervisord then signals ComfyUI itself)."""
    try:
        launch = prepare_launch(workspace, host, port)
    except OSError as exc:
        print(f"lorapilot-appliance comfyui: {exc}", file=sys.stderr)
        return 1
    print(f"[lorapilot] starting ComfyUI on {host}:{port}, models from {workspace.models}", flush=True)
    os.chdir(launch.main.parent)
    os.execv(launch.argv[0], launch.argv)
    return 0  # not reached
