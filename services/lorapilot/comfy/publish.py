"""Hand a finished job's LoRA to ComfyUI: a copy in models/loras/ plus a sidecar JSON.

The copy is written to a temp file in models/loras/ (fsynced, chmod 0644: the engine's safetensors
files may be 0600 and ComfyUI can run as another user), then hard-linked to its final name. A link
never replaces an existing file, so a name already taken (an older run of the same name, a file the
user put there) gets the next versioned name `<name>_v2`, `<name>_v3`…; nothing is ever overwritten.
The sidecar is reserved first, so a crash between the two steps is finished by the next attempt
instead of leaving a second copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lorapilot.atomic_files import fsync_dir
from lorapilot.comfy.errors import PublishError
from lorapilot.engine.run_folder import RunFolder
from lorapilot.spool import JobRecord, JobState, Spool
from lorapilot.workspace import Workspace

log = logging.getLogger(__name__)

LORA_SUFFIX = ".safetensors"
SIDECAR_SUFFIX = ".json"
MAX_VERSIONS = 10_000


@dataclass(frozen=True)
class Publication:
    job_id: str
    name: str
    lora: Path  # the copy in models/loras/
    sidecar: Path
    sha256: str
    reused: bool = False  # this job was already published there; nothing new was written

    @property
    def lora_name(self) -> str:
        """How ComfyUI's `LoraLoader` lists the file (relative to models/loras/)."""
        return self.lora.name


def lora_file_name(name: str) -> str:
    """The file in models/loras/ a user means by `name` (a job name or a file name)."""
    return name if name.endswith(LORA_SUFFIX) else f"{name}{LORA_SUFFIX}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_lora(spool: Spool, record: JobRecord) -> tuple[Path, dict[str, Any]]:
    """The final LoRA of a finished job and its normalised spec (spec.json, else the job's own spec)."""
    if record.state is not JobState.DONE:
        raise PublishError(
            f"job {record.name} (id {record.id}) is {record.state}, not done; nothing to publish"
        )
    folder = spool.run_folder(record)
    if folder is None:
        raise PublishError(f"job {record.id} names no usable run folder inside outputs/")
    lora = folder / f"{record.name}{LORA_SUFFIX}"
    if not lora.is_file():
        raise PublishError(f"job {record.name} (id {record.id}) finished but {lora} is missing")
    spec: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        spec = json.loads((folder / "spec.json").read_text(encoding="utf-8"))
    if not spec and record.job is not None and isinstance(record.job.spec, dict):
        spec = record.job.spec
    return lora, spec


def sidecar_document(record: JobRecord, spec: dict[str, Any], sha256: str, source: Path) -> dict[str, Any]:
    model = spec.get("model") or {}
    triggers = [d.get("trigger_word") for d in spec.get("datasets") or [] if d.get("trigger_word")]
    sample = spec.get("sample") or {}
    return {
        "lorapilot_sidecar": 1,
        "job_id": record.id,
        "name": record.name,
        "family": model.get("family"),
        "base_model": model.get("path"),
        "trigger_words": list(dict.fromkeys(triggers)),
        "sample_prompts": [p["text"] if isinstance(p, dict) else p for p in sample.get("prompts") or []],
        "negative_prompt": sample.get("negative_prompt") or "",
        "source": str(source),
        "sha256": sha256,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # A1111/Forge read these two keys from a LoRA's same-stem .json
        "activation text": ", ".join(dict.fromkeys(triggers)),
        "description": f"LoRA Pilot run {record.name} (job {record.id})",
    }


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _candidates(name: str):
    yield name
    for version in range(2, MAX_VERSIONS):
        yield f"{name}_v{version}"


def _link_new(tmp: Path, target: Path) -> bool:
    """Give `tmp`'s data the name `target` unless that name exists (atomic; never overwrites)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        return False
    return True


def _temp_copy(folder: Path, data: bytes | None = None, source: Path | None = None) -> tuple[Path, str]:
    """A 0644 fsynced temp file in `folder` holding `data` (else `source`'s bytes), and its sha256."""
    fd, name = tempfile.mkstemp(prefix=".publish.", suffix=".tmp", dir=folder)
    tmp = Path(name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            if data is not None:
                out.write(data)
                digest.update(data)
            elif source is not None:
                with source.open("rb") as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        out.write(block)
                        digest.update(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest()


def find_published(loras: Path, job_id: str, kind: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(stem, sidecar) of every publication of `job_id` in models/loras/; `kind`: final or checkpoint."""
    found = []
    for path in sorted(loras.glob(f"*{SIDECAR_SUFFIX}")):
        data = _read_sidecar(path)
        mine = bool(data) and data.get("lorapilot_sidecar") and data.get("job_id") == job_id
        if mine and (kind is None or data.get("kind", "final") == kind):
            found.append((path.stem, data))
    return found


def publish(workspace: Workspace, record: JobRecord) -> Publication:
    """Copy the job's final LoRA into models/loras/ under a free name, with its sidecar."""
    source, spec = source_lora(Spool(workspace), record)
    return _publish_file(workspace, record, spec, source, name=record.name, kind="final")


def publish_checkpoints(workspace: Workspace, record: JobRecord) -> list[Publication]:
    """The opt-in extra: the run's periodic saves (`<name>-step00000100`, `<name>-000002`) as well."""
    source, spec = source_lora(Spool(workspace), record)
    return [
        _publish_file(workspace, record, spec, path, name=path.stem, kind="checkpoint")
        for path in RunFolder(source.parent, record.name).saves()
    ]


def _publish_file(
    workspace: Workspace, record: JobRecord, spec: dict[str, Any], source: Path, *, name: str, kind: str
) -> Publication:
    loras = workspace.model_dir("loras")
    loras.mkdir(parents=True, exist_ok=True)
    tmp, digest = _temp_copy(loras, source=source)
    try:
        if sha256_of(source) != digest:
            raise PublishError(f"{source} changed while it was copied; try again")
        for stem, data in find_published(loras, record.id):
            if data.get("sha256") != digest:
                continue
            target = loras / f"{stem}{LORA_SUFFIX}"
            if not target.exists() and _link_new(tmp, target):  # a crash left only the sidecar
                fsync_dir(loras)
            if target.exists() and sha256_of(target) == digest:
                return Publication(
                    record.id, record.name, target, loras / f"{stem}{SIDECAR_SUFFIX}", digest, reused=True
                )
        document = {**sidecar_document(record, spec, digest, source), "kind": kind}
        side_tmp, _ = _temp_copy(loras, data=(json.dumps(document, indent=1) + "\n").encode())
        try:
            for stem in _candidates(name):
                lora, sidecar = loras / f"{stem}{LORA_SUFFIX}", loras / f"{stem}{SIDECAR_SUFFIX}"
                if lora.exists() or not _link_new(side_tmp, sidecar):
                    continue
                if _link_new(tmp, lora):
                    fsync_dir(loras)
                    log.info("published %s (job %s) as %s", source.name, record.id, lora)
                    return Publication(record.id, record.name, lora, sidecar, digest)
                sidecar.unlink()  # lost a race for the LoRA name: free the sidecar and go on
            raise PublishError(f"no free name for {name} in {loras}")
        finally:
            side_tmp.unlink(missing_ok=True)
    finally:
        tmp.unlink(missing_ok=True)


def publish_named(workspace: Workspace, ref: str) -> Publication:
    """`trainpilot comfy publish NAME`: the job with this id or name must be done."""
    return publish(workspace, Spool(workspace).find(ref))
