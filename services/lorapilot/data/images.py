"""Image files as training sees them: upright, 8-bit RGB, or an error that names the file.

Dataset folders hold whatever people export: phone photos with an EXIF rotation, CMYK JPEGs from
print workflows, 16-bit PNGs, transparent PNGs, half-downloaded files. Everything usable comes out
of `load_image` the way an image viewer shows it; everything else raises `ImageError`.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

from lorapilot.errors import LoraPilotError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})

# Decompression-bomb guard, checked per file. Pillow's own MAX_IMAGE_PIXELS (~89 MP warning,
# ~179 MP error) is process-wide, so it is left alone; this lower limit rejects first.
MAX_PIXELS = 8192 * 8192
_MAX_DESCRIPTION = "64 MP (8192×8192)"

_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that turn the image by 90° (transpose, 90°, 270°)
_HIGH_DEPTH = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
# What Pillow raises for files it cannot decode (truncated data, bad headers, bad zlib streams).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,  # only raised when warnings are turned into errors
)
_FIX = "re-export it as PNG or JPEG, or remove it from the folder"
_SHRINK = "downscale it (most training uses 1024 px sides) or remove it"


class ImageError(LoraPilotError):
    """A file that cannot be trained on; the message names the file, the problem and the fix."""

    def __init__(self, path: Path, problem: str, fix: str = _FIX) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}; {fix}")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as training will see it (after EXIF rotation), from the header only.

    Cheap enough for listing big folders. Data cut off after the header is not noticed here;
    `verify_image` decodes the pixels to catch that.
    """
    path = Path(path)
    with _opened(path) as image:
        return _upright_size(image.size, _orientation(image, decoded=False))


def verify_image(path: Path) -> tuple[int, int]:
    """Like `image_size`, but decodes every pixel, so truncated or corrupt data raises too.

    JPEGs are decoded at 1/8 scale (DCT scaling): the whole stream is still read, at a fraction
    of the cost.
    """
    path = Path(path)
    with _opened(path) as image:
        size = image.size
        if image.format == "JPEG":
            image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
        image.load()
        return _upright_size(size, _orientation(image, decoded=True))


def load_image(path: Path) -> Image.Image:
    """The image as an upright 8-bit RGB picture, the way a viewer would show it.

    EXIF orientation is applied, CMYK and grayscale become RGB, 16-bit data is scaled (not clipped)
    to 8 bits, and transparency is composited onto white (not black, which would teach the model
    black backgrounds that nobody sees in the file).
    """
    path = Path(path)
    with _opened(path) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
        return _to_rgb(upright, path)


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """Open lazily; any decoder failure inside the block becomes an ImageError naming the file."""
    if not path.is_file():
        raise ImageError(path, "does not exist or is not a file", "check the path")
    if path.stat().st_size == 0:
        raise ImageError(path, "is empty (0 bytes)", "copy the file again or remove it")
    try:
        with Image.open(path) as image:
            _check_pixels(path, image.size)
            yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(path, f"is larger than the {_MAX_DESCRIPTION} limit ({exc})", _SHRINK) from exc
    except _DECODE_ERRORS as exc:
        raise ImageError(path, f"cannot be decoded as an image ({exc})") from exc


def _check_pixels(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(path, f"declares an empty size {width}×{height}")
    if width * height > MAX_PIXELS:
        raise ImageError(path, f"is {width}×{height}, more than the {_MAX_DESCRIPTION} limit", _SHRINK)


def _orientation(image: Image.Image, *, decoded: bool) -> int:
    if image.format == "PNG" and "exif" not in image.info and not decoded:
        return 1  # a PNG's eXIf chunk after the pixels needs a full decode; verify/load honour it
    value = image.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) else 1


def _upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    width, height = size
    return (height, width) if orientation in _SWAPS_SIDES else (width, height)


def _to_rgb(image: Image.Image, path: Path) -> Image.Image:
    """Any Pillow mode → 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode in _HIGH_DEPTH:
        return _high_depth_to_rgb(image)
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageError(path, f"uses colour mode {image.mode}, which cannot be turned into RGB") from exc


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit and float grayscale → 8-bit; Pillow's own convert clips them to white."""
    values = np.asarray(image).astype(np.float64)
    if image.mode.startswith("I;16") or (image.mode == "I" and values.max(initial=0) > 255):
        values = values / 257.0  # 0..65535 → 0..255
    elif image.mode == "F" and values.max(initial=0) <= 1.0:
        values = values * 255.0  # float images usually hold 0..1
    grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")
