"""Bulk caption operations and the tag frequency table, for tag-style and sentence captions."""

from __future__ import annotations

import pytest

from lorapilot.tagpilot.caption_edits import (
    bulk_edit,
    frequency_table,
    merge_caption,
    with_prefix,
    with_trigger,
    without_tag,
)
from lorapilot.tagpilot.errors import TagPilotError
from lorapilot.testing.sample_photos import image_bytes as png


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("", "sks"),
        ("a dog", "sks, a dog"),
        ("sks, a dog", "sks, a dog"),
        ("a SKS dog", "a SKS dog"),
        ("asks", "sks, asks"),
    ],
)
def test_the_trigger_word_leads_and_is_never_doubled(caption, expected):
    assert with_trigger(caption, "sks") == expected


def test_prefix_suffix_and_merge_follow_the_caption_style():
    assert with_prefix("red, car", "photo", "tags") == "photo, red, car"
    assert with_prefix("a red car", "A photo of", "sentence") == "A photo of a red car"
    assert merge_caption("red, car", "car, street", "tags") == "red, car, street"
    assert merge_caption("A red car.", "It is parked.", "sentence") == "A red car. It is parked."
    assert merge_caption("A red car", "parked", "sentence") == "A red car. parked"
    assert without_tag("red, Car, street", "car") == "red, street"


def _dataset(store, captions):
    dataset = store.create("caps")
    for index, caption in enumerate(captions):
        (dataset.folder / f"{index}.png").write_bytes(png(colour=(index * 40, 10, 10)))
        dataset.set_caption(f"{index}.png", caption) if caption else None
    dataset.records()
    return dataset


def test_bulk_operations_change_every_caption_once(store):
    dataset = _dataset(store, ["red, car", "blue, car, street", ""])
    assert bulk_edit(dataset, {"op": "trigger", "word": "sks"}) == {"op": "trigger", "changed": 3}
    assert bulk_edit(dataset, {"op": "trigger", "word": "sks"})["changed"] == 0
    assert dataset.settings()["trigger_word"] == "sks"
    bulk_edit(dataset, {"op": "suffix", "text": "photo"})
    bulk_edit(dataset, {"op": "replace", "find": "car", "replace": "truck"})
    bulk_edit(dataset, {"op": "remove_tag", "tag": "street"})
    assert dataset.captions() == {
        "0.png": "sks, red, truck, photo",
        "1.png": "sks, blue, truck, photo",
        "2.png": "sks, photo",
    }
    assert frequency_table(dataset)[:2] == [{"tag": "photo", "count": 3}, {"tag": "sks", "count": 3}]
    bulk_edit(dataset, {"op": "prefix", "text": "x", "images": ["2.png"]})
    assert dataset.caption("2.png") == "x, sks, photo" and dataset.caption("0.png").startswith("sks")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"op": "shout"}, "unknown op"),
        ({"op": "trigger"}, "'word' is required"),
        ({"op": "prefix", "text": 3}, "'text' must be text"),
        ({"op": "trigger", "word": "x", "images": ["nope.png"]}, "no such images"),
    ],
)
def test_bad_bulk_requests_say_what_is_wrong(store, body, message):
    with pytest.raises(TagPilotError, match=message):
        bulk_edit(_dataset(store, ["a"]), body)
