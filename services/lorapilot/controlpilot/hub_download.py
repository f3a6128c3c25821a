"""Downloading a model from the Hugging Face hub into models/, in a background thread, with progress.

A pipeline repo goes to `models/diffusers/<name>/` (snapshot_download), one file to
`models/<kind>/<file>` (hf_hub_download, kind checkpoints by default). Each download is fetched
into a hidden `.<name>.partial` beside its target and renamed when complete, so the inventory
never lists half a model. Progress (bytes done/total, state, error) is rewritten atomically to
`<workspace>/cache/tmp/downloads/<id>.json` for the page to poll.

The token is a secret: only the download thread holds it. Progress files, log lines and error
messages never contain it; every error text is scrubbed of it before it is kept anywhere.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HFValidationError,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import filter_repo_objects, validate_repo_id
from pydantic import SecretStr
from tqdm import tqdm

from lorapilot.atomic_files import write_json_atomic
from lorapilot.controlpilot.errors import ConflictError, ControlPilotError
from lorapilot.errors import LoraPilotError
from lorapilot.web.bodies import RequestBody
from lorapilot.workspace import NAME_MAX, Workspace

logger = logging.getLogger(__name__)

TOKEN_ENV = "HF_TOKEN"
TOKEN_FILE = "hf-token"  # <workspace>/config/hf-token, owner-only, one line
FILE_KINDS = ("checkpoints", "vae", "text_encoders", "loras")
HUB_URL = re.compile(r"^https?://(www\.)?huggingface\.co/")
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
# What a pipeline download leaves out: the big single-file checkpoints at the top of many repos
# (every component folder holds the same weights), other frameworks' weights, and the safety
# checker, which the engine never loads (families/sd.py passes safety_checker=None).
PIPELINE_ALLOW = ["model_index.json", "*/*"]
PIPELINE_IGNORE = ["*.ckpt", "*.msgpack", "*.onnx", "*.onnx_data", "*.h5", "*.pb", "safety_checker/*"]
PICKLED_WEIGHTS = ["*/*.bin", "*/*.pt", "*/*.pth"]  # left out when safetensors of the same are there
VARIANT_WEIGHTS = ["*/*.fp16.*", "*/*.non_ema.*", "*/*.ema.*"]
WRITE_EVERY_S = 0.5


class DownloadError(LoraPilotError):
    """A download that cannot go on; the message is shown to the user as it is (after scrubbing)."""


class DownloadState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class DownloadBody(RequestBody):
    """The body of `POST /api/models/download`, as sent; `DownloadRequest.from_body` checks it."""

    repo_id: str = ""  # owner/name, or the repo's hub URL
    filename: str | None = None
    name: str | None = None
    kind: str | None = None
    token: SecretStr | None = None  # for this download only; never kept, never shown

    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token is not None else None


@dataclass(frozen=True)
class DownloadRequest:
    repo_id: str
    filename: str | None  # one file of the repo; None: the whole diffusers pipeline
    name: str  # the folder (pipeline) or file name in models/<kind>/
    kind: str

    @classmethod
    def from_body(cls, body: DownloadBody) -> DownloadRequest:
        repo_id = HUB_URL.sub("", body.repo_id.strip()).strip("/")
        try:
            validate_repo_id(repo_id)
        except HFValidationError as exc:
            raise ControlPilotError(
                f"repo_id {repo_id!r} is not a hub repo id ({exc}); write it as owner/name, "
                "e.g. stabilityai/stable-diffusion-xl-base-1.0"
            ) from None
        filename = (body.filename or "").strip() or None
        kind = body.kind or ("checkpoints" if filename else "diffusers")
        if filename:
            parts = PurePosixPath(filename).parts
            if filename.startswith("/") or ".." in parts or "\\" in filename:
                raise ControlPilotError(
                    f"filename {filename!r}: give the file's path inside the repo, "
                    "e.g. sd_xl_base_1.0.safetensors"
                )
            if kind not in FILE_KINDS:
                raise ControlPilotError(f"kind {kind!r}: one file goes to one of {', '.join(FILE_KINDS)}")
        elif kind != "diffusers":
            raise ControlPilotError(
                f"kind {kind!r}: a whole repo goes to diffusers; give a filename to fetch a file into {kind}"
            )
        default = PurePosixPath(filename).name if filename else repo_id.split("/")[-1]
        name = (body.name or "").strip() or default
        if not _NAME.match(name):
            raise ControlPilotError(
                f"name {name!r}: use letters, digits, '.', '_' and '-' only, not starting with '.'"
            )
        suffix = PurePosixPath(filename).suffix if filename else ""
        if suffix and not name.endswith(suffix):  # a file keeps its format's suffix, or no loader finds it
            name += suffix
        if len(name.encode()) > NAME_MAX:  # the file system's limit on one name
            raise ControlPilotError(
                f"name {name[:60]!r}… is {len(name)} characters; a file name takes at most {NAME_MAX}"
            )
        return cls(repo_id, filename, name, kind)


@dataclass
class Download:
    """What the progress file holds (and never the token)."""

    id: str
    repo_id: str
    filename: str | None
    target: str  # /workspace/models/...
    state: str = DownloadState.QUEUED.value
    bytes_done: int = 0
    bytes_total: int | None = None
    error: str | None = None
    token_source: str | None = None  # where the token came from (request, HF_TOKEN, config/hf-token)
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve_token(ws: Workspace, given: str | None) -> tuple[str | None, str | None]:
    """(token, where it came from): the request's, else $HF_TOKEN, else config/hf-token, else none."""
    if isinstance(given, str) and given.strip():
        return given.strip(), "request"
    if os.environ.get(TOKEN_ENV, "").strip():
        return os.environ[TOKEN_ENV].strip(), TOKEN_ENV
    try:
        stored = (ws.config / TOKEN_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        stored = ""
    return (stored, f"config/{TOKEN_FILE}") if stored else (None, None)


def scrub(text: str, token: str | None) -> str:
    return text.replace(token, "[token]") if token else text


class Downloads:
    """The downloads of one ControlPilot process: starts them, lists every progress file."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.folder = ws.downloads
        self._active: dict[str, Path] = {}  # download id -> target, while its thread runs
        self._lock = threading.Lock()

    def start(self, request: DownloadRequest, given_token: str | None = None) -> Download:
        target = self.ws.model_dir(request.kind) / request.name
        if target.exists():
            raise ConflictError(f"{self.ws.display(target)} already exists; delete it or choose another name")
        token, source = resolve_token(self.ws, given_token)
        logger.info("download: %s -> %s", _what(request), self.ws.display(target))
        return self.start_task(
            Task(request.repo_id, request.filename, target, source),
            lambda progress: fetch(request, target, token, progress),
            lambda exc: scrub(_explain(exc, request), token),
        )

    def start_task(
        self, task: Task, work: Callable[[Progress], None], explain: Callable[[Exception], str]
    ) -> Download:
        """Run `work` in a thread with a progress file, like a hub download (the catalog's pulls use
        it); `explain` turns its failure into the message shown, scrubbed of any token."""
        download = Download(
            id=uuid.uuid4().hex[:12],
            repo_id=task.repo_id,
            filename=task.filename,
            target=self.ws.display(task.target),
            token_source=task.token_source,
        )
        with self._lock:
            if task.target in self._active.values():
                raise ConflictError(f"{download.target} is being downloaded already")
            self._active[download.id] = task.target
        progress = Progress(self.folder, download)
        progress.write(force=True)
        queued = Download(**download.to_json())  # the thread goes on changing `download`
        thread = threading.Thread(
            target=self._run, args=(progress, work, explain), name=f"hub-download-{download.id}"
        )
        thread.daemon = True  # a download never holds up a shutdown; its .partial folder is resumed later
        thread.start()
        return queued

    def history(self) -> list[Download]:
        """Every download this workspace remembers, newest first; one left running by a previous
        process (a restart) is reported failed, since nothing is fetching it any more."""
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                download = Download(**json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                logger.warning("cannot read download progress %s: %s", path, exc)
                continue
            with self._lock:
                orphan = download.id not in self._active
            if orphan and download.state in (DownloadState.QUEUED, DownloadState.RUNNING):
                download.state = DownloadState.FAILED.value
                download.error = "interrupted when ControlPilot restarted; start it again (it resumes)"
                Progress(self.folder, download).write(force=True)
            found.append(download)
        return sorted(found, key=lambda d: -d.started_at)

    def _run(
        self, progress: Progress, work: Callable[[Progress], None], explain: Callable[[Exception], str]
    ) -> None:
        download = progress.download
        try:
            progress.set_state(DownloadState.RUNNING)
            work(progress)
            progress.finish(DownloadState.DONE)
            logger.info("download %s done: %s", download.id, download.target)
        except Exception as exc:  # every failure ends the download as failed, with its reason shown
            message = explain(exc)
            logger.warning("download %s of %s failed: %s", download.id, download.repo_id, message)
            progress.finish(DownloadState.FAILED, message)
        finally:
            with self._lock:
                self._active.pop(download.id, None)


@dataclass(frozen=True)
class Task:
    """What a download fetches and where to: shown on the page while it runs."""

    repo_id: str
    filename: str | None
    target: Path
    token_source: str | None  # where the token came from; never the token


class Progress:
    """One download's progress file, rewritten atomically at most every WRITE_EVERY_S seconds."""

    def __init__(self, folder: Path, download: Download) -> None:
        self.path = folder / f"{download.id}.json"
        self.download = download
        self._lock = threading.Lock()
        self._written = 0.0

    def bytes_seen(self, done: float, total: float | None) -> None:
        with self._lock:
            self.download.bytes_done = max(self.download.bytes_done, int(done))
            if total and not self.download.bytes_total:
                self.download.bytes_total = int(total)
        self.write()

    def set_state(self, state: DownloadState) -> None:
        self.download.state = state.value
        self.write(force=True)

    def finish(self, state: DownloadState, error: str | None = None) -> None:
        self.download.state, self.download.error = state.value, error
        self.download.finished_at = time.time()
        if state is DownloadState.DONE and self.download.bytes_total:
            self.download.bytes_done = self.download.bytes_total
        self.write(force=True)

    def write(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._written < WRITE_EVERY_S:
                return
            self._written = now
            self.download.updated_at = time.time()
            write_json_atomic(self.path, self.download.to_json())


class _Discard:
    """Where the silent progress bars draw to."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class _ByteBar(tqdm):
    """A tqdm that draws nowhere and hands huggingface_hub's byte counts to one download's Progress.

    snapshot_download counts the same bytes on two bars (received and written): the larger count
    is the progress, so nothing is counted twice."""

    progress: Progress

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("name", None)  # huggingface_hub names its own bars; plain tqdm refuses the keyword
        kwargs["file"] = _Discard()
        super().__init__(*args, **kwargs)

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        if self.unit == "B":
            self.progress.bytes_seen(self.n, self.total)
        return shown


def fetch(request: DownloadRequest, target: Path, token: str | None, progress: Progress) -> None:
    """Download into `.<name>.partial` beside `target`, then rename it into place."""
    if constants.HF_HUB_OFFLINE:
        raise DownloadError(
            "the hub is offline here (HF_HUB_OFFLINE is set); unset HF_HUB_OFFLINE in the appliance's "
            "environment and restart ControlPilot, or copy the model into /workspace/models/ yourself"
        )
    sizes = _repo_files(request.repo_id, token)
    bar = type("Bar", (_ByteBar,), {"progress": progress})
    partial = target.with_name(f".{target.name}.partial")
    if request.filename:
        if request.filename not in sizes:
            shown = ", ".join(sorted(f for f in sizes if _is_weights(f))[:8]) or "none"
            raise DownloadError(f"{request.repo_id} has no file {request.filename!r} (model files: {shown})")
        progress.bytes_seen(0, sizes[request.filename])
        got = hf_hub_download(
            request.repo_id, request.filename, local_dir=partial, token=token, **_progress_bar(bar)
        )
        Path(got).replace(target)
        shutil.rmtree(partial, ignore_errors=True)
        return
    if "model_index.json" not in sizes:
        example = next((f for f in sorted(sizes) if _is_weights(f)), "model.safetensors")
        raise DownloadError(
            f"{request.repo_id} is not a diffusers pipeline (it has no model_index.json); "
            f"to fetch one checkpoint file, give its file name, e.g. {example}"
        )
    ignore = pipeline_ignore(list(sizes))
    wanted = list(filter_repo_objects(list(sizes), allow_patterns=PIPELINE_ALLOW, ignore_patterns=ignore))
    progress.bytes_seen(0, sum(sizes[name] for name in wanted) or None)
    snapshot_download(
        request.repo_id,
        local_dir=partial,
        allow_patterns=PIPELINE_ALLOW,
        ignore_patterns=ignore,
        token=token,
        tqdm_class=bar,
    )
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # huggingface_hub's resume bookkeeping
    partial.rename(target)


def _progress_bar(bar: type[_ByteBar]) -> dict[str, Any]:
    """hf_hub_download's `tqdm_class`, where the installed huggingface_hub has it (older releases
    do not: the download then shows its total only, and its bytes when done)."""
    accepted = "tqdm_class" in inspect.signature(hf_hub_download).parameters
    return {"tqdm_class": bar} if accepted else {}


def pipeline_ignore(files: list[str]) -> list[str]:
    """What a pipeline download skips: duplicate weights in other formats or precisions."""
    ignore = list(PIPELINE_IGNORE)
    components = [f for f in files if "/" in f]
    plain = [f for f in components if f.endswith(".safetensors") and not _is_variant(f)]
    if plain:
        ignore += PICKLED_WEIGHTS + VARIANT_WEIGHTS
    elif any(f.endswith(".safetensors") for f in components):
        ignore += PICKLED_WEIGHTS
    return ignore


def _is_variant(name: str) -> bool:
    return any(f".{variant}." in PurePosixPath(name).name for variant in ("fp16", "non_ema", "ema"))


def _is_weights(name: str) -> bool:
    return PurePosixPath(name).suffix in (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf")


def _repo_files(repo_id: str, token: str | None) -> dict[str, int]:
    """Every file of the repo and its size, from one hub call."""
    info = HfApi(token=token).model_info(repo_id, files_metadata=True)
    return {sibling.rfilename: sibling.size or 0 for sibling in info.siblings or []}


def _what(request: DownloadRequest) -> str:
    return f"{request.repo_id}/{request.filename}" if request.filename else request.repo_id


def _explain(exc: Exception, request: DownloadRequest) -> str:
    """The message a user can act on, for the hub's errors; others keep their own text."""
    if isinstance(exc, DownloadError):
        return str(exc)
    if isinstance(exc, GatedRepoError):
        return (
            f"{request.repo_id} is gated: accept its licence on huggingface.co/{request.repo_id} with the "
            "account whose token you give, then try again"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return (
            f"{request.repo_id} was not found on the hub, or it is private; check the repo id, "
            "or give a token that can read it"
        )
    if isinstance(exc, EntryNotFoundError):
        return f"{request.repo_id} has no file {request.filename!r}"
    return f"{type(exc).__name__}: {exc}"
