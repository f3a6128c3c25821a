"""The ComfyUI bridge's settings from ControlPilot (`/api/comfy/settings`): what the Models page's
ComfyUI section shows and saves.

`GET` answers the settings of config/comfy.yaml, where the URL comes from (a `LORAPILOT_COMFY_URL`
environment variable overrides the file), the base-file inputs each family's workflow takes, whether
ComfyUI answers at the URL, and the files to choose from for each input: ComfyUI's own lists
(`/object_info/<loader>`) when it answers, else the workspace's models/ folders it reads. Every
request to ComfyUI shares one short time budget, so a ComfyUI that is down or unreachable never
makes the page wait. `PUT` checks and saves the settings (lorapilot.comfy.settings) and answers as
`GET` does.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import field_validator

from lorapilot import families
from lorapilot.comfy.client import ComfyClient
from lorapilot.comfy.errors import ComfyError, SettingsError
from lorapilot.comfy.settings import (
    URL_ENV,
    ComfySettings,
    UrlOrigin,
    load_settings,
    resolve_url,
    save_settings,
    settings_path,
    url_origin,
)
from lorapilot.comfy.workflows import base_loaders
from lorapilot.web.app import workspace_of
from lorapilot.web.bodies import RequestBody
from lorapilot.workspace import Workspace

log = logging.getLogger(__name__)
bp = Blueprint("comfy_settings", __name__, url_prefix="/api/comfy/settings")

PROBE_BUDGET_S = 2.5  # every request to ComfyUI of one GET together
# ComfyUI's loader class → the models/ subfolder its files come from (ComfyUI's folder_paths names,
# which the appliance's own ComfyUI maps onto the workspace), for when ComfyUI does not answer
LOADER_FOLDERS = {
    "CheckpointLoaderSimple": "checkpoints",
    "UNETLoader": "diffusion_models",
    "DualCLIPLoader": "text_encoders",
    "TripleCLIPLoader": "text_encoders",
    "VAELoader": "vae",
}
MODEL_SUFFIXES = frozenset({".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf"})
BRIDGE_NOTE = "Saved: test renders from a job page and the comfybridge service use these from now on."


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@dataclass(frozen=True)
class Reachability:
    url: str
    reachable: bool
    detail: str  # ComfyUI's version when it answers, else why not


@dataclass(frozen=True)
class FileChoices:
    """The values offered for each family's base inputs, and where the lists came from."""

    by_family: dict[str, dict[str, list[str]]]
    source: str  # comfyui | workspace | mixed (ComfyUI lacked some loaders)


# -- routes ---------------------------------------------------------------------------------------
@bp.get("")
def show() -> Response:
    return jsonify(_view(workspace_of(current_app)))


