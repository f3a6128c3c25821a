"""Aspect-ratio buckets (kohya-style): train each image near its own shape instead of a square crop.

`make_buckets` lists the bucket sizes for one training resolution, `assign_bucket` picks one per
image from its size alone (so a whole dataset is planned without decoding it), `fit_to_bucket`
resizes and crops the pixels, and `BucketBatchSampler` batches items that share a bucket.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps


@dataclass(frozen=True, order=True)
class Bucket:
    """A training size in pixels; every image in a batch is cropped to the same bucket."""

    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def square_bucket(resolution: int) -> Bucket:
    """The one bucket used when bucketing is off: every image is cropped square."""
    return Bucket(resolution, resolution)


def make_buckets(resolution: int, min_side: int, max_side: int, step: int) -> list[Bucket]:
    """Every bucket for a training resolution, as kohya's `make_bucket_resolutions` builds them.

    For each width from `min_side` to `max_side` in `step`s the tallest height (a multiple of
    `step`, at most `max_side`) keeping the area within resolution², and its transpose. The square
    bucket is always there, even when the side limits would leave it out.
    """
    if step <= 0 or resolution < step:
        raise ValueError(f"resolution {resolution} and step {step}: need 0 < step <= resolution")
    max_area = resolution * resolution
    largest = max_side // step * step
    side = resolution // step * step
    found = {(side, side)}
    width = math.ceil(min_side / step) * step
    while width <= largest:
        height = min(largest, max_area // width // step * step)
        if height >= min_side:
            found.add((width, height))
            found.add((height, width))
        width += step
    return sorted(Bucket(w, h) for w, h in found)


def assign_bucket(
    size: tuple[int, int], resolution: int, buckets: Sequence[Bucket], *, no_upscale: bool, step: int
) -> Bucket:
    """The bucket for an image of `size` = (width, height).

    Normally the bucket of nearest aspect ratio (an exact size match first, as kohya does).
    With `no_upscale` every image gets its own bucket, as kohya does: its size shrunk to fit
    resolution² and the largest bucket side, then rounded down to `step`, so no image is ever
    enlarged. Only an image under `step` pixels on a side still has to grow to one step.
    """
    width, height = size
    if no_upscale:
        largest = max(max(b.width, b.height) for b in buckets)
        area_scale = math.sqrt(resolution * resolution / (width * height))
        scale = min(1.0, area_scale, largest / width, largest / height)
        return Bucket(
            max(step, int(width * scale) // step * step), max(step, int(height * scale) // step * step)
        )
    exact = Bucket(width, height)
    if exact in buckets:
        return exact
    aspect = width / height
    return min(buckets, key=lambda b: abs(b.width / b.height - aspect))


@dataclass(frozen=True, eq=False)
class FittedImage:
    """Pixels cropped to a bucket, plus what size-conditioned models are told about the crop.

    `original_size` is the loaded image's (height, width); `crop_top_left` is (top, left) in the
    resized (and, when `flipped`, mirrored) image: the conventions of size/crop micro-conditioning.
    """

    pixels: torch.Tensor  # 3 × H × W, float32 in [-1, 1]
    original_size: tuple[int, int]
    crop_top_left: tuple[int, int]
    flipped: bool


def fit_to_bucket(
    image: Image.Image, bucket: Bucket, *, rng: random.Random | None = None, flip: bool = False
) -> FittedImage:
    """Resize `image` to cover the bucket, crop it to the bucket, optionally mirror it.

    The crop is centred unless `rng` is given (random crop). `flip` mirrors the image; the caller
    draws it, so a latent cache can hold both versions of an image deterministically.
    """
    width, height = image.size
    scale = max(bucket.width / width, bucket.height / height)
    size = (max(bucket.width, round(width * scale)), max(bucket.height, round(height * scale)))
    if size != image.size:
        # LANCZOS keeps detail when shrinking; BICUBIC rings less when enlarging
        resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
        image = image.resize(size, resample)
    if flip:
        image = ImageOps.mirror(image)
    spare_x, spare_y = size[0] - bucket.width, size[1] - bucket.height
    if rng is None:
        left, top = spare_x // 2, spare_y // 2
    else:
        left, top = rng.randint(0, spare_x), rng.randint(0, spare_y)
    image = image.crop((left, top, left + bucket.width, top + bucket.height))
    array = np.array(image.convert("RGB"), dtype=np.uint8)
    pixels = torch.from_numpy(array).permute(2, 0, 1).float().div(127.5).sub(1.0).contiguous()
    return FittedImage(pixels, (height, width), (top, left), flip)


class BucketBatchSampler:
    """Yields batches of item indices, each from one bucket, in an order fixed by (seed, epoch).

    `batch_size` is one size for every item or one per item (per-dataset batch sizes). Items are
    grouped by (batch size, bucket): sd-scripts cuts batches inside each of its datasets' buckets
    at that dataset's batch size, so a dataset's train and reg images share batches and two
    datasets with batch sizes 2 and 3 give batches of 2 and of 3. Within a group the items are
    shuffled and cut into batches; a group whose item count is not a multiple of its batch size
    ends with one smaller batch, so every item trains every epoch. Then the batches of all groups
    are shuffled together.

    `state_dict()` records the epoch and how many batches of it were handed out, so a resumed run
    continues with the very next batch. A DataLoader that prefetches asks for batches ahead of
    training; resume from the number of batches the loop actually consumed in that case.
    """

    def __init__(self, bucket_keys: Sequence[Hashable], batch_size: int | Sequence[int], seed: int) -> None:
        if not bucket_keys:
            raise ValueError("no items to batch: the dataset plan is empty")
        sizes = [batch_size] * len(bucket_keys) if isinstance(batch_size, int) else list(batch_size)
        if len(sizes) != len(bucket_keys):
            raise ValueError(f"{len(sizes)} batch sizes for {len(bucket_keys)} items; give one per item")
        if min(sizes) < 1:
            raise ValueError(f"batch_size must be at least 1, got {min(sizes)}")
        groups: dict[tuple[int, Hashable], list[int]] = {}
        for index, (key, size) in enumerate(zip(bucket_keys, sizes, strict=True)):
            groups.setdefault((size, key), []).append(index)
        # first-seen order: deterministic for the same keys
        self._groups = [(size, members) for (size, _), members in groups.items()]
        self._num_items = len(bucket_keys)
        distinct = {size for size, _ in self._groups}
        # one number when uniform (and in saved states), else each group's size in group order
        self.batch_size: int | list[int] = (
            distinct.pop() if len(distinct) == 1 else [size for size, _ in self._groups]
        )
        self.seed = seed
        self._epoch = 0
        self._position = 0

    def __len__(self) -> int:
        return sum(math.ceil(len(members) / size) for size, members in self._groups)

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def epochs_done(self) -> int:
        """Epochs whose every batch has been handed out (the last one may not have been asked for)."""
        return self._epoch + (self._position >= len(self))

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its first batch; the current epoch keeps its position (a resume)."""
        if epoch != self._epoch:
            self._epoch, self._position = epoch, 0

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of one epoch in training order."""
        rng = random.Random(f"{self.seed}/{epoch}")  # str seeds hash the same in every process
        batches = []
        for size, members in self._groups:
            order = list(members)
            rng.shuffle(order)
            batches.extend(order[i : i + size] for i in range(0, len(order), size))
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        if self._position >= len(self):
            self._epoch, self._position = self._epoch + 1, 0
        batches = self.epoch_batches(self._epoch)
        while self._position < len(batches):
            batch = batches[self._position]
            self._position += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self._epoch,
            "position": self._position,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "num_items": self._num_items,
            "bucket_sizes": [len(members) for _, members in self._groups],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where a saved run stopped; refuses state saved for other data or settings."""
        expected = self.state_dict()
        for key in ("seed", "batch_size", "num_items", "bucket_sizes"):
            if state.get(key) != expected[key]:
                raise ValueError(
                    f"sampler state was saved with {key}={state.get(key)!r} but this run has "
                    f"{expected[key]!r}; "
                    "the batch order cannot be continued. Restore the dataset and settings or start "
                    "the run afresh."
                )
        self._epoch, self._position = int(state["epoch"]), int(state["position"])
