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
from typing import Any, ClassVar

from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_file, url_for
from pydantic import Field, ValidationInfo, field_validator, model_validator

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
from lorapilot.web.bodies import RequestBody
from lorapilot.workspace import Workspace

log = logging.getLogger(__name__)
bp = Blueprint("comfy_actions", __name__, url_prefix="/api/jobs/<ref>/comfy")

RENDER_STATE_FILE = "test-render.json"  # beside the bridge's sweep.json in outputs/<name>/comfy/
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
MAX_STRENGTHS = 16
MAX_BLEND = 4
WHOLE_RANGES = {"seed": (0, 2**32 - 1), "steps": (1, 200), "size": (64, 4096)}  # of a render request
REACHABLE_TIMEOUT_S = 5.0  # the quick look before answering 202; the render itself waits longer


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


class BlendItem(RequestBody):
    """One other LoRA of a test render: `{"name": OTHER, "weight": 0.6}`, or the CLI's `OTHER:0.6`."""

    name: str
    weight: float = 1.0

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, item: Any) -> Any:
        if isinstance(item, str):
            name, _, weight = item.rpartition(":")
            item = {"name": name, "weight": weight}
        if not isinstance(item, dict) or set(item) - {"name", "weight"}:
            raise ValueError(f'{{"name": LORA, "weight": 0.6}}, found {item!r}')
        return item

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, name: Any) -> str:
        if not isinstance(name, str) or not name.strip() or Path(name).name != name or name.startswith("."):
            raise ValueError(f"the name of a LoRA in models/loras/, found {name!r}")
        return name

    @field_validator("weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> float:
        return _number(value, "e.g. 0.6")


class RenderRequest(RequestBody):
    """The body of `POST .../comfy/test`: the CLI's `--strengths`, `--with`, `--seed`, `--steps`, `--size`."""

    not_an_object: ClassVar[str] = 'send a JSON object, e.g. {"strengths": [0, 0.5, 1.0]}'

    strengths: tuple[float, ...] | None = None  # None: config/comfy.yaml's strengths
    blend: tuple[BlendItem, ...] = Field((), alias="with")
    seed: int = 42
    steps: int = 20
    size: int | None = None  # None: the family's native size

    @field_validator("strengths", mode="before")
    @classmethod
    def _strengths(cls, value: Any) -> tuple[float, ...] | None:
        if value is None or value in ("", []):
            return None
        items = [s for s in re.split(r"[,\s]+", value) if s] if isinstance(value, str) else value
        example = "e.g. [0, 0.5, 0.8, 1.0] or the text 0, 0.5, 0.8, 1.0"
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_STRENGTHS:
            raise ValueError(f"1 to {MAX_STRENGTHS} numbers, {example}; found {value!r}")
        return tuple(_number(item, example) for item in items)

    @field_validator("blend", mode="before")
    @classmethod
    def _blend(cls, items: Any) -> Any:
        items = items or []
        if not isinstance(items, list) or len(items) > MAX_BLEND:
            raise ValueError(f'up to {MAX_BLEND} objects like {{"name": LORA, "weight": 0.6}}')
        return items

    @field_validator("seed", "steps", "size", mode="before")
    @classmethod
    def _whole(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name == "size":
            return value
        low, high = WHOLE_RANGES[info.field_name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"a whole number from {low} to {high}, found {value!r}")
        return value

    @field_validator("size")
    @classmethod
    def _multiple_of_8(cls, side: int | None) -> int | None:
        if side is not None and side % 8:
            raise ValueError(f"a multiple of 8, e.g. {side - side % 8}; found {side}")
        return side

    def loras(self, loras: Path, workspace: Workspace) -> tuple[LoraUse, ...]:
        """The blend as published files; one that is not in models/loras/ is refused, naming it."""
        uses = []
        for index, item in enumerate(self.blend):
            file = lora_file_name(item.name)
            if not (loras / file).is_file():
                raise ControlPilotError(
                    f"with[{index}].name: no {file} in {workspace.display(loras)}; publish it first "
                    f"(its job page's Publish button, or `trainpilot comfy publish {item.name}`)"
                )
            uses.append(LoraUse(file, item.weight))
        return tuple(uses)


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
    options = RenderRequest.parse({} if body is None else body)
    blend = options.loras(ws.model_dir("loras"), ws)
    settings = load_settings(ws)
    publication = publish(ws, record)
    folder = _comfy_folder(record)
    _check_reachable(settings, ws)
    strengths = options.strengths or settings.strengths
    state = RenderState(
        state="running",
        started_at=_now(),
        strengths=list(strengths),
        blend=[{"name": b.name, "weight": b.strength} for b in blend],
        total=len(prompts_of(read_sidecar(publication.sidecar))) * len(strengths),
    )
    renders: Renders = current_app.extensions["controlpilot.comfy_renders"]
    renders.start(
        record.id,
        begin=lambda: state.save(folder),
        work=lambda: _render(
            ws, record, settings=settings, options=options, blend=blend, state=state, folder=folder
        ),
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
    blend: tuple[LoraUse, ...],
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
            blend=blend,
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


# -- checking the request ------------------------------------------------------------------------
def _number(value: Any, example: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"expected a number, {example}; found {value!r}")
    return number


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
