"""Real photographs and deliberately broken files for dataset tests, with no download.

The photographs are the 20 that scikit-image ships inside its wheel (`skimage.data`, no fetch
needed): astronaut, cat, coffee, rocket, the Hubble deep field, a retina, microscope slides and
more. `motorcycle_left` and `motorcycle_right` are a stereo pair, so a perceptual-hash duplicate
check must flag them. Several are re-encoded the ways real uploads arrive: JPEG, CMYK JPEG,
16-bit PNG, palette PNG, transparent PNG, and one JPEG stored sideways with an EXIF rotation.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# skimage.data files that are photographs (its other bundled images are drawings or test charts)
PHOTO_FILES = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
    "coffee.png", "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
    "microaneurysms.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png", "page.png",
    "retina.jpg", "rocket.jpg", "text.png",
)  # fmt: skip
STEREO_PAIR = ("motorcycle_left", "motorcycle_right")
ROTATED = "rocket"  # written sideways with EXIF orientation 6 (rotate 90° clockwise to view)


def skimage_photo(name: str) -> Image.Image:
    """One bundled photograph, opened from scikit-image's data folder."""
    from skimage import data  # noqa: PLC0415 - a dev dependency; only tests call this

    return Image.open(Path(data.data_dir) / name)


def write_photos(folder: Path) -> dict[str, Path]:
    """The 20 photographs as upload files, stem → path, in a mix of formats and colour modes."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for filename in PHOTO_FILES:
        stem = filename.rsplit(".", 1)[0]
        image = skimage_photo(filename)
        image.load()
        written[stem] = _write_variant(stem, image, folder)
    return written


def _write_variant(stem: str, image: Image.Image, folder: Path) -> Path:
    if stem == ROTATED:
        path = folder / f"{stem}.jpg"
        sideways = image.convert("RGB").transpose(Image.Transpose.ROTATE_90)  # EXIF 6 turns it back
        exif = Image.Exif()
        exif[0x0112] = 6
        sideways.save(path, "JPEG", quality=92, exif=exif)
    elif stem == "coffee":
        path = folder / f"{stem}.jpg"
        image.convert("RGB").convert("CMYK").save(path, "JPEG", quality=92)
    elif stem == "moon":
        path = folder / f"{stem}.png"
        wide = (np.asarray(image.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        Image.fromarray(wide).save(path)  # uint16 → mode I;16
    elif stem == "clock_motion":
        path = folder / f"{stem}.png"
        image.convert("RGB").quantize(64).save(path)
    elif stem == "chelsea":
        path = folder / f"{stem}.png"
        rgba = image.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
        rgba.save(path)
    elif stem in ("astronaut", "motorcycle_left", "gravel"):
        path = folder / f"{stem}.jpg"
        image.convert("RGB").save(path, "JPEG", quality=90)
    else:
        path = folder / filename_of(stem)
        image.save(path)
    return path


def filename_of(stem: str) -> str:
    return next(name for name in PHOTO_FILES if name.rsplit(".", 1)[0] == stem)


def upright_rotated_photo() -> Image.Image:
    """What the EXIF-rotated upload must look like once stored."""
    return skimage_photo(filename_of(ROTATED)).convert("RGB")


def write_broken_files(folder: Path) -> dict[str, Path]:
    """Four broken uploads plus a zip whose only bad entry is a non-image; reason key → path."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    skimage_photo("astronaut.png").convert("RGB").save(buffer, "JPEG", quality=90)
    jpeg = buffer.getvalue()
    broken = {
        "truncated": folder / "truncated.jpg",
        "empty": folder / "empty.png",
        "text": folder / "notes.jpg",
        "bomb": folder / "bomb.png",
    }
    broken["truncated"].write_bytes(jpeg[: len(jpeg) // 2])
    broken["empty"].write_bytes(b"")
    broken["text"].write_text("this is a shopping list, not a photograph\n" * 20)
    broken["bomb"].write_bytes(decompression_bomb_png(10_000, 10_000))
    return broken


def decompression_bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge black image (1-bit, so the file stays a few hundred KB)."""
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def image_bytes(size=(64, 48), colour=(10, 120, 200), mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """A one-colour image encoded as `fmt`: the smallest valid upload."""
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, fmt)
    return buffer.getvalue()


def sixteen_bit_png(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB (h×w×3) or RGBA (h×w×4) PNG of `pixels` (uint16), as cameras and
    editors export; Pillow reads such files but cannot write them, so the chunks are written here."""
    height, width, channels = pixels.shape
    colour_type = {3: 2, 4: 6}[channels]
    rows = pixels.astype(">u2").reshape(height, width * channels)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def zip_of(files: dict[str, bytes]) -> bytes:
    """A zip archive holding `files` (archive path → content)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def zip_bomb(uncompressed_mb: int = 64) -> bytes:
    """A zip whose one entry, `big.bmp`, is megabytes of zeros that compress about 1000:1."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("big.bmp", "w", force_zip64=True) as entry,
    ):
        chunk = bytes(1 << 20)
        for _ in range(uncompressed_mb):
            entry.write(chunk)
    return buffer.getvalue()
