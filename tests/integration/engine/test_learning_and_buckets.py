"""The model learns, and images of many shapes train together in buckets."""

from __future__ import annotations

import json
import re
import statistics

from PIL import Image

from lorapilot.engine import train


def test_loss_falls_on_a_one_colour_dataset(make_spec, workspace):
    folder = workspace.images / "1_red"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (64, 64), (220, 20, 30)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("red")
    spec = make_spec(
        name="red",
        network={"dim": 8, "alpha": 8},
        datasets=[{"folder": "red", "resolutions": [64], "bucket": {"enabled": False}}],
        training={"max_steps": 60, "batch_size": 4, "learning_rate": 5e-3},
    )
    result = train(spec, workspace, show_progress=False)
    losses = [json.loads(line)["loss"] for line in (result.lora.parent / "_logs" / "metrics.jsonl").open()]
    assert len(losses) == 60
    first, last = statistics.mean(losses[:10]), statistics.mean(losses[-10:])
    assert last < 0.85 * first, f"loss did not fall: first 10 steps {first:.3f}, last 10 {last:.3f}"


SHAPES = {
    "square": (128, 128),
    "portrait": (96, 144),
    "landscape": (144, 96),
    "tall": (80, 160),
    "wide": (160, 80),
}


def _ten_images(folder):
    folder.mkdir()
    for name, size in SHAPES.items():
        for k in range(2):
            Image.new("RGB", size, (30 * k, 90, 160)).save(folder / f"{name}{k}.png")
            (folder / f"{name}{k}.txt").write_text(f"a {name} picture")


def _buckets_in_log(result) -> dict[str, int]:
    log = (result.lora.parent / "_logs" / "train.log").read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"bucket (\d+x\d+): (\d+) images?", log)}


def test_ten_images_of_five_aspect_ratios_train_at_batch_2_in_buckets(make_spec, workspace):
    _ten_images(workspace.images / "1_shapes")
    spec = make_spec(
        name="buckets",
        datasets=[
            {
                "folder": "shapes",
                "resolutions": [256],
                "bucket": {"enabled": True, "min_resolution": 64, "max_resolution": 512, "step": 32},
            }
        ],
        training={"max_steps": 5, "batch_size": 2},
    )
    result = train(spec, workspace, show_progress=False)
    buckets = _buckets_in_log(result)
    assert sum(buckets.values()) == 10 and len(buckets) == 5, buckets
    log = (result.lora.parent / "_logs" / "train.log").read_text()
    assert re.search(r"bucket 256x256 holds square0\.png, square1\.png", log)
    for label in buckets:
        w, h = map(int, label.split("x"))
        assert w % 32 == 0 and h % 32 == 0 and w * h <= 256 * 256
    shapes = sorted((int(w) / int(h) for w, h in (label.split("x") for label in buckets)))
    assert shapes[2] == 1.0 and shapes[0] < shapes[1] < 1.0 < shapes[3] < shapes[4], buckets


def test_no_upscale_never_enlarges_an_image(make_spec, workspace):
    folder = workspace.images / "1_small"
    folder.mkdir()
    sizes = [(70, 70), (100, 66), (66, 100), (200, 200)]
    for i, size in enumerate(sizes):
        Image.new("RGB", size, (200, 40 * i, 90)).save(folder / f"{i}.png")
    spec = make_spec(
        name="noup",
        datasets=[
            {
                "folder": "small",
                "resolutions": [128],
                "bucket": {
                    "enabled": True,
                    "min_resolution": 64,
                    "max_resolution": 256,
                    "step": 32,
                    "no_upscale": True,
                },
            }
        ],
        training={"max_steps": 2, "batch_size": 2},
    )
    buckets = _buckets_in_log(train(spec, workspace, show_progress=False))
    assert sum(buckets.values()) == 4
    for label in buckets:
        w, h = map(int, label.split("x"))
        assert any(w <= sw and h <= sh for sw, sh in sizes), f"bucket {label} upscales its image"
    assert "128x128" in buckets  # the large one is reduced to the training resolution
