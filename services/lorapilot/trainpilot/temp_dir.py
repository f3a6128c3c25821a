"""The trainer's temporary files: a private folder per trainpilot process inside the workspace.

Libraries write to TMPDIR on their own (multiprocessing's `pymp-*` folder with the fork server's
socket, inductor caches, a distributed run's rendezvous), and a daemon killed with SIGKILL runs no
finaliser, so whatever it made there stays. So a daemon (or `run`, `train`) points TMPDIR at its
own folder under the workspace's `cache/tmp/trainpilot/` and holds a shared `flock` on a lock file
beside it; its training processes take the same shared lock, so the folder stays while any of them
lives. Whoever starts next removes every folder whose lock nobody holds: what a dead process left.
Several daemons may share a workspace; each sweeps only what no live process holds.

A unix socket's path may not exceed 107 bytes, and the fork server's socket lives in
multiprocessing's temp folder (`<TMPDIR>/pymp-*/listener-*`), so a daemon in a deep workspace
reaches its folder through a short alias, `/proc/self/fd/<n>`: the same folder, by a name that is
valid in that process only (its children get the real path in TMPDIR).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from multiprocessing import util
from pathlib import Path

from lorapilot.spool.store import try_lock
from lorapilot.workspace import Workspace

log = logging.getLogger(__name__)
LOCK_SUFFIX = ".lock"
_held: list[int] = []  # shared locks this process holds on its folders, closed when it exits


def temp_area(workspace: Workspace) -> Path:
    """Where the trainer's per-process temp folders live."""
    return workspace.tmp / "trainpilot"


@contextlib.contextmanager
def trainer_temp_dir(workspace: Workspace, *, socket_safe: bool = False) -> Iterator[Path]:
    """Sweep what dead processes left, then point TMPDIR (this process's and its children's) at a
    fresh private folder. The folder is removed when the process exits, after multiprocessing has
    removed its own folder in it; TMPDIR is restored when the block ends.

    socket_safe: this process names the folder by its short alias (for the fork server's socket);
    only for a process that hands no temp path to another (the daemon)."""
    area = temp_area(workspace)
    area.mkdir(parents=True, exist_ok=True)
    sweep(area)
    folder = _create(area)
    saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = _short_alias(folder) if socket_safe else str(folder)
    try:
        yield folder
    finally:
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        tempfile.tempdir = saved_tempdir


def hold(folder: str | os.PathLike[str]) -> None:
    """Keep `folder` (a daemon's temp folder) from being swept while this process lives: a
    training process may outlive its daemon by the seconds it takes to save."""
    lock = Path(folder).with_name(Path(folder).name + LOCK_SUFFIX)
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_SH)
        _held.append(fd)


def sweep(area: Path) -> list[Path]:
    """Remove the temp folders under `area` whose owners are gone; the folders removed."""
    removed = []
    if not area.is_dir():
        return removed
    for lock in sorted(area.glob(f"*{LOCK_SUFFIX}")):
        fd = try_lock(lock)
        if fd is None:
            continue  # a live process holds it
        try:
            folder = lock.with_name(lock.name.removesuffix(LOCK_SUFFIX))
            shutil.rmtree(folder, ignore_errors=True)
            lock.unlink(missing_ok=True)  # the folder first: a folder never outlives its lock file
            removed.append(folder)
        finally:
            os.close(fd)
    for folder in area.iterdir():  # a folder whose lock file is gone: its sweep was interrupted
        if folder.is_dir() and not folder.with_name(folder.name + LOCK_SUFFIX).exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        log.info("removed %d temp folder(s) left by trainpilot processes that are gone", len(removed))
    return removed


def _create(area: Path) -> Path:
    """A new folder with its lock file beside it, locked (shared) by this process until it exits.

    The lock file comes first, so a sweep never sees this folder without a live lock."""
    prefix = f"{socket.gethostname()}-{os.getpid()}-"
    while True:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=LOCK_SUFFIX, dir=area)
        fcntl.flock(fd, fcntl.LOCK_SH)
        lock = Path(name)
        try:
            if os.path.samestat(os.stat(lock), os.fstat(fd)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # swept between its creation and the lock: try another name
    _held.append(fd)
    folder = lock.with_name(lock.name.removesuffix(LOCK_SUFFIX))
    folder.mkdir()
    # After multiprocessing's own removal of its pymp-* folder in it (exitpriority -100).
    util.Finalize(None, _remove, args=(folder, lock, fd), exitpriority=-200)
    return folder


def _short_alias(folder: Path) -> str:
    """`/proc/self/fd/<n>` for an fd open on `folder` for the life of this process; the folder's
    own path where there is no /proc."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    alias = f"/proc/self/fd/{fd}"
    try:
        usable = os.path.samestat(os.stat(alias), os.fstat(fd))
    except OSError:
        usable = False
    if not usable:
        os.close(fd)
        return str(folder)
    _held.append(fd)
    return alias


def _remove(folder: Path, lock: Path, fd: int) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    lock.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        os.close(fd)
