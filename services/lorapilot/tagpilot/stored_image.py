"""One image stored in a TagPilot dataset: the record kept of it, and how a stored file is checked
and described (format from its bytes, size, hashes, thumbnail). Intake stores uploads with it; the
store adopts files put into a dataset folder by hand with it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import imagehash
from PIL import Image

from lorapilot.data.images import MAX_PIXELS, ImageError, load_image
from lorapilot.tagpilot.errors import TagPilotError

Image.init()  # `Image.open(formats=...)` needs WebP and TIFF registered; only the default list loads lazily

# Formats Pillow may try when sniffing; everything else is "not an image" without being parsed.
SNIFF_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")  # a multi-picture JPEG reports "MPO"
THUMB_SIZE = 256
_READ_CHUNK = 1 << 20


class RejectedFileError(TagPilotError):
    """One uploaded file that is not stored; the message is the reason shown to the user."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class ImageRecord:
    """What TagPilot knows about one stored image."""

    name: str
    original: str
    width: int
    height: int
    format: str
    bytes: int
    source_sha256: str
    phash: str
    notes: list[str] = field(default_factory=list)
    added: str = field(default_factory=now_iso)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageRecord:
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)


def sniff_image(path: Path) -> str:
    """The image format read from the file's bytes, or RejectedFileError saying what it is not."""
    try:
        with Image.open(path, formats=SNIFF_FORMATS) as image:
            width, height = image.size
            fmt = image.format or ""
    except Image.DecompressionBombError as exc:
        raise RejectedFileError(f"decompression bomb: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise RejectedFileError(
            "not an image: the content is not JPEG, PNG, WebP, BMP, GIF or TIFF (whatever the name says)"
        ) from exc
    if width * height > MAX_PIXELS:
        raise RejectedFileError(
            f"decompression bomb: declares {width}×{height} pixels, "
            f"more than the {MAX_PIXELS / 2**20:.0f} MP limit"
        )
    return fmt


def describe_stored_image(path: Path, note: str | None = None) -> ImageRecord:
    """A record for an image already in a dataset folder (e.g. copied there by hand)."""
    fmt = sniff_image(path)
    try:
        upright = load_image(path)
    except ImageError as exc:
        raise RejectedFileError(exc.problem) from exc
    notes = [note] if note else []
    record = image_record(path, upright, original=path.name, fmt=fmt, digest=sha256_of(path), notes=notes)
    save_thumbnail(upright, path.parent / ".tagpilot" / "thumbs" / f"{path.stem}.jpg")
    return record


def save_thumbnail(image: Image.Image, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    thumb.save(target, "JPEG", quality=85)


def image_record(
    path: Path, upright: Image.Image, *, original: str, fmt: str, digest: str, notes: list[str]
) -> ImageRecord:
    """The record of the image stored at `path`, decoded upright as `upright`."""
    width, height = upright.size
    return ImageRecord(
        name=path.name,
        original=original,
        width=width,
        height=height,
        format=fmt,
        bytes=path.stat().st_size,
        source_sha256=digest,
        phash=str(imagehash.phash(upright)),
        notes=notes,
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
