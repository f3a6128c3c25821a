"""TagPilot's working datasets on disk: `datasets/tagpilot/<name>/`, kohya-shaped from the start.

Each dataset folder holds the images and their same-stem `.txt` captions (so it already trains as
it is) plus a hidden `.tagpilot/` folder: `dataset.json` (settings), `images.json` (what upload
learnt about each image), `rejected.json` (recent refusals) and `thumbs/`. Images dropped into the
folder by hand are adopted on the next listing; records of files deleted by hand are dropped.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lorapilot import families
from lorapilot.atomic_files import write_atomic
from lorapilot.data.images import IMAGE_SUFFIXES
from lorapilot.families import SDXL
from lorapilot.tagpilot.errors import ConflictError, InvalidNameError, NotFoundError, TagPilotError
from lorapilot.tagpilot.names import check_dataset_name, check_file_name
from lorapilot.tagpilot.stored_image import ImageRecord, describe_stored_image, now_iso
from lorapilot.workspace import PathEscapeError, Workspace

logger = logging.getLogger(__name__)

META_DIR = ".tagpilot"
DEFAULT_FAMILY = SDXL  # what a new dataset is checked against until the user picks its family
CAPTION_STYLES = ("tags", "sentence")
MAX_REJECTED_KEPT = 200


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def write_text(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"))


def read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        logger.warning("cannot read %s (%s); starting it afresh", path, exc)
        return default


class Dataset:
    """One working dataset; methods that change it must run under `lock`."""

    def __init__(self, folder: Path, lock: threading.RLock) -> None:
        self.folder = folder
        self.name = folder.name
        self.lock = lock
        self.meta_dir = folder / META_DIR
        self.thumbs = self.meta_dir / "thumbs"

    # -- settings ---------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        defaults = {"family": DEFAULT_FAMILY.id, "caption_style": "tags", "trigger_word": "", "created": ""}
        return defaults | read_json(self.meta_dir / "dataset.json", {})

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        check_settings(changes)
        with self.lock:
            settings = self.settings() | changes
            write_json(self.meta_dir / "dataset.json", settings)
        return settings

    # -- images -----------------------------------------------------------------------------------
    def records(self) -> list[ImageRecord]:
        """Every image in name order, after adopting files added or removed by hand."""
        with self.lock:
            stored = {
                item["name"]: ImageRecord.from_json(item)
                for item in read_json(self.meta_dir / "images.json", [])
            }
            on_disk = {
                path.name
                for path in self.folder.iterdir()
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
            }
            changed = stored.keys() != on_disk
            for gone in stored.keys() - on_disk:
                del stored[gone]
            for new in sorted(on_disk - stored.keys()):
                adopted = _adopt(self.folder / new)
                if adopted is not None:
                    stored[new] = adopted
            if changed:
                self._save_records(stored.values())
            return [stored[name] for name in sorted(stored)]

    def record(self, name: str) -> ImageRecord:
        check_file_name(name)
        for record in self.records():
            if record.name == name:
                return record
        raise NotFoundError(f"no image {name!r} in dataset {self.name!r}")

    def add_record(self, record: ImageRecord) -> None:
        with self.lock:
            records = {item.name: item for item in self.records()}
            records[record.name] = record
            self._save_records(records.values())

    def forget_record(self, name: str) -> None:
        with self.lock:
            self._save_records(item for item in self.records() if item.name != name)

    def _save_records(self, records: Any) -> None:
        write_json(self.meta_dir / "images.json", [asdict(item) for item in sorted(records, key=_by_name)])

    def path_of(self, name: str) -> Path:
        """The image file `name`, refused unless it is a plain file name inside this dataset."""
        check_file_name(name)
        path = (self.folder / name).resolve()
        if path.parent != self.folder.resolve():
            raise InvalidNameError(f"file name {name!r} is not allowed")
        return path

    def used_stems(self) -> set[str]:
        return {path.stem.lower() for path in self.folder.iterdir() if not path.name.startswith(".")}

    # -- captions ---------------------------------------------------------------------------------
    def caption_path(self, image_name: str) -> Path:
        return self.path_of(image_name).with_suffix(".txt")

    def caption(self, image_name: str) -> str:
        try:
            return self.caption_path(image_name).read_text(encoding="utf-8-sig").strip()
        except FileNotFoundError:
            return ""

    def set_caption(self, image_name: str, text: str) -> str:
        """Write (or, for empty text, remove) the caption; returns what is stored."""
        text = " ".join(line.strip() for line in text.splitlines() if line.strip())
        path = self.caption_path(image_name)
        with self.lock:
            if text:
                write_text(path, text)
            else:
                path.unlink(missing_ok=True)
        return text

    def captions(self) -> dict[str, str]:
        return {record.name: self.caption(record.name) for record in self.records()}

    # -- refusals ---------------------------------------------------------------------------------
    def log_rejections(self, rejected: list[dict[str, str]]) -> None:
        if not rejected:
            return
        with self.lock:
            kept = read_json(self.meta_dir / "rejected.json", [])
            stamp = now_iso()
            kept.extend({**item, "at": stamp} for item in rejected)
            write_json(self.meta_dir / "rejected.json", kept[-MAX_REJECTED_KEPT:])

    def rejections(self) -> list[dict[str, str]]:
        return read_json(self.meta_dir / "rejected.json", [])


def check_settings(changes: dict[str, Any]) -> None:
    """Refuse unknown keys and values outside the allowed lists, naming the field."""
    for key, value in changes.items():
        if key == "family" and families.find(value) is None:
            raise TagPilotError(f"family {value!r} is not one of {', '.join(families.ids())}")
        if key == "caption_style" and value not in CAPTION_STYLES:
            raise TagPilotError(f"caption_style {value!r} is not one of {', '.join(CAPTION_STYLES)}")
        if key == "trigger_word" and (not isinstance(value, str) or len(value) > 100):
            raise TagPilotError("trigger_word must be text of at most 100 characters")
        if key not in ("family", "caption_style", "trigger_word"):
            raise TagPilotError(f"unknown setting {key!r}; use family, caption_style or trigger_word")


def _by_name(record: ImageRecord) -> str:
    return record.name


def _adopt(path: Path) -> ImageRecord | None:
    """A record for an image put into the folder by hand; None (logged) if it is unusable."""
    try:
        return describe_stored_image(path, note="added to the folder outside TagPilot")
    except TagPilotError as exc:
        logger.warning("ignoring %s in the dataset folder: %s", path, exc)
        return None


class DatasetStore:
    """All working datasets of a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.root = workspace.drafts
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    def lock_for(self, name: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(name, threading.RLock())

    def folder(self, name: str) -> Path:
        check_dataset_name(name)
        try:
            folder = self.workspace.resolve(self.root / name)
        except PathEscapeError as exc:
            raise InvalidNameError(f"dataset name {name!r} is not allowed") from exc
        if folder.parent != self.root.resolve():
            raise InvalidNameError(f"dataset name {name!r} is not allowed")
        return folder

    def names(self) -> list[str]:
        return sorted(
            path.name
            for path in self.root.iterdir()
            if path.is_dir() and not path.name.startswith(".") and (path / META_DIR).is_dir()
        )

    def get(self, name: str) -> Dataset:
        folder = self.folder(name)
        if not (folder / META_DIR).is_dir():
            raise NotFoundError(f"no dataset {name!r}; create it first")
        return Dataset(folder, self.lock_for(name))

    def create(self, name: str, settings: dict[str, Any] | None = None) -> Dataset:
        folder = self.folder(name)
        check_settings(settings or {})
        with self._guard:
            if folder.exists():
                raise ConflictError(f"dataset {name!r} already exists; pick another name")
            (folder / META_DIR / "thumbs").mkdir(parents=True)
        dataset = Dataset(folder, self.lock_for(name))
        write_json(dataset.meta_dir / "dataset.json", dataset.settings() | {"created": now_iso()})
        if settings:
            dataset.update_settings(settings)
        logger.info("created dataset %s", name)
        return dataset

    def rename(self, name: str, new_name: str) -> Dataset:
        dataset = self.get(name)
        target = self.folder(new_name)
        with dataset.lock, self._guard:
            if target.exists():
                raise ConflictError(f"dataset {new_name!r} already exists; pick another name")
            dataset.folder.rename(target)
        logger.info("renamed dataset %s to %s", name, new_name)
        return Dataset(target, self.lock_for(new_name))
