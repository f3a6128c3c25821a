"""ComfyUI actions on a finished job (`/api/jobs/<ref>/comfy/...`): what `trainpilot comfy publish`
and `trainpilot comfy test` do, from the job page.

Publishing is a quick file copy and answers at once. A test render can take minutes on a real
ComfyUI, so it runs in a background thread that records its progress and result in
`outputs/<name>/comfy/test-render.json` (rewritten atomically); the page polls `GET .../comfy`.
The renders themselves are `lorapilot.comfy.sweep.render_sweep`, into the folder the bridge uses too.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_file, url_for

from lorapilot.atomic_files import write_json_atomic
from lorapilot.comfy.client import ComfyClient
from lorapilot.comfy.errors import (
    ComfyError,
    ComfyHTTPError,
    ComfyUnavailableError,
    PublishError,
    SettingsError,
)
from lorapilot.comfy.publish import LORA_SUFFIX, SIDECAR_SUFFIX, find_published, lora_file_name, publish
from lorapilot.comfy.settings import SETTINGS_FILE, URL_ENV, ComfySettings, load_settings
from lorapilot.comfy.sweep import prompts_of, read_sidecar, render_sweep
from lorapilot.comfy.workflows import LoraUse
from lorapilot.controlpilot import jobs
from lorapilot.controlpilot.errors import ConflictError, ControlPilotError, NotFoundError, UnavailableError
from lorapilot.spool import JobRecord
from lorapilot.web.app import workspace_of
from lorapilot.workspace import Workspace

log = logging.getLogger(__name__)
bp = Blueprint("comfy_actions", __name__, url_prefix="/api/jobs/<ref>/comfy")

RENDER_STATE_FILE = "test-render.json"  # beside the bridge's sweep.json in outputs/<name>/comfy/
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
MAX_STRENGTHS = 16
MAX_BLEND = 4
REACHABLE_TIMEOUT_S = 5.0  # the quick look before answering 202; the render itself waits longer
REQUEST_FIELDS = ("strengths", "with", "seed", "steps", "size")


def init_app(app: Flask) -> None:
    app.extensions["controlpilot.comfy_renders"] = Renders()
    app.register_blueprint(bp)


class Renders:
    """The test renders running in this process: at most one per job."""

    def __init__(self) -> None:
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def running(self, job_id: str) -> bool:
        with self._lock:
            thread = self._threads.get(job_id)
            return thread is not None and thread.is_alive()

    def start(self, job_id: str, begin: Callable[[], None], work: Callable[[], None]) -> None:
        """`begin()` (record the start) then `work()` in a thread, unless this job renders already."""
        with self._lock:
            thread = self._threads.get(job_id)
            if thread is not None and thread.is_alive():
                raise ConflictError("a test render of this job is running; wait for it to finish")
            begin()
            thread = threading.Thread(target=work, name=f"comfy-test-{job_id}", daemon=True)
            self._threads[job_id] = thread
            thread.start()


@dataclass(frozen=True)
class RenderRequest:
    """The body of `POST .../comfy/test`: the CLI's `--strengths`, `--with`, `--seed`, `--steps`, `--size`."""

    strengths: tuple[float, ...] | None = None  # None: config/comfy.yaml's strengths
    blend: tuple[LoraUse, ...] = ()
    seed: int = 42
    steps: int = 20
    size: int | None = None  # None: the family's native size

    @classmethod
    def from_json(cls, body: dict[str, Any], loras: Path, workspace: Workspace) -> RenderRequest:
        unknown = sorted(set(body) - set(REQUEST_FIELDS))
        if unknown:
            accepted = ", ".join(REQUEST_FIELDS)
            raise ControlPilotError(f"unknown field(s) {', '.join(unknown)}; accepted: {accepted}")
        items = body.get("with") or []
        if not isinstance(items, list) or len(items) > MAX_BLEND:
            raise ControlPilotError(f'with: up to {MAX_BLEND} objects like {{"name": LORA, "weight": 0.6}}')
        return cls(
            strengths=_strengths(body.get("strengths")),
            blend=tuple(_blend_item(item, i, loras, workspace) for i, item in enumerate(items)),
            seed=_whole(body.get("seed", 42), "seed", 0, 2**32 - 1),
            steps=_whole(body.get("steps", 20), "steps", 1, 200),
            size=_size(body.get("size")),
        )


@dataclass
class RenderState:
    """`test-render.json`: one test render started from ControlPilot, as the page shows it."""

    state: str  # running | done | failed (interrupted: read back running with no thread behind it)
    started_at: str
    strengths: list[float]
    blend: list[dict[str, Any]]
    total: int  # images the sweep renders: prompts × strengths
    done: int = 0
    finished_at: str | None = None
    error: str | None = None
    images: list[str] = field(default_factory=list)
    contact_sheet: str | None = None

    def save(self, folder: Path) -> None:
        write_json_atomic(folder / RENDER_STATE_FILE, asdict(self))

    def end(self, folder: Path, error: str | None = None) -> None:
        self.state, self.error, self.finished_at = ("failed" if error else "done"), error, _now()
        self.save(folder)


