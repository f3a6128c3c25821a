"""Images train near their own shape, batches never mix shapes, and resumed runs see the same order."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter

import pytest
import torch
from PIL import Image

from lorapilot.data.buckets import (
    Bucket,
    BucketBatchSampler,
    assign_bucket,
    fit_to_bucket,
    make_buckets,
    square_bucket,
)
from lorapilot.data.images import image_size, load_image
from lorapilot.testing.datasets import write_demo_images

BUCKETS_512 = make_buckets(512, 256, 1024, 64)

# five aspect ratios, two images each (different sizes), and the bucket each must land in at 512
SHAPES = {
    "square": ([(96, 96), (200, 200)], Bucket(512, 512)),
    "portrait 2:3": ([(64, 96), (200, 300)], Bucket(384, 640)),
    "landscape 3:2": ([(96, 64), (300, 200)], Bucket(640, 384)),
    "tall 1:2": ([(48, 96), (150, 300)], Bucket(320, 704)),
    "banner 4:1": ([(128, 32), (400, 100)], Bucket(1024, 256)),
}


def test_buckets_at_512_match_kohya():
    pairs = {(256, 1024), (320, 768), (384, 640), (448, 576), (512, 512), (704, 320), (832, 256)}
    pairs |= {(256, 896), (256, 960)}
    pairs |= {(h, w) for w, h in pairs}
    assert sorted(Bucket(w, h) for w, h in pairs) == BUCKETS_512


@pytest.mark.parametrize(
    ("resolution", "min_side", "max_side", "step"),
    [(512, 256, 1024, 64), (1024, 256, 2048, 64), (768, 320, 1024, 32)],
)
def test_buckets_are_on_the_grid_within_limits_and_maximal(resolution, min_side, max_side, step):
    buckets = make_buckets(resolution, min_side, max_side, step)
    assert square_bucket(resolution) in buckets
    assert len(set(buckets)) == len(buckets) == len({Bucket(b.height, b.width) for b in buckets})
    for b in buckets:
        assert b.width % step == 0 and b.height % step == 0
        assert min_side <= min(b.width, b.height) and max(b.width, b.height) <= max_side
        assert b.width * b.height <= resolution**2

        def fits(w, h):
            return w * h <= resolution**2 and max(w, h) <= max_side

        assert not fits(b.width, b.height + step) or not fits(b.width + step, b.height)


def test_square_bucket_is_kept_even_beyond_the_side_limits():
    assert Bucket(1536, 1536) in make_buckets(1536, 256, 1024, 64)


def test_ten_images_of_five_shapes_land_in_their_buckets_and_batch_by_bucket(tmp_path):
    paths, expected = [], []
    for n, (sizes, bucket) in enumerate(SHAPES.values()):
        for k, size in enumerate(sizes):
            written = write_demo_images(tmp_path / "tmp", 1, size=size, seed=n * 10 + k)[0]
            paths.append(shutil.move(written, tmp_path / f"{n}{k}.png"))
            expected.append(bucket)
    buckets = [assign_bucket(image_size(p), 512, BUCKETS_512, no_upscale=False, step=64) for p in paths]
    assert buckets == expected

    sampler = BucketBatchSampler(buckets, batch_size=2, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5
    for batch in batches:
        assert len(batch) == 2 and buckets[batch[0]] == buckets[batch[1]]
    assert sorted(i for batch in batches for i in batch) == list(range(10))


def test_an_image_of_a_bucket_size_keeps_that_bucket():
    assert assign_bucket((704, 320), 512, BUCKETS_512, no_upscale=False, step=64) == Bucket(704, 320)


@pytest.mark.parametrize(
    "size", [(100, 150), (300, 200), (700, 380), (513, 511), (2000, 700), (5000, 5000), (3000, 400)]
)
def test_no_upscale_never_enlarges_an_image(size):
    bucket = assign_bucket(size, 512, BUCKETS_512, no_upscale=True, step=64)
    assert bucket.width <= size[0] and bucket.height <= size[1]
    assert bucket.width % 64 == 0 and bucket.height % 64 == 0
    assert bucket.width * bucket.height <= 512 * 512
    assert max(bucket.width, bucket.height) <= 1024
    fitted = fit_to_bucket(Image.new("RGB", size, (90, 90, 90)), bucket)
    assert fitted.pixels.shape == (3, bucket.height, bucket.width)


def test_no_upscale_differs_from_nearest_bucket_where_that_would_enlarge():
    # nearest aspect ratio for 700×380 is 640×384: taller than the image
    assert assign_bucket((700, 380), 512, BUCKETS_512, no_upscale=False, step=64) == Bucket(640, 384)
    assert assign_bucket((700, 380), 512, BUCKETS_512, no_upscale=True, step=64) == Bucket(640, 320)
    assert assign_bucket((100, 150), 512, BUCKETS_512, no_upscale=True, step=64) == Bucket(64, 128)
    assert assign_bucket((5000, 5000), 512, BUCKETS_512, no_upscale=True, step=64) == Bucket(512, 512)


def test_photo_is_resized_to_cover_and_centre_cropped(tmp_path, write_photo, photos):
    cat = load_image(write_photo(tmp_path / "cat.png", "chelsea"))  # 451 × 300
    fitted = fit_to_bucket(cat, Bucket(512, 320))
    assert fitted.pixels.shape == (3, 320, 512)
    assert fitted.pixels.dtype == torch.float32
    assert fitted.pixels.min() >= -1.0 and fitted.pixels.max() <= 1.0
    as_bytes = (fitted.pixels + 1) * 127.5  # the same picture: overall colour within a few levels
    photo_means = torch.from_numpy(photos["chelsea"]).float().mean(dim=(0, 1))
    assert (as_bytes.mean(dim=(1, 2)) - photo_means).abs().max() < 4
    assert fitted.original_size == (300, 451)
    assert fitted.crop_top_left == (10, 0)  # resized to 512 × 341, 21 spare rows
    assert fitted.flipped is False


def test_image_of_the_bucket_size_keeps_its_pixels(photos):
    fitted = fit_to_bucket(Image.fromarray(photos["astronaut"]), Bucket(512, 512))
    expected = torch.from_numpy(photos["astronaut"]).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(fitted.pixels, expected)
    assert fitted.crop_top_left == (0, 0)


def test_flip_mirrors_the_crop(photos):
    astronaut = Image.fromarray(photos["astronaut"])
    plain = fit_to_bucket(astronaut, Bucket(384, 640))
    flipped = fit_to_bucket(astronaut, Bucket(384, 640), flip=True)
    assert flipped.flipped and plain.crop_top_left == flipped.crop_top_left == (0, 128)
    assert torch.equal(flipped.pixels, torch.flip(plain.pixels, dims=[2]))


def test_random_crop_follows_the_rng(photos):
    astronaut = Image.fromarray(photos["astronaut"])
    crops = [
        fit_to_bucket(astronaut, Bucket(384, 640), rng=random.Random(s)).crop_top_left for s in range(10)
    ]
    assert all(top == 0 and 0 <= left <= 256 for top, left in crops)
    assert len(set(crops)) > 3
    again = fit_to_bucket(astronaut, Bucket(384, 640), rng=random.Random(4))
    assert again.crop_top_left == crops[4]


def _keys():
    # bucket A: 5 items, B: 3 items, C: 1 item
    return ["A", "B", "A", "C", "A", "B", "A", "A", "B"]


def test_small_buckets_still_train_with_a_shorter_batch():
    sampler = BucketBatchSampler(_keys(), batch_size=2, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 + 2 + 1
    assert sorted(len(b) for b in batches) == [1, 1, 1, 2, 2, 2]
    assert sorted(i for b in batches for i in b) == list(range(9))
    assert all(len({_keys()[i] for i in b}) == 1 for b in batches)


def test_order_is_fixed_by_seed_and_epoch():
    first, second = BucketBatchSampler(_keys(), 2, seed=5), BucketBatchSampler(_keys(), 2, seed=5)
    assert list(first) == list(second)
    assert first.epoch_batches(0) != first.epoch_batches(1)
    assert BucketBatchSampler(_keys(), 2, seed=6).epoch_batches(0) != first.epoch_batches(0)
    epochs = Counter(tuple(map(tuple, first.epoch_batches(e))) for e in range(10))
    assert len(epochs) > 5


def test_resumed_sampler_continues_with_the_same_batches():
    running = BucketBatchSampler(_keys(), 2, seed=11)
    full_epoch = running.epoch_batches(0)
    seen = []
    for batch in running:
        seen.append(batch)
        if len(seen) == 4:
            break
    state = json.loads(json.dumps(running.state_dict()))  # as saved with the training state

    resumed = BucketBatchSampler(_keys(), 2, seed=11)
    resumed.load_state_dict(state)
    resumed.set_epoch(0)  # a torch-style loop calls this for the epoch it resumes: no rewind
    assert seen + list(resumed) == full_epoch
    assert list(resumed) == running.epoch_batches(1)  # then the next epoch
    assert resumed.epoch == 1


def test_state_from_other_data_is_refused():
    state = BucketBatchSampler(_keys(), 2, seed=11).state_dict()
    with pytest.raises(ValueError, match="num_items"):
        BucketBatchSampler([*_keys(), "A"], 2, seed=11).load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size"):
        BucketBatchSampler(_keys(), 3, seed=11).load_state_dict(state)
