"""Real photographs (scikit-image's sample data, shipped in the package) and broken files."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """name → H×W×3 uint8 photograph: astronaut 512×512, chelsea (a cat) 451×300, coffee 600×400."""
    data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) ships the sample photos")
    return {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee()}


@pytest.fixture
def write_photo(photos: dict[str, np.ndarray]) -> Callable[..., Path]:
    """Save one of the photos as `path` (format from the suffix), optionally with an EXIF orientation."""

    def write(path: Path, name: str = "chelsea", *, orientation: int | None = None) -> Path:
        image = Image.fromarray(photos[name])
        path.parent.mkdir(parents=True, exist_ok=True)
        if orientation is None:
            image.save(path, quality=92)
        else:
            exif = Image.Exif()
            exif[0x0112] = orientation  # Orientation
            image.save(path, quality=92, exif=exif)
        return path

    return write


@pytest.fixture
def write_bad_files(write_photo: Callable[..., Path]) -> Callable[[Path], dict[str, Path]]:
    """Write a truncated JPEG, a zero-byte file and a text file named .jpg into a folder."""

    def write(folder: Path) -> dict[str, Path]:
        truncated = write_photo(folder / "truncated.jpg", "astronaut")
        data = truncated.read_bytes()
        truncated.write_bytes(data[: len(data) // 2])
        empty = folder / "empty.png"
        empty.write_bytes(b"")
        text = folder / "notes.jpg"
        text.write_text("these are my notes, not a picture\n")
        return {"truncated": truncated, "empty": empty, "text": text}

    return write


def write_huge_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit PNG of the given size: a few kB on disk, however many pixels it declares."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(row) for _ in range(height)]
    idat = b"".join(chunks) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def huge_png() -> Callable[[Path, int, int], Path]:
    return write_huge_png
