"""Pulling a catalog entry into the workspace: resumable, hash-checked, atomic.

A single file is fetched over HTTP from `<endpoint>/<repo>/resolve/<revision>/<filename>` into
`models/<folder>/.<name>.part`; an interrupted pull leaves the `.part` and the next pull asks for the
rest with an HTTP Range request. The finished file's sha256 (and size) are checked before it is
renamed into place, so a wrong or truncated file never appears under its name. The endpoint is the
hub, or `LORAPILOT_HF_ENDPOINT` / `HF_ENDPOINT` (a mirror, or a test's file server). A diffusers
pipeline goes through ControlPilot's hub download (huggingface_hub, which resumes by itself).

Gated repos take the appliance's hub token (HF_TOKEN or config/hf-token). It goes in an
Authorization header that is not repeated on redirects (the hub redirects to signed CDN URLs), and
never into a message or a log line.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

from lorapilot.appliance.model_catalog import CatalogEntry
from lorapilot.atomic_files import fsync_dir
from lorapilot.comfy.errors import SettingsError
from lorapilot.comfy.settings import load_settings, save_settings, url_origin
from lorapilot.controlpilot.hub_download import DownloadRequest, fetch, resolve_token, scrub
from lorapilot.errors import LoraPilotError
from lorapilot.workspace import Workspace

logger = logging.getLogger(__name__)

ENDPOINT_ENVS = ("LORAPILOT_HF_ENDPOINT", "HF_ENDPOINT")
DEFAULT_ENDPOINT = "https://huggingface.co"
CHUNK = 1024 * 1024
TIMEOUT_S = 60.0
RETRY_PAUSE_S = 2.0
Progress = Callable[[int, int | None], None]  # (bytes done, bytes total)


class PullError(LoraPilotError):
    """A pull that cannot finish; the message says why and what to do."""


@dataclass(frozen=True)
class PullResult:
    entry: str
    path: Path
    already_there: bool
    resumed_from: int  # bytes the pull found in its .part file
    comfy_filled: dict[str, str]  # family -> input set in comfy.yaml
    comfy_note: str | None  # why comfy.yaml was left alone, when it was


def endpoint() -> str:
    for name in ENDPOINT_ENVS:
        if os.environ.get(name, "").strip():
            return os.environ[name].strip().rstrip("/")
    return DEFAULT_ENDPOINT


def file_url(entry: CatalogEntry) -> str:
    quoted = urllib.parse.quote(entry.filename or "", safe="/")
    return f"{endpoint()}/{entry.repo}/resolve/{urllib.parse.quote(entry.revision, safe='')}/{quoted}"


def part_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.part")


def pull(
    ws: Workspace,
    entry: CatalogEntry,
    progress: Progress | None = None,
    *,
    token: str | None = None,
    attempts: int = 3,
) -> PullResult:
    """Fetch `entry` into models/<folder>/ (or find it there already), then fill comfy.yaml's bases."""
    token = token or resolve_token(ws, None)[0]
    if entry.gated and not token:
        raise PullError(gated_message(entry, ws))
    target = entry.target(ws)
    target.parent.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda done, total: None)
    try:
        if entry.folder == "diffusers":
            already, resumed = _pull_pipeline(entry, target, token, report), 0
        else:
            already, resumed = _pull_file(entry, target, token, report, attempts)
    except PullError as exc:
        raise PullError(scrub(str(exc), token)) from None
    except OSError as exc:  # a full disk, a read-only folder: what was fetched stays in the .part
        raise PullError(
            f"{entry.name}: cannot write into {ws.display(target.parent)} ({exc.strerror or exc}); "
            "free space or fix the folder, then pull again to resume"
        ) from None
    filled, note = fill_comfy_bases(ws, entry)
    return PullResult(entry.name, target, already, resumed, filled, note)


