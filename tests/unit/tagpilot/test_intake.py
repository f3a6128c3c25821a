"""Upload intake: formats by content, names cleaned, stems unique, archive limits checked up front."""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from lorapilot.tagpilot.intake import Intake, UploadLimits
from lorapilot.testing.sample_photos import image_bytes as png
from lorapilot.testing.sample_photos import sixteen_bit_png


def _receive(store, workspace, files, limits=None, name="up"):
    dataset = store.get(name) if name in store.names() else store.create(name)
    intake = Intake(dataset, limits or UploadLimits(), workspace.tmp)
    workspace.tmp.mkdir(parents=True, exist_ok=True)
    return dataset, intake.receive([(file_name, io.BytesIO(data)) for file_name, data in files])


def test_formats_are_read_from_content_and_stored_as_training_reads_them(store, workspace):
    frames = [Image.new("RGB", (40, 30), colour) for colour in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    files = [
        ("really-a-png.jpg", png()),
        ("grey.png", png(mode="L", colour=128)),
        ("pic.webp", png(fmt="WEBP")),
        ("pic.bmp", png(size=(30, 20), fmt="BMP")),
        ("anim.gif", gif.getvalue()),
        ("scan.tif", png(size=(20, 20), fmt="TIFF")),
    ]
    dataset, result = _receive(store, workspace, files)
    stored = {item["name"]: (item["stored_as"], item["notes"]) for item in result.accepted}
    assert stored["really-a-png.jpg"] == ("really-a-png.png", [])
    assert stored["grey.png"] == ("grey.png", [])
    assert (
        stored["pic.webp"][0] == "pic.webp" and stored["pic.bmp"][0] == "pic_2.bmp"
    )  # one stem, one caption
    assert stored["anim.gif"] == (
        "anim.png",
        ["palette image converted to RGB", "GIF stored as PNG (first frame)"],
    )
    assert stored["scan.tif"] == ("scan.png", ["TIFF stored as PNG"])
    assert result.rejected == []
    assert len(dataset.records()) == 6


def test_odd_names_are_cleaned(store, workspace):
    _, result = _receive(
        store, workspace, [("C:\\Users\\me\\Ünïcode Photo (1).PNG", png()), (".png", png((9, 9)))]
    )
    assert [item["stored_as"] for item in result.accepted] == ["Unicode_Photo_1.png", "image.png"]


def test_a_name_with_two_dots_in_a_row_is_stored_under_a_name_the_dataset_can_read_back(api):
    """Found by the API fuzzer (issue 16): `holiday..beach.png` was stored as it was, a name the
    dataset's own name check refuses, so every later request on the dataset answered 400."""
    api.post("/api/datasets", json={"name": "trip"})
    files = [(io.BytesIO(png()), "holiday..beach.png"), (io.BytesIO(png((9, 9))), "a...b..c.jpg")]
    reply = api.post("/api/datasets/trip/upload", data={"files": files}, content_type="multipart/form-data")
    assert [item["stored_as"] for item in reply.json["accepted"]] == ["holiday.beach.png", "a.b.c.png"]
    listing = api.get("/api/datasets/trip")
    assert listing.status_code == 200 and listing.json["images"] == 2
    assert (
        api.put("/api/datasets/trip/images/holiday.beach.png/caption", json={"caption": "sea"}).status_code
        == 200
    )


def _zip(entries, compression=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return buffer.getvalue()


def _encrypted(archive: bytes, name: str) -> bytes:
    """Set the "encrypted" flag of `name` in the central directory (zipfile cannot write encrypted)."""
    data = bytearray(archive)
    at = data.find(b"PK\x01\x02")
    while at != -1:
        length = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + length].decode() == name:
            data[at + 8] |= 0x1
        at = data.find(b"PK\x01\x02", at + 46)
    return bytes(data)


def test_a_zip_over_the_unpacked_size_limit_is_refused_whole(store, workspace):
    noise = Image.effect_noise((300, 300), 80).convert("RGB")
    buffer = io.BytesIO()
    noise.save(buffer, "BMP")
    archive = _zip([(f"{i}.bmp", buffer.getvalue()) for i in range(5)])
    limits = UploadLimits(max_zip_total_bytes=1024 * 1024)
    dataset, result = _receive(store, workspace, [("set.zip", archive)], limits)
    assert result.accepted == [] and "more than the limit of 1 MB" in result.rejected[0]["reason"]
    assert dataset.records() == []


def test_archive_entries_that_are_links_encrypted_or_too_many_are_refused(store, workspace):
    link = zipfile.ZipInfo("link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = _encrypted(
        _zip(
            [(link, "/etc/passwd"), ("secret.png", png((5, 5))), ("__MACOSX/._a.png", "x"), ("ok.png", png())]
        ),
        "secret.png",
    )
    _, result = _receive(store, workspace, [("a.zip", archive)])
    assert [item["stored_as"] for item in result.accepted] == ["ok.png"]
    assert {item["name"]: item["reason"] for item in result.rejected} == {
        "a.zip/link.png": "symbolic link inside the archive",
        "a.zip/secret.png": "encrypted entry",
    }
    many = _zip([(f"{i}.txt", "x") for i in range(6)])
    _, result = _receive(store, workspace, [("many.zip", many)], UploadLimits(max_zip_members=5))
    assert "more than the limit of 5" in result.rejected[0]["reason"]


def test_a_broken_zip_is_refused_with_a_reason(store, workspace):
    _, result = _receive(store, workspace, [("bad.zip", b"PK\x03\x04" + b"\x00" * 50)])
    assert result.rejected[0]["reason"].startswith("not a readable zip archive")


@pytest.mark.parametrize("caption", [b"\xff\xfe\x00bad", b"x" * 70_000])
def test_unusable_caption_files_are_refused(store, workspace, caption):
    _, result = _receive(store, workspace, [("a.png", png()), ("a.txt", caption)])
    assert len(result.accepted) == 1 and result.rejected[0]["name"] == "a.txt"


@pytest.mark.parametrize("channels", [3, 4], ids=["rgb", "rgba"])
def test_a_16_bit_colour_png_is_stored_as_8_bit_with_the_note_a_16_bit_grey_one_gets(
    api, workspace, channels
):
    """Issue 16, finding 9: a 16-bit RGB PNG was copied as uploaded, without a note."""
    pixels = np.zeros((24, 32, channels), dtype=np.uint16)
    pixels[..., :3] = np.array([200, 100, 30], dtype=np.uint16) * 257  # exactly 8-bit values, widened
    if channels == 4:
        pixels[..., 3] = 65535
    grey = (np.full((24, 32), 128, dtype=np.uint16) * 257).astype(np.uint16)
    grey_png = io.BytesIO()
    Image.fromarray(grey).save(grey_png, "PNG")  # mode I;16: the case that already had its note
    api.post("/api/datasets", json={"name": "deep"})
    colour_png = sixteen_bit_png(pixels)
    files = [(io.BytesIO(colour_png), "colour.png"), (io.BytesIO(grey_png.getvalue()), "grey.png")]
    reply = api.post(
        "/api/datasets/deep/upload", data={"files": files}, content_type="multipart/form-data"
    ).get_json()
    notes = {item["name"]: item["notes"] for item in reply["accepted"]}
    assert any("high bit depth scaled to 8-bit" in note for note in notes["grey.png"])
    assert any("16-bit" in note and "scaled to 8-bit" in note for note in notes["colour.png"]), notes
    details = api.get("/api/datasets/deep").get_json()["image_list"]
    assert {image["name"]: image["notes"] for image in details}["colour.png"] == notes["colour.png"]
    with Image.open(workspace.drafts / "deep" / "colour.png") as stored:
        assert stored.mode == "RGB" and all(";16" not in str(tile[3]) for tile in stored.tile)
        assert stored.getpixel((5, 5)) == (200, 100, 30)
