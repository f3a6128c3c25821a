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

ControlPilot's Models page rewrites this file (`save_settings`), checked first and atomically, in the
same layout; comments in it are not kept.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import yaml

from lorapilot import families
from lorapilot.atomic_files import write_atomic
from lorapilot.comfy.client import DEFAULT_URL
from lorapilot.comfy.errors import SettingsError
from lorapilot.comfy.workflows import Base
from lorapilot.workspace import Workspace

URL_ENV = "LORAPILOT_COMFY_URL"
PORT_ENV = "LORAPILOT_COMFYUI_PORT"  # the appliance's own ComfyUI (supervisord program comfyui)
SETTINGS_FILE = "comfy.yaml"
DEFAULT_STRENGTHS = (0.0, 0.5, 0.8, 1.0)
_KEYS = {"url", "test_after_publish", "strengths", "bases"}
MAX_STRENGTHS = 16
STRENGTH_RANGE = (0.0, 2.0)
URL_SOURCES = ("env", "file", "default")
_HEADER = (
    "# The ComfyUI bridge's settings (lorapilot.comfy.settings), as ControlPilot's Models page saved them.\n"
)


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


@dataclass(frozen=True)
class UrlOrigin:
    """Where the bridge's URL comes from, for a page that offers to change it."""

    source: str  # env | file | default (see URL_SOURCES)
    file_url: str | None  # `url:` in config/comfy.yaml; not used while source is env


def resolve_url(file_url: str | None) -> tuple[str, UrlOrigin]:
    """The bridge's URL and where it comes from: the environment, then the file, then the
    appliance's own ComfyUI."""
    env_url = os.environ.get(URL_ENV)
    if env_url:
        return env_url, UrlOrigin("env", file_url)
    if file_url:
        return file_url, UrlOrigin("file", file_url)
    return own_comfyui_url(), UrlOrigin("default", None)


def _file_url(data: dict[str, Any]) -> str | None:
    return str(data["url"]) if data.get("url") else None


def settings_path(workspace: Workspace) -> Path:
    return workspace.config / SETTINGS_FILE


def load_settings(workspace: Workspace) -> ComfySettings:
    path = settings_path(workspace)
    data = _read(path)
    bases = data.get("bases") or {}
    if not isinstance(bases, dict) or not all(isinstance(v, dict) for v in bases.values()):
        raise SettingsError(f"{path}: bases must map a family to its files, e.g. bases.sd15.ckpt_name")
    try:
        strengths = tuple(float(s) for s in data.get("strengths", DEFAULT_STRENGTHS))
    except (TypeError, ValueError):
        raise SettingsError(f"{path}: strengths must be a list of numbers, e.g. [0, 0.5, 0.8, 1.0]") from None
    return ComfySettings(
        url=resolve_url(_file_url(data))[0],
        test_after_publish=bool(data.get("test_after_publish", True)),
        strengths=strengths,
        bases={str(k): {str(a): str(b) for a, b in v.items()} for k, v in bases.items()},
    )


def url_origin(workspace: Workspace) -> UrlOrigin:
    """Where `load_settings`' URL comes from."""
    return resolve_url(_file_url(_read(settings_path(workspace))))[1]


def save_settings(workspace: Workspace, settings: ComfySettings) -> Path:
    """Check `settings`, then replace config/comfy.yaml atomically. An empty `url` leaves it out of
    the file (the environment's or the own ComfyUI's URL applies); empty base files are left out."""
    check_settings(settings)
    document: dict[str, Any] = {}
    if settings.url:
        document["url"] = settings.url.strip().rstrip("/")
    document["test_after_publish"] = settings.test_after_publish
    document["strengths"] = [_plain_number(s) for s in settings.strengths]
    bases = {
        family: {key: value.strip() for key, value in files.items() if value.strip()}
        for family, files in settings.bases.items()
    }
    document["bases"] = {family: files for family, files in bases.items() if files}
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    path = settings_path(workspace)
    write_atomic(path, (_HEADER + text).encode("utf-8"))
    return path


def check_settings(settings: ComfySettings) -> None:
    """Every field as `save_settings` writes it; the error names the field and what it takes."""
    if settings.url:
        check_url(settings.url)
    if not isinstance(settings.test_after_publish, bool):
        raise SettingsError(f"test_after_publish: true or false, found {settings.test_after_publish!r}")
    _check_strengths(settings.strengths)
    if not isinstance(settings.bases, dict):
        raise SettingsError(
            "bases: a mapping of family to its files, e.g. {sd15: {ckpt_name: model.safetensors}}"
        )
    for family, files in settings.bases.items():
        known = families.find(family)
        if known is None:
            raise SettingsError(f"bases.{family}: unknown family; known: {', '.join(families.ids())}")
        graph = known.comfy
        if not isinstance(files, dict):
            raise SettingsError(
                f"bases.{family}: a mapping of loader input to file, e.g. {{{graph.files[0]}: …}}"
            )
        for key, value in files.items():
            if key not in graph.inputs:
                taken = ", ".join(graph.inputs)
                raise SettingsError(f"bases.{family}.{key}: {family} workflows take no {key!r}, only {taken}")
            _check_file_name(f"bases.{family}.{key}", value)


def check_url(url: Any) -> str:
    """`http(s)://host[:port]`, as ComfyUI's address; a trailing slash is allowed."""
    example = "e.g. http://127.0.0.1:8188"
    if not isinstance(url, str) or not url.strip():
        raise SettingsError(f"url: ComfyUI's address as http(s)://host[:port], {example}; found {url!r}")
    parts = urllib.parse.urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        raise SettingsError(
            f"url: the port must be a number from 1 to 65535, {example}; found {url!r}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"url: must start with http:// or https:// and name a host, {example}; found {url!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or port == 0:
        raise SettingsError(
            f"url: only http(s)://host[:port], without a path, query or login, {example}; found {url!r}"
        )
    return url.strip()


def _check_strengths(strengths: Any) -> None:
    low, high = STRENGTH_RANGE
    example = "e.g. [0, 0.5, 0.8, 1.0]"
    if not isinstance(strengths, tuple | list) or not 1 <= len(strengths) <= MAX_STRENGTHS:
        raise SettingsError(f"strengths: 1 to {MAX_STRENGTHS} LoRA weights, {example}; found {strengths!r}")
    for value in strengths:
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
        if not low <= number <= high:
            raise SettingsError(
                f"strengths: each a number from {low:g} to {high:g}, {example}; found {value!r}"
            )


def _check_file_name(where: str, value: Any) -> None:
    """A name as ComfyUI lists it (a subfolder of its model folder may come first: `sdxl/x.safetensors`);
    never a path out of that folder."""
    if not isinstance(value, str):
        raise SettingsError(f"{where}: a file name as ComfyUI lists it, found {value!r}")
    name = value.strip()
    if not name:
        return  # empty: not set
    windows = PureWindowsPath(name)  # splits on / and \ alike
    if PurePosixPath(name).is_absolute() or windows.anchor or ".." in windows.parts or not name.isprintable():
        raise SettingsError(
            f"{where}: a file name as ComfyUI lists it (e.g. model.safetensors), not a path; found {value!r}"
        )


def _plain_number(value: float) -> int | float:
    """0 and 1 rather than 0.0 and 1.0 in the file, as a person writes them."""
    number = float(value)
    return int(number) if number.is_integer() else number


def _read(path: Path) -> dict:
    """The file's mapping with only known keys ({} when there is no file)."""
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
    return data
