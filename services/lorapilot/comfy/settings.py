"""The bridge's settings: `config/comfy.yaml` in the workspace, `LORAPILOT_COMFY_URL` over its url.
Without either, the URL is the appliance's own ComfyUI: 127.0.0.1 on `LORAPILOT_COMFYUI_PORT` (8188).

```yaml
url: http://127.0.0.1:8188
test_after_publish: true          # strength sweep after each published job
strengths: [0, 0.5, 0.8, 1.0]
bases:                            # base model files per family, as ComfyUI lists them
  sd15: {ckpt_name: v1-5-pruned-emaonly.safetensors}
  sdxl: {ckpt_name: sd_xl_base_1.0.safetensors}
  flux-dev: {unet_name: flux1-dev.safetensors, clip_name1: clip_l.safetensors,
             clip_name2: t5xxl_fp16.safetensors, vae_name: ae.safetensors}
  sd3: {ckpt_name: sd3_medium.safetensors, clip_name1: clip_l.safetensors,
        clip_name2: clip_g.safetensors, clip_name3: t5xxl_fp16.safetensors}
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

from lorapilot.comfy.client import DEFAULT_URL
from lorapilot.comfy.errors import SettingsError
from lorapilot.comfy.workflows import Base
from lorapilot.workspace import Workspace

URL_ENV = "LORAPILOT_COMFY_URL"
PORT_ENV = "LORAPILOT_COMFYUI_PORT"  # the appliance's own ComfyUI (supervisord program comfyui)
SETTINGS_FILE = "comfy.yaml"
DEFAULT_STRENGTHS = (0.0, 0.5, 0.8, 1.0)
_KEYS = {"url", "test_after_publish", "strengths", "bases"}


@dataclass(frozen=True)
class ComfySettings:
    url: str = DEFAULT_URL
    test_after_publish: bool = True
    strengths: tuple[float, ...] = DEFAULT_STRENGTHS
    bases: dict[str, dict[str, str]] = field(default_factory=dict)

    def base(self, family: str) -> Base:
        return Base(dict(self.bases.get(family) or {}))


def own_comfyui_url() -> str:
    port = os.environ.get(PORT_ENV)
    return f"http://127.0.0.1:{port}" if port else DEFAULT_URL


def load_settings(workspace: Workspace) -> ComfySettings:
    path = workspace.config / SETTINGS_FILE
    data: dict = {}
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise SettingsError(f"{path} must be a mapping with keys {', '.join(sorted(_KEYS))}")
        unknown = set(data) - _KEYS
        if unknown:
            raise SettingsError(
                f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}"
            )
    bases = data.get("bases") or {}
    if not isinstance(bases, dict) or not all(isinstance(v, dict) for v in bases.values()):
        raise SettingsError(f"{path}: bases must map a family to its files, e.g. bases.sd15.ckpt_name")
    try:
        strengths = tuple(float(s) for s in data.get("strengths", DEFAULT_STRENGTHS))
    except (TypeError, ValueError):
        raise SettingsError(f"{path}: strengths must be a list of numbers, e.g. [0, 0.5, 0.8, 1.0]") from None
    return ComfySettings(
        url=os.environ.get(URL_ENV) or data.get("url") or own_comfyui_url(),
        test_after_publish=bool(data.get("test_after_publish", True)),
        strengths=strengths,
        bases={str(k): {str(a): str(b) for a, b in v.items()} for k, v in bases.items()},
    )
