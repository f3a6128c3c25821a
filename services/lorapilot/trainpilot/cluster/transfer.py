"""Moving a job's files between the head's workspace and a node's, through Ray only (no shared
filesystem): the node fetches the job's inputs from the head before it trains, and mirrors what the
run writes back into the head's `outputs/<name>/` while it trains, so the head always has the live
status, metrics, samples, saves and a resumable `state/`.

`HeadFiles` is a Ray actor pinned to the head's node: the only code that touches the head's
workspace for a node. It reads anywhere in the workspace (the inputs a validated spec names) and
writes only under `outputs/`, every write atomic, a `state/` folder swapped in whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel

from lorapilot.atomic_files import fsync_dir, write_atomic, write_json_atomic
from lorapilot.engine.checkpoint import partial_state
from lorapilot.workspace import Workspace

log = logging.getLogger("lorapilot.cluster.transfer")
CHUNK = 16 * 1024 * 1024  # bytes per call: well inside Ray's object store, a few calls for a LoRA
STATE_DIR = "state"
SYNC_RECORD = ".lorapilot-fetched.json"  # on a node: what was fetched from the head, and its version
STAGING_LOCK = ".lorapilot-staging.lock"
HEAD_TOKEN = "cache/cluster/head-token"  # in the head's workspace: a node that reads it shares the folder


class RemoteFile(BaseModel):
    """A file of the head's workspace, as the node must have it: path relative to the workspace root."""

    rel: str
    size: int
    mtime_ns: int


class TransferError(RuntimeError):
    """A path outside what the transfer may touch: a bug or a hostile caller, never a user's input."""


PRIVATE = ("config",)  # the appliance's secrets (password, tokens, SSH keys) never leave the head


def _checked(rel: str, *, under: str | None = None) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        raise TransferError(f"not a workspace-relative path: {rel!r}")
    if path.parts[0] in PRIVATE:
        raise TransferError(f"{rel!r} is private to the head")
    if under is not None and path.parts[0] != under:
        raise TransferError(f"{rel!r} is not under {under}/")
    return path