class SettingsChange(RequestBody):
    """The body of `PUT`: the fields to change. Their values are checked where the file's are
    (lorapilot.comfy.settings.check_settings), so the page and the file get the same messages."""

    not_an_object: ClassVar[str] = (
        'send a JSON object, e.g. {"strengths": [0, 0.5, 1.0], "bases": {"sd15": {"ckpt_name": "..."}}}'
    )

    url: Any = None  # empty or null: the default
    test_after_publish: Any = None
    strengths: Any = None  # a list, or the text `0, 0.5, 1` the page's field holds
    bases: Any = None

    @field_validator("strengths", mode="before")
    @classmethod
    def _strengths(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return tuple(float(item) for item in re.split(r"[,\s]+", value.strip()) if item)
        except ValueError:
            raise ValueError(f"numbers separated by commas, e.g. 0, 0.5, 0.8, 1.0; found {value!r}") from None

    def applied_to(self, current: ComfySettings, file_url: str | None) -> ComfySettings:
        """`current` with the fields sent changed; the URL left out stays the file's."""
        sent = self.model_dump(include=self.model_fields_set)
        return ComfySettings(
            url=sent.get("url", file_url) or "",
            test_after_publish=sent.get("test_after_publish", current.test_after_publish),
            strengths=sent.get("strengths", current.strengths),
            bases=sent.get("bases", current.bases),
        )


@bp.put("")
def change() -> Response:
    """Save the fields sent; a field left out keeps its value. `url` empty or null: the default."""
    ws = workspace_of(current_app)
    body = SettingsChange.parse(request.get_json(silent=True))
    kept = {"url", "test_after_publish", "strengths", "bases"} - body.model_fields_set
    current = load_settings(ws) if kept - {"url"} else ComfySettings()  # a full body mends a broken file
    file_url = url_origin(ws).file_url if "url" in kept else None
    path = save_settings(ws, body.applied_to(current, file_url))
    log.info("ComfyUI settings saved to %s", path)
    return jsonify(_view(ws) | {"saved": ws.display(path), "note": BRIDGE_NOTE})


@bp.errorhandler(SettingsError)
def _settings_error(exc: SettingsError) -> tuple[Response, int]:
    return jsonify(error=str(exc)), 400


# -- the view -------------------------------------------------------------------------------------
def _view(ws: Workspace) -> dict[str, Any]:
    """What GET answers; a broken config/comfy.yaml is reported with the defaults, so saving fixes it."""
    try:
        settings, origin, settings_error = load_settings(ws), url_origin(ws), None
    except SettingsError as exc:
        url, origin = resolve_url(None)
        settings, settings_error = ComfySettings(url=url), str(exc)
    loaders = {family: base_loaders(family) for family in families.ids()}
    reach, object_info = _probe(settings.url, {cls for by_key in loaders.values() for cls in by_key.values()})
    choices = _file_choices(ws, loaders, object_info)
    return {
        "url": settings.url,
        "url_source": origin.source,
        "file_url": origin.file_url,
        "url_note": _url_note(origin, settings.url),
        "test_after_publish": settings.test_after_publish,
        "strengths": list(settings.strengths),
        "bases": settings.bases,
        "settings_file": ws.display(settings_path(ws)),
        "settings_error": settings_error,
        "families": [  # a list: the page shows them in this order
            {
                "family": family.id,
                "label": family.label,
                "files": list(family.comfy.files),
                "options": dict(family.comfy.options),
                "loaders": loaders[family.id],
            }
            for family in families.all_families()
        ],
        "comfyui": asdict(reach),
        "choices": choices.by_family,
        "choices_from": choices.source,
    }


def _url_note(origin: UrlOrigin, url: str) -> str | None:
    if origin.source == "env":
        overridden = f"; the file's url {origin.file_url} is overridden" if origin.file_url else ""
        return f"set by the {URL_ENV} environment variable{overridden}. Change it there."
    if origin.source == "default":
        return f"not set: the appliance's own ComfyUI at {url}"
    return None


def _probe(url: str, classes: set[str]) -> tuple[Reachability, dict[str, Any]]:
    """`/system_stats`, then each loader's `/object_info/<class>`, all within PROBE_BUDGET_S."""
    deadline = time.monotonic() + PROBE_BUDGET_S
    client = ComfyClient(url, timeout=PROBE_BUDGET_S, retries=0)
    try:
        stats = client.system_stats()
    except (ComfyError, ValueError) as exc:
        return Reachability(url, False, _first_line(exc)), {}
    version = (stats.get("system") or {}).get("comfyui_version") if isinstance(stats, dict) else None
    reach = Reachability(url, True, f"ComfyUI {version}" if version else "ComfyUI answers")
    info: dict[str, Any] = {}
    for cls in sorted(classes):
        left = deadline - time.monotonic()
        if left < 0.1:
            log.info("ComfyUI at %s is slow; file lists of %s come from the workspace", url, cls)
            break
        client.timeout = left
        try:
            info |= {k: v for k, v in client.object_info(cls).items() if k == cls}
        except (ComfyError, ValueError) as exc:
            log.info("ComfyUI at %s: no /object_info/%s (%s)", url, cls, exc)
    return reach, info


def _file_choices(
    ws: Workspace, loaders: dict[str, dict[str, str]], object_info: dict[str, Any]
) -> FileChoices:
    by_family: dict[str, dict[str, list[str]]] = {}
    sources = set()
    for family, by_key in loaders.items():
        graph = families.get(family).comfy
        by_family[family] = {}
        for key in graph.inputs:
            cls = by_key.get(key, "")
            listed = _listed(object_info.get(cls), key)
            if listed is None:
                folder = LOADER_FOLDERS.get(cls) if key in graph.files else None
                listed = _model_files(ws.models / folder) if folder else [graph.options.get(key, "")]
                listed = [value for value in listed if value]
            sources.add("workspace" if cls not in object_info else "comfyui")
            by_family[family][key] = listed
    source = sources.pop() if len(sources) == 1 else "mixed"
    return FileChoices(by_family, source)


def _listed(info: dict[str, Any] | None, key: str) -> list[str] | None:
    """The choices `/object_info` declares for an input: `[[a, b]]`, or the newer `["COMBO", {options}]`."""
    if not isinstance(info, dict):
        return None
    spec = info.get("input") or {}
    declared = (spec.get("required") or {}).get(key) or (spec.get("optional") or {}).get(key)
    if not isinstance(declared, list) or not declared:
        return None
    kind = declared[0]
    if kind == "COMBO":
        kind = (declared[1] if len(declared) > 1 and isinstance(declared[1], dict) else {}).get("options")
    return [str(v) for v in kind] if isinstance(kind, list) else None


def _model_files(folder: Path) -> list[str]:
    """Model files under `folder`, named as ComfyUI lists them (relative, with / between folders)."""
    if not folder.is_dir():
        return []
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.suffix.lower() in MODEL_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