class _CountingClient(ComfyClient):
    """The bridge's client, calling `on_image` after each finished image (the page's progress)."""

    def __init__(self, url: str, on_image: Callable[[], None]) -> None:
        super().__init__(url)
        self.on_image = on_image

    def run(self, workflow: dict[str, Any], timeout: float = 600.0) -> list:
        images = super().run(workflow, timeout)
        self.on_image()
        return images


# -- routes ---------------------------------------------------------------------------------------
@bp.post("/publish")
def publish_job(ref: str) -> Response:
    """Copy the done job's LoRA into models/loras/ with its sidecar (a no-op when it is there)."""
    ws = workspace_of(current_app)
    record = jobs.spool().find(ref)
    publication = publish(ws, record)
    return jsonify(
        job=record.id,
        name=record.name,
        file=publication.lora_name,
        sidecar=publication.sidecar.name,
        path=ws.display(publication.lora),
        sha256=publication.sha256,
        reused=publication.reused,
        details=read_sidecar(publication.sidecar),
    )


@bp.post("/test")
def test_render(ref: str) -> tuple[Response, int]:
    """Publish if needed, check ComfyUI answers, then render the strength sweep in the background."""
    ws = workspace_of(current_app)
    record = jobs.spool().find(ref)
    body = request.get_json(silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ControlPilotError('send a JSON object, e.g. {"strengths": [0, 0.5, 1.0]}')
    loras = ws.model_dir("loras")
    options = RenderRequest.from_json(body, loras, ws)
    settings = load_settings(ws)
    publication = publish(ws, record)
    folder = _comfy_folder(record)
    _check_reachable(settings, ws)
    strengths = options.strengths or settings.strengths
    state = RenderState(
        state="running",
        started_at=_now(),
        strengths=list(strengths),
        blend=[{"name": b.name, "weight": b.strength} for b in options.blend],
        total=len(prompts_of(read_sidecar(publication.sidecar))) * len(strengths),
    )
    renders: Renders = current_app.extensions["controlpilot.comfy_renders"]
    renders.start(
        record.id,
        begin=lambda: state.save(folder),
        work=lambda: _render(ws, record, settings=settings, options=options, state=state, folder=folder),
    )
    return jsonify(job=record.id, name=record.name, file=publication.lora_name, render=asdict(state)), 202


@bp.get("")
def overview(ref: str) -> Response:
    """What the job page's ComfyUI section shows: publications, the last render and its images."""
    ws = workspace_of(current_app)
    record = jobs.spool().find(ref)
    folder = _comfy_folder(record)
    published = [
        {
            "file": f"{stem}{LORA_SUFFIX}",
            "sidecar": f"{stem}{SIDECAR_SUFFIX}",
            "kind": data.get("kind", "final"),
            "published_at": data.get("published_at"),
        }
        for stem, data in find_published(ws.model_dir("loras"), record.id)
        if (ws.model_dir("loras") / f"{stem}{LORA_SUFFIX}").is_file()
    ]
    listed = _images(folder)
    sheet = "contact_sheet.png"
    try:
        comfy_url, settings_error = load_settings(ws).url, None
    except SettingsError as exc:
        comfy_url, settings_error = None, str(exc)
    return jsonify(
        job=record.id,
        name=record.name,
        state=record.state.value,
        comfy_url=comfy_url,
        settings_error=settings_error,
        published=published,
        render=_render_state(folder, record),
        images=[{"file": name, "url": _file_url(record, folder, name)} for name in sorted(listed - {sheet})],
        contact_sheet=_file_url(record, folder, sheet) if sheet in listed else None,
    )


@bp.get("/files/<filename>")
def comfy_file(ref: str, filename: str) -> Response:
    """A test render or the contact sheet; only image files listed in outputs/<name>/comfy/."""
    record = jobs.spool().find(ref)
    folder = _comfy_folder(record)
    if filename not in _images(folder):
        raise NotFoundError(f"job {record.name} has no ComfyUI render called {filename!r}")
    return send_file(folder / filename, max_age=0)


@bp.errorhandler(ComfyError)
def _comfy_error(exc: ComfyError) -> tuple[Response, int]:
    if isinstance(exc, PublishError):
        return jsonify(error=str(exc)), 409  # the job is not done, or its LoRA file is missing
    if isinstance(exc, SettingsError):
        return jsonify(error=str(exc)), 400
    return jsonify(error=str(exc)), 502  # ComfyUI answered, but not as a render needs


# -- the background render ------------------------------------------------------------------------
def _render(
    ws: Workspace,
    record: JobRecord,
    *,
    settings: ComfySettings,
    options: RenderRequest,
    state: RenderState,
    folder: Path,
) -> None:
    """The thread's body: every outcome ends in test-render.json, so the page never waits forever."""

    def one_more() -> None:
        state.done += 1
        state.save(folder)

    try:
        result = render_sweep(
            ws,
            record,
            _CountingClient(settings.url, one_more),
            settings,
            strengths=tuple(state.strengths),
            blend=options.blend,
            seed=options.seed,
            steps=options.steps,
            size=options.size,
        )
    except ComfyUnavailableError as exc:
        state.end(folder, f"{exc} {_url_fix(settings, ws)}")
    except (ComfyError, OSError, ValueError) as exc:
        log.warning("test render of %s failed: %s", record.name, exc)
        state.end(folder, str(exc))
    except Exception as exc:  # a thread's exception would vanish; the page must hear of it
        log.exception("test render of %s failed", record.name)
        state.end(folder, f"unexpected error ({exc}); ControlPilot's log has the details")
    else:
        state.images = [path.name for path in result.images]
        state.contact_sheet = result.contact_sheet.name
        state.end(folder)
        log.info("test render of %s: %s", record.name, result.contact_sheet)


def _check_reachable(settings: ComfySettings, ws: Workspace) -> None:
    """503 naming the URL and where it is set, before a render is promised."""
    try:
        ComfyClient(settings.url, timeout=REACHABLE_TIMEOUT_S, retries=0).system_stats()
    except ComfyUnavailableError as exc:
        raise UnavailableError(f"{exc} {_url_fix(settings, ws)}") from None
    except (ComfyHTTPError, ValueError) as exc:
        raise UnavailableError(
            f"{settings.url} does not answer like ComfyUI ({exc}). {_url_fix(settings, ws)}"
        ) from None


def _url_fix(settings: ComfySettings, ws: Workspace) -> str:
    path = ws.display(ws.config / SETTINGS_FILE)
    if os.environ.get(URL_ENV):
        return f"The URL {settings.url} comes from the {URL_ENV} environment variable; change it there."
    return f"Set ComfyUI's URL as `url:` in {path} (or the {URL_ENV} environment variable)."


# -- reading what is there ------------------------------------------------------------------------
def _comfy_folder(record: JobRecord) -> Path:
    folder = jobs.spool().run_folder(record)
    if folder is None:
        raise NotFoundError(f"job {record.name} has no run folder (its file could not be read)")
    return folder / "comfy"


def _images(folder: Path) -> set[str]:
    """The image files directly in the comfy folder: the only names the files route serves."""
    if not folder.is_dir():
        return set()
    return {
        path.name
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES
        and not path.name.startswith(".")
        and path.is_file()
        and not path.is_symlink()
    }


def _file_url(record: JobRecord, folder: Path, name: str) -> str:
    """The files route, with the file's mtime so a re-render is not taken from the browser's cache."""
    version = (folder / name).stat().st_mtime_ns
    return url_for("comfy_actions.comfy_file", ref=record.id, filename=name, v=version)


def _render_state(folder: Path, record: JobRecord) -> dict[str, Any] | None:
    path = folder / RENDER_STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    renders: Renders = current_app.extensions["controlpilot.comfy_renders"]
    if data.get("state") == "running" and not renders.running(record.id):
        data["state"] = "interrupted"
        data["error"] = "ControlPilot restarted while this render ran; start the test render again"
    return data


# -- checking the request -------------------------------------------------------------------------
def _strengths(value: Any) -> tuple[float, ...] | None:
    if value is None or value in ("", []):
        return None
    items = [s for s in re.split(r"[,\s]+", value) if s] if isinstance(value, str) else value
    example = "e.g. [0, 0.5, 0.8, 1.0] or the text 0, 0.5, 0.8, 1.0"
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_STRENGTHS:
        raise ControlPilotError(f"strengths: 1 to {MAX_STRENGTHS} numbers, {example}; found {value!r}")
    return tuple(_number(item, "strengths", example) for item in items)


def _blend_item(item: Any, index: int, loras: Path, workspace: Workspace) -> LoraUse:
    """`{"name": OTHER, "weight": 0.6}` (or the CLI's `OTHER:0.6`) → a LoRA published in models/loras/."""
    where = f"with[{index}]"
    if isinstance(item, str):
        name, _, weight = item.rpartition(":")
        item = {"name": name, "weight": weight}
    if not isinstance(item, dict) or set(item) - {"name", "weight"}:
        raise ControlPilotError(f'{where}: {{"name": LORA, "weight": 0.6}}, found {item!r}')
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or Path(name).name != name or name.startswith("."):
        raise ControlPilotError(f"{where}.name: the name of a LoRA in models/loras/, found {name!r}")
    file = lora_file_name(name)
    if not (loras / file).is_file():
        raise ControlPilotError(
            f"{where}.name: no {file} in {workspace.display(loras)}; publish it first "
            f"(its job page's Publish button, or `trainpilot comfy publish {name}`)"
        )
    return LoraUse(file, _number(item.get("weight", 1.0), f"{where}.weight", "e.g. 0.6"))


def _number(value: Any, where: str, example: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ControlPilotError(f"{where}: expected a number, {example}; found {value!r}")
    return number


def _whole(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ControlPilotError(f"{where}: a whole number from {low} to {high}, found {value!r}")
    return value


def _size(value: Any) -> int | None:
    if value is None:
        return None
    side = _whole(value, "size", 64, 4096)
    if side % 8:
        raise ControlPilotError(f"size: a multiple of 8, e.g. {side - side % 8}; found {side}")
    return side


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
