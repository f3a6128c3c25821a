"""Acceptance 1: real photographs in, broken files refused with reasons, duplicates flagged, EXIF upright."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import ExifTags, Image

from lorapilot.testing.sample_photos import (
    ROTATED,
    STEREO_PAIR,
    skimage_photo,
    upright_rotated_photo,
    write_broken_files,
    write_photos,
    zip_of,
)
from lorapilot.testing.web_client import ApplianceClient


@pytest.fixture(scope="module")
def uploaded(server, tmp_path_factory):
    """One dataset holding the 20 photographs (14 loose, 6 in a zip) plus the 5 broken uploads."""
    client = ApplianceClient(server.url)
    client.login(server.password)
    folder = tmp_path_factory.mktemp("uploads")
    photos = write_photos(folder / "photos")
    broken = write_broken_files(folder / "broken")
    name = client.new_dataset("photos", family="sd15")
    stems = sorted(photos)
    loose, zipped = stems[:14], stems[14:]
    not_an_image = b"MZ\x90\x00" + os.urandom(4000)  # a Windows program named like a picture
    archive = zip_of(
        {f"more/{photos[stem].name}": photos[stem].read_bytes() for stem in zipped}
        | {"more/holiday.png": not_an_image}
    )
    files = [(photos[stem].name, photos[stem].read_bytes()) for stem in loose]
    files += [("more.zip", archive)] + [(path.name, path.read_bytes()) for path in broken.values()]
    reply = client.upload(name, files)
    assert reply.status_code == 200, reply.text
    return client, name, photos, reply.json()


def test_twenty_photographs_are_accepted_and_five_broken_files_refused(uploaded):
    _, _, photos, result = uploaded
    assert len(photos) == 20
    assert len(result["accepted"]) == 20, result["rejected"]
    reasons = {item["name"]: item["reason"] for item in result["rejected"]}
    assert len(reasons) == 5, reasons
    assert "truncated" in reasons["truncated.jpg"]
    assert "empty" in reasons["empty.png"]
    assert reasons["notes.jpg"].startswith("not an image")
    assert "decompression bomb" in reasons["bomb.png"]
    assert reasons["more.zip/more/holiday.png"].startswith("not an image")


def test_the_report_flags_duplicates_small_images_and_lists_refusals(uploaded):
    client, name, _, _ = uploaded
    report = client.ok("GET", f"/api/datasets/{name}/report")
    assert report["images"] == 20
    left, right = STEREO_PAIR
    assert [n.split(".")[0] for n in report["duplicates"][0]] == [left, right]
    assert len(report["duplicates"]) == 1  # the other 18 photographs are all told apart
    small = {f["image"] for f in report["findings"] if f["check"] == "low_resolution"}
    assert "microaneurysms.png" in small and "retina.jpg" not in small
    assert {item["name"] for item in report["rejected"]} >= {"truncated.jpg", "bomb.png"}


def test_conversions_are_noted_and_every_stored_file_is_8_bit(uploaded, server):
    client, name, _, _ = uploaded
    images = {item["name"]: item for item in client.ok("GET", f"/api/datasets/{name}")["image_list"]}
    notes = {key.split(".")[0]: " ".join(item["notes"]) for key, item in images.items()}
    assert "CMYK" in notes["coffee"] and "8-bit" in notes["moon"] and "palette" in notes["clock_motion"]
    assert "transparency" in notes["chelsea"] and "EXIF orientation 6" in notes[ROTATED]
    assert notes["camera"] == ""  # a clean PNG is stored byte for byte
    folder = server.workspace.drafts / name
    for stored in images:
        with Image.open(folder / stored) as image:
            assert image.mode in ("RGB", "L"), (stored, image.mode)


def test_an_exif_rotated_photo_is_stored_upright(uploaded):
    client, name, _, _ = uploaded
    reply = client.call("GET", f"/api/datasets/{name}/images/{ROTATED}.jpg")
    assert reply.status_code == 200
    stored = Image.open(io.BytesIO(reply.content))
    assert stored.getexif().get(ExifTags.Base.Orientation, 1) == 1
    expected = upright_rotated_photo()
    assert stored.size == expected.size
    difference = np.abs(np.asarray(stored.convert("RGB"), float) - np.asarray(expected, float)).mean()
    assert difference < 6, difference


def test_a_resized_copy_is_flagged_and_an_identical_file_refused(client, server, tmp_path):
    name = client.new_dataset("dups")
    cat = skimage_photo("chelsea.png").convert("RGB")
    original, smaller = io.BytesIO(), io.BytesIO()
    cat.save(original, "PNG")
    cat.resize((300, 200)).save(smaller, "JPEG", quality=80)
    first = client.upload(name, [("cat.png", original.getvalue()), ("cat-small.jpg", smaller.getvalue())])
    assert len(first.json()["accepted"]) == 2
    again = client.upload(name, [("cat-again.png", original.getvalue())]).json()
    assert again["rejected"] == [
        {"name": "cat-again.png", "reason": "identical to cat.png already in the dataset"}
    ]
    report = client.ok("GET", f"/api/datasets/{name}/report")
    assert report["duplicates"] == [["cat-small.jpg", "cat.png"]]


def test_a_kohya_style_zip_brings_its_captions(client):
    name = client.new_dataset("zipcap")
    pictures = {}
    for index, colour in enumerate(((200, 30, 30), (30, 200, 30))):
        buffer = io.BytesIO()
        Image.new("RGB", (96, 64), colour).save(buffer, "PNG")
        pictures[f"10_thing/{index}.png"] = buffer.getvalue()
        pictures[f"10_thing/{index}.txt"] = f"a picture number {index}".encode()
    pictures["10_thing/orphan.txt"] = b"no image has this name"
    result = client.upload(name, [("set.zip", zip_of(pictures))]).json()
    assert [item.get("caption") for item in result["accepted"]] == [True, True]
    assert result["rejected"] == [
        {
            "name": "set.zip/10_thing/orphan.txt",
            "reason": "caption file with no accepted image of the same name",
        }
    ]
    captions = {i["name"]: i["caption"] for i in client.ok("GET", f"/api/datasets/{name}")["image_list"]}
    assert captions == {"0.png": "a picture number 0", "1.png": "a picture number 1"}
