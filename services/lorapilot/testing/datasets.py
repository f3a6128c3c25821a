"""Small generated image datasets for the demo run and the tests (no downloads)."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

_SHAPES = ("circle", "square", "triangle")
_COLOURS = {"red": (200, 40, 40), "green": (40, 160, 70), "blue": (40, 80, 200), "yellow": (220, 200, 40)}


def write_demo_images(
    folder: Path, count: int, *, size: tuple[int, int] = (96, 80), seed: int = 0, caption: str | None = ""
) -> list[Path]:
    """`count` PNGs of coloured shapes, each with a same-stem .txt caption describing it.

    `caption` is put before the description; None writes no caption files.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        shape, (colour, rgb) = rng.choice(_SHAPES), rng.choice(list(_COLOURS.items()))
        image = Image.new("RGB", size, tuple(rng.randint(180, 255) for _ in range(3)))
        _draw(ImageDraw.Draw(image), shape, rgb, size, rng)
        path = folder / f"{i:04d}.png"
        image.save(path)
        if caption is not None:
            path.with_suffix(".txt").write_text(f"{caption} a {colour} {shape}".strip())
        written.append(path)
    return written


def _draw(
    draw: ImageDraw.ImageDraw,
    shape: str,
    rgb: tuple[int, int, int],
    size: tuple[int, int],
    rng: random.Random,
) -> None:
    w, h = size
    x0, y0 = rng.randint(0, w // 3), rng.randint(0, h // 3)
    x1, y1 = rng.randint(2 * w // 3, w - 1), rng.randint(2 * h // 3, h - 1)
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=rgb)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=rgb)
    else:
        draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=rgb)
