"""Export: a working dataset becomes `datasets/images/<repeats>_<name>/`, the folder trainers read.

The folder is built beside its destination and renamed into place, so a trainer never sees half an
export. An earlier export of the same name (any repeats: `3_x` and `10_x` would make the bare name
`x` ambiguous) goes to the trash, not away. The same content can be downloaded as a `.zip`.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any

from lorapilot.tagpilot.errors import ConflictError, TagPilotError
from lorapilot.tagpilot.names import check_dataset_name
from lorapilot.tagpilot.store import Dataset
from lorapilot.tagpilot.trash import Trash
from lorapilot.workspace import Workspace

logger = logging.getLogger(__name__)

MAX_REPEATS = 1000
# Image views per epoch the suggestion aims at: 10-20 images get 8-15 repeats, as guides advise.
_VIEWS_PER_EPOCH = 150


def suggest_repeats(image_count: int) -> int:
    """Repeats so one epoch shows about 150 images: many repeats for few images, 1 for hundreds."""
    if image_count <= 0:
        return 1
    return max(1, min(40, round(_VIEWS_PER_EPOCH / image_count)))


def check_repeats(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPEATS:
        raise TagPilotError(f"repeats must be a whole number from 1 to {MAX_REPEATS}, got {value!r}")
    return value


def existing_exports(workspace: Workspace, name: str) -> list[Path]:
    """Folders `<k>_<name>` (and a bare `<name>`) in datasets/images/."""
    pattern = re.compile(rf"^(\d+_)?{re.escape(name)}$")
    if not workspace.images.is_dir():
        return []
    return sorted(
        path for path in workspace.images.iterdir() if path.is_dir() and pattern.fullmatch(path.name)
    )


def export_folder(
    dataset: Dataset, workspace: Workspace, trash: Trash, *, repeats: int, name: str | None, replace: bool
) -> dict[str, Any]:
    """Write the export; refuses to replace an earlier one unless `replace`."""
    name = check_dataset_name(name or dataset.name)
    repeats = check_repeats(repeats)
    target = workspace.resolve(workspace.images / f"{repeats}_{name}")
    earlier = existing_exports(workspace, name)
    if earlier and not replace:
        shown = ", ".join(workspace.display(path) for path in earlier)
        raise ConflictError(f"{shown} exists; export with replace to move it to the trash")
    workspace.images.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".export-{name}-", dir=workspace.images))
    try:
        with dataset.lock:
            count = _copy_dataset(dataset, staging)
        if count == 0:
            raise TagPilotError(f"dataset {dataset.name!r} has no images to export")
        for path in earlier:
            trash.keep_folder(path, "export", path.name)
        staging.chmod(0o755)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported dataset %s to %s (%d images)", dataset.name, target, count)
    return {
        "folder": workspace.display(target),
        "images": count,
        "repeats": repeats,
        "replaced": [workspace.display(path) for path in earlier],
    }


def _copy_dataset(dataset: Dataset, folder: Path) -> int:
    records = dataset.records()
    for record in records:
        shutil.copy2(dataset.path_of(record.name), folder / record.name)
        caption = dataset.caption(record.name)
        if caption:
            (folder / record.name).with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
    for path in folder.iterdir():
        path.chmod(0o644)
    return len(records)


def write_zip(dataset: Dataset, repeats: int, tmp_dir: Path) -> IO[bytes]:
    """The export as a zip (one folder `<repeats>_<name>/` inside) in a temp file inside the workspace."""
    repeats = check_repeats(repeats)
    handle = tempfile.TemporaryFile(dir=tmp_dir, prefix="export-")  # noqa: SIM115 - sent, then closed by Flask
    inner = f"{repeats}_{dataset.name}"
    with dataset.lock, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        for record in dataset.records():
            archive.write(dataset.path_of(record.name), f"{inner}/{record.name}")
            caption = dataset.caption(record.name)
            if caption:
                stem = Path(record.name).stem
                archive.writestr(f"{inner}/{stem}.txt", caption + "\n", zipfile.ZIP_DEFLATED)
    handle.seek(0)
    return handle