# -- one file ---------------------------------------------------------------------------------------
def _pull_file(
    entry: CatalogEntry, target: Path, token: str | None, report: Progress, attempts: int
) -> tuple[bool, int]:
    if target.exists():
        _check_existing(entry, target)
        report(entry.size_bytes, entry.size_bytes)
        return True, 0
    part = part_path(target)
    with open(part, "ab") as handle:  # created empty when absent; the lock keeps a second pull out
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PullError(f"{entry.name} is being pulled already (into {part.name}); wait for it") from None
        partial = _PartFile(part, handle)
        resumed = partial.size
        for attempt in range(1, attempts + 1):
            try:
                _download(entry, partial, token, report)
                break
            except _DroppedError as exc:
                if attempt == attempts:
                    raise PullError(
                        f"{entry.name}: the download stopped at {exc.done} of {entry.size_bytes} bytes "
                        f"({exc.reason}); pull it again to resume from there"
                    ) from None
                logger.info(
                    "pull %s: %s; resuming (try %d of %d)", entry.name, exc.reason, attempt + 1, attempts
                )
                time.sleep(RETRY_PAUSE_S)
        handle.flush()
        os.fsync(handle.fileno())
        _verify(entry, part, partial.digest.hexdigest())
        os.replace(part, target)
    fsync_dir(target.parent)
    logger.info("pulled %s into %s", entry.name, target)
    return False, resumed


class _DroppedError(Exception):
    """The connection ended before the whole file came; the .part keeps what did."""

    def __init__(self, done: int, reason: str) -> None:
        super().__init__(reason)
        self.done, self.reason = done, reason


