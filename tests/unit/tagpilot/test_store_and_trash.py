"""Datasets on disk: create, rename, adopt files added by hand, delete to the trash and restore."""

from __future__ import annotations

import pytest

from lorapilot.tagpilot.errors import ConflictError, InvalidNameError, NotFoundError
from lorapilot.tagpilot.trash import Trash
from lorapilot.testing.sample_photos import image_bytes as png


def test_datasets_are_created_renamed_and_refuse_clashes(store):
    store.create("one", {"family": "sd15"})
    with pytest.raises(ConflictError):
        store.create("one")
    store.create("two")
    with pytest.raises(ConflictError):
        store.rename("one", "two")
    renamed = store.rename("one", "uno")
    assert store.names() == ["two", "uno"] and renamed.settings()["family"] == "sd15"
    with pytest.raises(NotFoundError):
        store.get("one")
    with pytest.raises(InvalidNameError):
        store.get("../two")


def test_images_added_or_removed_by_hand_are_noticed(store):
    dataset = store.create("hand")
    (dataset.folder / "a.png").write_bytes(png())
    (dataset.folder / "broken.png").write_bytes(b"not really")
    records = dataset.records()
    assert [r.name for r in records] == ["a.png"] and records[0].notes == [
        "added to the folder outside TagPilot"
    ]
    (dataset.folder / "a.png").unlink()
    assert dataset.records() == []


def test_deleted_images_and_datasets_come_back_from_the_trash(store):
    trash = Trash(store)
    dataset = store.create("keep")
    (dataset.folder / "a.png").write_bytes(png())
    dataset.records()
    dataset.set_caption("a.png", "a blue card")
    entry = trash.delete_image("keep", "a.png")
    assert dataset.records() == [] and not (dataset.folder / "a.txt").exists()
    assert trash.restore(entry) == {"restored": "image", "dataset": "keep", "image": "a.png"}
    assert dataset.caption("a.png") == "a blue card" and len(dataset.records()) == 1

    entry = trash.delete_dataset("keep")
    assert store.names() == [] and [e["id"] for e in trash.entries()] == [entry]
    store.create("keep")
    with pytest.raises(ConflictError, match="another name"):
        trash.restore(entry)
    assert trash.restore(entry, "keep-2") == {"restored": "dataset", "dataset": "keep-2"}
    assert store.get("keep-2").caption("a.png") == "a blue card"
    assert trash.entries() == []


def test_trash_ids_cannot_point_elsewhere(store):
    trash = Trash(store)
    for bad in ("../../config", "..", "x"):
        with pytest.raises(NotFoundError):
            trash.purge(bad)
