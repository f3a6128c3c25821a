"""The one module that knows the /workspace layout (DESIGN §3).

Every service finds its files through `Workspace`; no other module joins these paths by hand.
Paths users write in configs as `/workspace/...` mean "inside this workspace" even when the
workspace lives elsewhere (a native run under `./workspace`), so the guide's paths work as written.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from lorapilot.errors import LoraPilotError

ENV_VAR = "LORAPILOT_WORKSPACE"
DEFAULT_ROOT = Path("/workspace")
# How configs written for the container spell the workspace root.
CONTAINER_ROOT = PurePosixPath("/workspace")
NAME_MAX = 255  # bytes in one file or folder name (ext4, xfs, btrfs, overlayfs)
PATH_MAX = 4096  # bytes in a whole path

MODEL_KINDS = ("checkpoints", "diffusers", "loras", "vae", "text_encoders", "captioners")
# ComfyUI's own folders for split-file models (FLUX.1 transformers, text encoders): models/<folder>/ too
COMFYUI_MODEL_FOLDERS = ("diffusion_models", "unet", "clip")
JOB_STATES = ("incoming", "running", "done", "failed", "cancelled")


class PathEscapeError(LoraPilotError, ValueError):
    """A user-supplied path points outside the workspace."""


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None) -> Workspace:
        """The workspace named by `root`, else `$LORAPILOT_WORKSPACE`, else `/workspace`."""
        chosen = root if root is not None else os.environ.get(ENV_VAR) or DEFAULT_ROOT
        return cls(Path(chosen).expanduser().resolve())

    # -- layout ---------------------------------------------------------------------------
    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def images(self) -> Path:
        return self.datasets / "images"

    @property
    def reg(self) -> Path:
        return self.datasets / "reg"

    @property
    def drafts(self) -> Path:
        """TagPilot's working datasets, before they are exported to `images/<repeats>_<name>/`."""
        return self.datasets / "tagpilot"

    @property
    def trash(self) -> Path:
        """Deleted datasets and images, recoverable until purged."""
        return self.datasets / ".trash"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model_dir(self, kind: str) -> Path:
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}")
        return self.models / kind

    def model_folder(self, folder: str) -> Path:
        """models/<folder>/ for a model kind or one of ComfyUI's split-file folders."""
        if folder in COMFYUI_MODEL_FOLDERS:
            return self.models / folder
        return self.model_dir(folder)

    @property
    def models_config(self) -> Path:
        """config/models.yaml: registered model paths and the user's own model-catalog entries."""
        return self.config / "models.yaml"

    @property
    def downloads(self) -> Path:
        """Progress files of model downloads and catalog pulls, one JSON file each."""
        return self.tmp / "downloads"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    def job_dir(self, state: str) -> Path:
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}; expected one of {', '.join(JOB_STATES)}")
        return self.jobs / state

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def output_dir(self, name: str) -> Path:
        return self.resolve(self.outputs / name)

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def latent_cache(self) -> Path:
        return self.cache / "latents"

    @property
    def text_cache(self) -> Path:
        return self.cache / "text"

    @property
    def tmp(self) -> Path:
        """Services' temporary files (uploads being received, zips being built): never the system /tmp."""
        return self.cache / "tmp"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def profiles(self) -> Path:
        return self.config / "profiles"

    @property
    def cluster_config(self) -> Path:
        """config/cluster.yaml: the Ray cluster the daemon runs jobs on (cluster mode)."""
        return self.config / "cluster.yaml"

    @property
    def idle_config(self) -> Path:
        """config/idle.yaml: when the appliance stops itself (idle stop) and how."""
        return self.config / "idle.yaml"

    @property
    def idle_state(self) -> Path:
        """The idle-stop watcher's state (countdown, busy reasons, what it did), for ControlPilot."""
        return self.config / "idle-state.json"

    @property
    def idle_control(self) -> Path:
        """ControlPilot's cancel or postpone of the idle-stop countdown, read by the watcher."""
        return self.config / "idle-control.json"

    @property
    def cluster_staging(self) -> Path:
        """On a cluster node: the workspace its jobs run in, filled from the head's by the transfer
        (its own folder, so a node never writes into the workspace of the appliance it is part of)."""
        return self.cache / "cluster" / "workspace"

    @property
    def ssh(self) -> Path:
        """config/ssh: the optional SSH server's host key and sshd_config (lorapilot.appliance.ssh)."""
        return self.config / "ssh"

    @property
    def cluster_view_file(self) -> Path:
        """cache/cluster/nodes.json: the cluster's nodes and their jobs, as the daemon last saw them
        (services read this file; only the daemon talks to Ray)."""
        return self.cache / "cluster" / "nodes.json"

    @property
    def ray_token_file(self) -> Path:
        """config/ray-auth-token (0600): the Ray cluster's authentication token when this appliance
        is a Ray head (made at its first start) or a worker (copied there from the head)."""
        return self.config / "ray-auth-token"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def directories(self) -> list[Path]:
        """Every folder of the layout, parents first."""
        dirs = [self.root, self.datasets, self.images, self.reg, self.models]
        dirs += [self.models / kind for kind in MODEL_KINDS]
        dirs += [self.jobs] + [self.jobs / state for state in JOB_STATES]
        dirs += [self.outputs, self.cache, self.latent_cache, self.text_cache]
        dirs += [self.config, self.profiles, self.logs]
        return dirs

    # -- creation -------------------------------------------------------------------------
    def ensure(self) -> Workspace:
        """Create whatever is missing; never modify or remove anything that exists."""
        for path in self.directories():
            path.mkdir(parents=True, exist_ok=True)
        self._install_shipped_profiles()
        return self

    def _install_shipped_profiles(self) -> None:
        shipped = resources.files("lorapilot") / "profiles"
        for entry in shipped.iterdir():
            target = self.profiles / entry.name
            if not entry.name.endswith(".yaml") or target.exists():
                continue
            tmp = target.with_name(f".{entry.name}.tmp")
            with resources.as_file(entry) as src:
                shutil.copyfile(src, tmp)
            tmp.replace(target)

    # -- user paths -----------------------------------------------------------------------
    def resolve(self, path: str | os.PathLike[str], base: Path | None = None) -> Path:
        """Resolve a user-written path to an absolute path inside the workspace.

        `/workspace/x` maps to `<root>/x`; a relative path is taken relative to `base`
        (default: the root). Raises `PathEscapeError` for anything that lands outside,
        symlinks included.
        """
        raw = os.fspath(path)
        if not raw:
            raise PathEscapeError(f"{raw!r} is not a usable path")
        if problem := path_problem(raw):
            raise PathEscapeError(f"{raw[:200]!r}: {problem}")
        posix = PurePosixPath(raw)
        if posix == CONTAINER_ROOT or CONTAINER_ROOT in posix.parents:
            candidate = self.root.joinpath(*posix.relative_to(CONTAINER_ROOT).parts)
        else:
            candidate = Path(raw).expanduser()
            if not candidate.is_absolute():
                candidate = (base or self.root) / candidate
        resolved = candidate.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise PathEscapeError(f"{raw} is outside the workspace {self.root}")
        return resolved

    def display(self, path: Path) -> str:
        """The path as a user of the container would write it (`/workspace/...`)."""
        try:
            rel = Path(path).resolve().relative_to(self.root)
        except ValueError:
            return str(path)
        return str(CONTAINER_ROOT.joinpath(*rel.parts))


def path_problem(raw: str) -> str | None:
    """Why `raw` cannot name a file here (a NUL byte, text that is not Unicode, a name or path
    longer than the file system takes), or None. The OS refuses these with an exception from any
    file check, so each is caught here, where the field that holds the path is still known."""
    if "\x00" in raw:
        return "not a usable path: it holds a NUL byte"
    try:
        encoded = os.fsencode(raw)
    except UnicodeEncodeError:
        return "not a usable path: it holds characters that are not valid Unicode"
    if len(encoded) >= PATH_MAX:
        return f"path too long: {len(encoded)} bytes (at most {PATH_MAX - 1})"
    longest = max(len(part) for part in encoded.split(b"/"))
    if longest > NAME_MAX:
        return f"file name too long: a name of {longest} bytes in it (at most {NAME_MAX})"
    return None