class _PartFile:
    """The `.part` file open for appending, with the sha256 of what it holds so far."""

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self.path, self.handle = path, handle
        self.digest = _hash_file(path)

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def append(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self.digest.update(chunk)

    def restart(self) -> None:
        self.handle.truncate(0)
        self.digest = hashlib.sha256()


def _download(entry: CatalogEntry, partial: _PartFile, token: str | None, report: Progress) -> None:
    """Append the rest of the file to the .part, asking for it from where the .part ends."""
    have = partial.size
    if not entry.size_is_estimate and have == entry.size_bytes:
        return  # complete already (an earlier pull stopped between download and rename)
    request = urllib.request.Request(file_url(entry), headers={"User-Agent": "lorapilot"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    if token:
        request.add_unredirected_header("Authorization", f"Bearer {token}")  # not sent on to the CDN
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing after `have`: the .part holds the whole file (or more)
            return
        raise PullError(_http_message(entry, exc.code)) from None
    except (urllib.error.URLError, OSError) as exc:
        raise _DroppedError(have, f"cannot reach {endpoint()}: {getattr(exc, 'reason', exc)}") from None
    with response:
        if have and response.status != 206:  # the server sent the whole file again: start over
            partial.restart()
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else entry.size_bytes
        done = have
        report(done, total)
        try:
            while chunk := response.read(CHUNK):
                partial.append(chunk)
                done += len(chunk)
                report(done, total)
        except (HTTPException, OSError) as exc:
            partial.handle.flush()
            raise _DroppedError(done, f"{type(exc).__name__}: {exc}") from None
        partial.handle.flush()
        if done < total:
            raise _DroppedError(done, "the server closed the connection early")


def _verify(entry: CatalogEntry, part: Path, sha256: str) -> None:
    """The finished .part is the file the catalog names; a wrong one is deleted, never renamed."""
    size = part.stat().st_size
    problem = None
    if entry.sha256 and sha256 != entry.sha256:
        problem = f"its sha256 is {sha256}, the catalog expects {entry.sha256}"
    elif not entry.size_is_estimate and size != entry.size_bytes:
        problem = f"it is {size} bytes, the catalog expects {entry.size_bytes}"
    if problem:
        part.unlink(missing_ok=True)
        raise PullError(
            f"{entry.name}: the downloaded {entry.target_name} is not the catalog's file: {problem}. "
            f"It was deleted. Pull it again; if this repeats, the repo changed or the mirror serves "
            f"another file: correct the entry's sha256 and size_bytes (a user entry in config/models.yaml)"
        )


def _check_existing(entry: CatalogEntry, target: Path) -> None:
    """A file already at the target is taken when it is the catalog's file; any other is left alone."""
    size = target.stat().st_size if target.is_file() else -1
    if not target.is_file() or (not entry.size_is_estimate and size != entry.size_bytes):
        raise PullError(
            f"{target} exists and is not {entry.name} ({size} bytes, the catalog expects "
            f"{entry.size_bytes}); move or delete it, then pull again"
        )
    if entry.sha256 and (found := _hash_file(target).hexdigest()) != entry.sha256:
        raise PullError(
            f"{target} exists but its sha256 is {found}, not {entry.name}'s {entry.sha256}; "
            "move or delete it, then pull again"
        )


def _hash_file(path: Path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest


# -- a pipeline -------------------------------------------------------------------------------------
class _Bytes:
    """What hub_download.fetch reports progress to."""

    def __init__(self, report: Progress) -> None:
        self.report = report

    def bytes_seen(self, done: float, total: float | None) -> None:
        self.report(int(done), int(total) if total else None)


def _pull_pipeline(entry: CatalogEntry, target: Path, token: str | None, report: Progress) -> bool:
    if (target / "model_index.json").is_file():
        return True
    if target.exists():
        raise PullError(
            f"{target} exists and is not a diffusers pipeline; move or delete it, then pull again"
        )
    request = DownloadRequest(entry.repo, None, entry.target_name, "diffusers")
    try:
        fetch(request, target, token, _Bytes(report))  # type: ignore[arg-type]
    except LoraPilotError as exc:
        raise PullError(f"{entry.name}: {exc}") from None
    except Exception as exc:  # the hub's own errors: gated, not found, network
        raise PullError(f"{entry.name}: {type(exc).__name__}: {exc}") from None
    return False


# -- comfy.yaml -------------------------------------------------------------------------------------
def fill_comfy_bases(ws: Workspace, entry: CatalogEntry) -> tuple[dict[str, str], str | None]:
    """Set each base input the entry fills in config/comfy.yaml, where it is not set yet."""
    if not entry.comfy:
        return {}, None
    try:
        settings = load_settings(ws)
        file_url = url_origin(ws).file_url
    except SettingsError as exc:
        return {}, f"config/comfy.yaml left as it is: {exc}"
    bases = {family: dict(files) for family, files in settings.bases.items()}
    filled, kept = {}, []
    for family, key in entry.comfy.items():
        current = bases.setdefault(family, {}).get(key)
        if current and current != entry.target_name:
            kept.append(f"{family}.{key} stays {current}")
        elif not current:
            bases[family][key] = entry.target_name
            filled[family] = key
    if filled:
        save_settings(ws, replace(settings, url=file_url or "", bases=bases))
    note = f"already set in config/comfy.yaml: {', '.join(kept)}" if kept else None
    return filled, note


def gated_message(entry: CatalogEntry, ws: Workspace) -> str:
    licence = entry.license or "see the repo"
    return (
        f"{entry.name} comes from {entry.repo}, a gated repo: accept its licence ({licence}) on "
        f"https://huggingface.co/{entry.repo}, then give the appliance a hub token that can read it: "
        f"the HF_TOKEN environment variable or the file {ws.display(ws.config / 'hf-token')}"
    )


def _http_message(entry: CatalogEntry, code: int) -> str:
    where = f"{endpoint()}/{entry.repo} ({entry.filename})"
    if code in (401, 403):
        return (
            f"{entry.name}: {where} refused the download (HTTP {code}): the repo is gated or private; "
            f"accept its licence on https://huggingface.co/{entry.repo} with the account whose token "
            "the appliance has"
        )
    if code == 404:
        return (
            f"{entry.name}: {where} has no such file (HTTP 404); check the entry's repo, filename, revision"
        )
    return f"{entry.name}: {where} answered HTTP {code}; try again later"