class HeadFiles:
    """The head's side (a Ray actor on the head node: `ray.remote(HeadFiles).options(...)`)."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        token = self.root / HEAD_TOKEN
        try:
            self._token = token.read_text()
        except FileNotFoundError:
            token.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(token, secrets.token_hex(16).encode())
            self._token = token.read_text()

    def token(self) -> str:
        return self._token

    def _path(self, rel: str, *, under: str | None = None) -> Path:
        return self.root.joinpath(*_checked(rel, under=under).parts)

    def listing(self, rels: list[str]) -> list[RemoteFile]:
        """Every regular file at or under each of `rels` (hidden files and partial saves left out)."""
        found: list[RemoteFile] = []
        for rel in rels:
            top = self._path(rel)
            paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
            for path in paths:
                inner = path.relative_to(self.root)
                if any(part.startswith(".") or part.endswith((".tmp", ".old")) for part in inner.parts):
                    continue
                stat = path.stat()
                found.append(RemoteFile(rel=inner.as_posix(), size=stat.st_size, mtime_ns=stat.st_mtime_ns))
        return found

    def read(self, rel: str, offset: int, length: int) -> bytes:
        with self._path(rel).open("rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    def write(self, rel: str, offset: int, data: bytes, last: bool) -> None:
        """One chunk of an output file; the file appears (atomically) with its last chunk."""
        target = self._path(rel, under="outputs")
        part = target.with_name(f".{target.name}.incoming")
        target.parent.mkdir(parents=True, exist_ok=True)
        with part.open("r+b" if offset else "wb") as handle:
            handle.seek(offset)
            handle.write(data)
            handle.truncate()
            if last:
                handle.flush()
                os.fsync(handle.fileno())
        if last:
            os.replace(part, target)
            fsync_dir(target.parent)

    def swap_state(self, rel: str) -> None:
        """`<rel>.tmp` (sent file by file) replaces `<rel>`, the way the trainer swaps its own state."""
        state = self._path(rel, under="outputs")
        old = state.with_name(state.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if state.exists():
            state.rename(old)
        partial_state(state).rename(state)
        shutil.rmtree(old, ignore_errors=True)

    def remove(self, rel: str) -> None:
        path = self._path(rel, under="outputs")
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


# -- the node's side ------------------------------------------------------------------------------
def fetch_inputs(
    head: Any, rels: list[str], local: Workspace, should_stop: Callable[[], bool] = lambda: False
) -> int:
    """Copy the head's files at `rels` into the node's workspace; a file fetched before (same size
    and version on the head) is kept, so a model crosses the network once per node. Returns the
    bytes fetched. Several jobs on one node take turns (a lock), so none reads a half-fetched file."""
    import ray  # noqa: PLC0415 - only on a cluster node

    local.root.mkdir(parents=True, exist_ok=True)
    fetched_bytes = 0
    with _staging_lock(local.root):
        record_path = local.root / SYNC_RECORD
        record = _read_record(record_path)
        for remote in ray.get(head.listing.remote(rels)):
            target = local.root.joinpath(*_checked(remote.rel).parts)
            version = [remote.size, remote.mtime_ns]
            if (
                record.get(remote.rel) == version
                and target.is_file()
                and target.stat().st_size == remote.size
            ):
                continue
            if should_stop():
                break
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(f".{target.name}.incoming")
            with part.open("wb") as handle:
                for offset in range(0, max(remote.size, 1), CHUNK):
                    handle.write(ray.get(head.read.remote(remote.rel, offset, CHUNK)))
            if part.stat().st_size != remote.size:
                part.unlink(missing_ok=True)
                raise OSError(f"{remote.rel} changed on the head while it was copied; the job is tried again")
            os.replace(part, target)
            record[remote.rel] = version
            fetched_bytes += remote.size
            write_json_atomic(record_path, record)
    return fetched_bytes


def remove_local_outputs(local: Workspace, name: str) -> None:
    """A node's copy of a run starts from the head's: what an earlier attempt here left is stale."""
    shutil.rmtree(local.output_dir(name), ignore_errors=True)
    record_path = local.root / SYNC_RECORD
    with _staging_lock(local.root):
        record = _read_record(record_path)
        prefix = f"outputs/{name}/"
        kept = {rel: version for rel, version in record.items() if not rel.startswith(prefix)}
        if kept != record:
            write_json_atomic(record_path, kept)


@contextlib.contextmanager
def _staging_lock(root: Path) -> Iterator[None]:
    with (root / STAGING_LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _read_record(path: Path) -> dict[str, list[int]]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class OutputMirror:
    """Sends what a run writes in the node's run folder to the head's, every `interval_s` and once
    more at the end: new and changed files, removals (retention), and `state/` as one unit."""

    def __init__(self, head: Any, local: Workspace, name: str, interval_s: float) -> None:
        self.head, self.interval_s = head, interval_s
        self.folder = local.output_dir(name)
        self.rel = f"outputs/{name}"
        self.sent: dict[str, tuple[int, int]] = {}  # rel → (size, mtime_ns) as the head has it
        self.state_version: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def know(self, present: list[str]) -> None:
        """Files the head has already (fetched from it): removals of these are mirrored too."""
        for rel in present:
            path = self.folder.parent.parent / rel
            if rel.startswith(self.rel + "/") and path.is_file():
                stat = path.stat()
                self.sent[rel] = (stat.st_size, stat.st_mtime_ns)
        state = self.folder / STATE_DIR
        if state.is_dir():
            self.state_version = state.stat().st_ino

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="output-mirror", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync()
            except Exception as exc:  # the head busy or briefly unreachable: the next round retries
                log.warning("sending outputs to the head failed (tried again): %s", exc)

    def finish(self) -> None:
        """Stop the loop and send what is left; the caller learns of a failure (the run is not whole)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sync()

    def sync(self) -> None:
        import ray  # noqa: PLC0415

        with self._lock:
            if not self.folder.is_dir():
                return
            seen: set[str] = set()
            for path in sorted(self.folder.rglob("*")):
                inner = path.relative_to(self.folder)
                if inner.parts[0] == STATE_DIR or not path.is_file():
                    continue
                if any(p.startswith(".") or p.endswith((".tmp", ".old")) for p in inner.parts):
                    continue
                rel = f"{self.rel}/{inner.as_posix()}"
                seen.add(rel)
                stat = path.stat()
                version = (stat.st_size, stat.st_mtime_ns)
                if self.sent.get(rel) != version:
                    self._send(path, rel)
                    self.sent[rel] = version
            for rel in sorted(set(self.sent) - seen):
                ray.get(self.head.remove.remote(rel))
                del self.sent[rel]
            self._sync_state()

    def _send(self, path: Path, rel: str) -> None:
        """Chunk by chunk, in order (each chunk extends the head's partial file)."""
        import ray  # noqa: PLC0415

        data = path.read_bytes()
        chunks = range(0, max(len(data), 1), CHUNK)
        for at in chunks:
            ray.get(self.head.write.remote(rel, at, data[at : at + CHUNK], at == chunks[-1]))

    def _sync_state(self) -> None:
        """The trainer swaps `state/` in whole (rename); a snapshot read across a swap is read again."""
        import ray  # noqa: PLC0415

        state = self.folder / STATE_DIR
        for _ in range(5):
            try:
                before = state.stat().st_ino
            except FileNotFoundError:
                return
            if before == self.state_version:
                return
            try:
                files = {p.name: p.read_bytes() for p in sorted(state.iterdir()) if p.is_file()}
                after = state.stat().st_ino
            except FileNotFoundError:
                continue
            if after != before:
                continue
            target = f"{self.rel}/{STATE_DIR}"
            ray.get(self.head.remove.remote(f"{target}.tmp"))
            names = sorted(files)
            ray.get([self.head.write.remote(f"{target}.tmp/{n}", 0, files[n], True) for n in names])
            ray.get(self.head.swap_state.remote(target))
            self.state_version = before
            return
