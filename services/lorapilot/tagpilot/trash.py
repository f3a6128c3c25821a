"""The recoverable trash: deleting a dataset or an image moves it to `datasets/.trash/`, never unlinks.

Each entry is a folder `<time>-<kind>-<name>/` holding `entry.json` (what it was, where it came
from) and `payload/` (the files as they were). Restoring moves them back; purging removes them.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lorapilot.tagpilot.errors import ConflictError, NotFoundError
from lorapilot.tagpilot.store import META_DIR, DatasetStore, read_json, write_json
from lorapilot.tagpilot.stored_image import ImageRecord, now_iso

logger = logging.getLogger(__name__)

_ENTRY_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{6}-(dataset|image|export)-[A-Za-z0-9_.-]{1,130}$")


class Trash:
    def __init__(self, store: DatasetStore) -> None:
        self.store = store
        self.root = store.workspace.trash
        self.root.mkdir(parents=True, exist_ok=True)

    def delete_dataset(self, name: str) -> str:
        dataset = self.store.get(name)
        with dataset.lock:
            entry = self._new_entry("dataset", name, {"dataset": name})
            dataset.folder.rename(entry / "payload")
        logger.info("moved dataset %s to the trash (%s)", name, entry.name)
        return entry.name

    def delete_image(self, dataset_name: str, image: str) -> str:
        dataset = self.store.get(dataset_name)
        with dataset.lock:
            record = dataset.record(image)
            entry = self._new_entry("image", image, {"dataset": dataset_name, "record": asdict(record)})
            payload = entry / "payload"
            payload.mkdir()
            dataset.path_of(image).rename(payload / image)
            caption = dataset.caption_path(image)
            if caption.exists():
                caption.rename(payload / caption.name)
            (dataset.thumbs / f"{Path(image).stem}.jpg").unlink(missing_ok=True)
            dataset.forget_record(image)
        logger.info("moved image %s of dataset %s to the trash", image, dataset_name)
        return entry.name

    def keep_folder(self, folder: Path, kind: str, label: str) -> str:
        """Move any folder (e.g. an export being replaced) into the trash."""
        entry = self._new_entry(kind, label, {"path": self.store.workspace.display(folder)})
        folder.rename(entry / "payload")
        return entry.name

    def entries(self) -> list[dict[str, Any]]:
        found = []
        for folder in sorted(self.root.iterdir(), reverse=True):
            if _ENTRY_ID.fullmatch(folder.name) and (folder / "entry.json").is_file():
                found.append({"id": folder.name, **read_json(folder / "entry.json", {})})
        return found

    def restore(self, entry_id: str, new_name: str | None = None) -> dict[str, Any]:
        entry = self._entry(entry_id)
        info = read_json(entry / "entry.json", {})
        if info.get("kind") == "dataset":
            name = new_name or info["dataset"]
            target = self.store.folder(name)
            if target.exists():
                raise ConflictError(f"a dataset {name!r} exists; restore under another name")
            (entry / "payload").rename(target)
            shutil.rmtree(entry)
            return {"restored": "dataset", "dataset": name}
        if info.get("kind") == "image":
            return self._restore_image(entry, info)
        raise ConflictError(f"trash entry {entry_id} ({info.get('kind')}) cannot be restored from here")

    def _restore_image(self, entry: Path, info: dict[str, Any]) -> dict[str, Any]:
        dataset = self.store.get(info["dataset"])
        record = ImageRecord.from_json(info["record"])
        with dataset.lock:
            if Path(record.name).stem.lower() in dataset.used_stems():
                raise ConflictError(f"dataset {dataset.name!r} has a file named like {record.name!r}")
            for path in (entry / "payload").iterdir():
                path.rename(dataset.folder / path.name)
            dataset.add_record(record)
        shutil.rmtree(entry)
        return {"restored": "image", "dataset": dataset.name, "image": record.name}

    def purge(self, entry_id: str) -> None:
        shutil.rmtree(self._entry(entry_id))

    def _entry(self, entry_id: str) -> Path:
        if not isinstance(entry_id, str) or not _ENTRY_ID.fullmatch(entry_id):
            raise NotFoundError(f"no trash entry {entry_id!r}")
        entry = self.root / entry_id
        if not (entry / "entry.json").is_file():
            raise NotFoundError(f"no trash entry {entry_id!r}")
        return entry

    def _new_entry(self, kind: str, label: str, info: dict[str, Any]) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        entry = self.root / f"{stamp}-{secrets.token_hex(3)}-{kind}-{label}"
        entry.mkdir()
        write_json(entry / "entry.json", {"kind": kind, "name": label, "deleted_at": now_iso(), **info})
        return entry


__all__ = ["META_DIR", "Trash"]
