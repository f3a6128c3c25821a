"""Every kind of file a dataset folder holds comes out upright and RGB, or fails naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile

from lorapilot.data.images import ImageError, image_size, load_image, verify_image


def _diff(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def test_photo_loads_as_the_same_rgb_picture(tmp_path, write_photo, photos):
    path = write_photo(tmp_path / "cat.png", "chelsea")
    assert image_size(path) == verify_image(path) == (451, 300)
    image = load_image(path)
    assert image.mode == "RGB"
    assert np.array_equal(np.asarray(image), photos["chelsea"])


@pytest.mark.parametrize(
    ("name", "convert"),
    [("a.jpg", "RGB"), ("b.webp", "RGB"), ("c.bmp", "RGB"), ("d.jpg", "L"), ("e.jpg", "CMYK")],
)
def test_every_supported_format_reads_and_verifies(tmp_path, photos, name, convert):
    path = tmp_path / name
    Image.fromarray(photos["coffee"]).convert(convert).save(path)
    assert image_size(path) == verify_image(path) == load_image(path).size == (600, 400)
    assert load_image(path).mode == "RGB"


def test_exif_rotated_jpeg_is_upright_with_swapped_size(tmp_path, write_photo, photos):
    # Orientation 6: the camera was turned 90° clockwise; viewers rotate the pixels to show it
    path = write_photo(tmp_path / "phone.jpg", "chelsea", orientation=6)
    assert Image.open(path).size == (451, 300)  # stored landscape
    assert image_size(path) == verify_image(path) == (300, 451)
    image = load_image(path)
    assert image.size == (300, 451)
    upright = Image.fromarray(photos["chelsea"]).transpose(Image.Transpose.ROTATE_270)
    wrong_way = Image.fromarray(photos["chelsea"]).transpose(Image.Transpose.ROTATE_90)
    assert _diff(image, upright) < 4  # JPEG loss only
    assert _diff(image, wrong_way) > 20


def test_cmyk_jpeg_becomes_rgb_with_the_same_colours(tmp_path, photos):
    path = tmp_path / "print.jpg"
    Image.fromarray(photos["coffee"]).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (600, 400)
    assert _diff(image, photos["coffee"]) < 6


def test_16_bit_png_keeps_its_brightness(tmp_path):
    values = np.full((32, 64), 32768, dtype=np.uint16)  # mid grey
    values[:, :8] = 0
    values[:, -8:] = 65535
    path = tmp_path / "scan16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = np.asarray(load_image(path))
    assert pixels.shape == (32, 64, 3)
    assert abs(int(pixels[0, 32, 0]) - 128) <= 1  # not clipped to white
    assert pixels[0, 0].tolist() == [0, 0, 0]
    assert pixels[0, -1].tolist() == [255, 255, 255]


def test_transparent_palette_png_is_composited_on_white(tmp_path):
    image = Image.new("P", (40, 20), 0)
    image.putpalette([0, 0, 0] + [200, 30, 30] + [0, 0, 0] * 254)
    image.paste(1, (0, 0, 20, 20))  # left half red, right half index 0 = transparent black
    path = tmp_path / "sticker.png"
    image.save(path, transparency=0)
    pixels = np.asarray(load_image(path))
    assert pixels[10, 5].tolist() == [200, 30, 30]
    assert pixels[10, 35].tolist() == [255, 255, 255]


def test_rgba_and_la_pngs_are_composited_on_white(tmp_path):
    rgba = np.zeros((10, 30, 4), dtype=np.uint8)
    rgba[:, :10] = [255, 0, 0, 255]  # opaque red
    rgba[:, 10:20] = [255, 0, 0, 128]  # half-transparent red
    rgba[:, 20:] = [0, 0, 0, 0]  # fully transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    pixels = np.asarray(load_image(tmp_path / "cutout.png")).astype(int)
    assert pixels[5, 5].tolist() == [255, 0, 0]
    assert np.abs(pixels[5, 15] - [255, 127, 127]).max() <= 2
    assert pixels[5, 25].tolist() == [255, 255, 255]

    Image.new("LA", (8, 8), (0, 0)).save(tmp_path / "grey_alpha.png")
    assert np.asarray(load_image(tmp_path / "grey_alpha.png")).min() == 255


def test_grayscale_becomes_three_equal_channels(tmp_path, photos):
    path = tmp_path / "bw.jpg"
    Image.fromarray(photos["astronaut"]).convert("L").save(path)
    pixels = np.asarray(load_image(path))
    assert pixels.shape == (512, 512, 3)
    assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2])


@pytest.mark.parametrize("kind", ["truncated", "empty", "text"])
def test_broken_files_raise_an_error_naming_the_file(tmp_path, write_bad_files, kind):
    path = write_bad_files(tmp_path)[kind]
    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert caught.value.path == path
    assert path.name in str(caught.value)
    with pytest.raises(ImageError, match=path.name):
        verify_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_header_checks_catch_files_that_are_not_images(tmp_path, write_bad_files):
    bad = write_bad_files(tmp_path)
    for kind in ("empty", "text"):
        with pytest.raises(ImageError, match=bad[kind].name):
            image_size(bad[kind])
    # a file cut off after its header still has a size; only decoding it reveals the damage
    assert image_size(bad["truncated"]) == (512, 512)
    cut_header = tmp_path / "cut_header.jpg"
    cut_header.write_bytes(bad["truncated"].read_bytes()[:40])
    with pytest.raises(ImageError, match=r"cut_header\.jpg"):
        image_size(cut_header)


@pytest.mark.parametrize(("width", "height"), [(9000, 8000), (10000, 10000), (20000, 20000)])
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, at 100 MP
def test_huge_images_are_refused_without_decoding(tmp_path, huge_png, width, height):
    # 72 MP is under Pillow's bomb warning, 100 MP between its warning and error, 400 MP above it
    path = huge_png(tmp_path / "poster.png", width, height)
    assert path.stat().st_size < 200_000
    limit = Image.MAX_IMAGE_PIXELS
    for read in (image_size, verify_image, load_image):
        with pytest.raises(ImageError, match=r"poster\.png.*64 MP"):
            read(path)
    assert limit == Image.MAX_IMAGE_PIXELS  # the process-wide Pillow setting is left alone


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageError, match=r"nowhere\.png"):
        image_size(tmp_path / "nowhere.png")
