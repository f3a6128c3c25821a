"""The training plan: every (image, resolution, repeat) a training epoch sees, with its bucket.

`scan_datasets` reads the TrainSpec's dataset folders once, before training starts, so a broken
file or an empty folder is reported up front and not an hour into a run. It decodes no pixels
for training; buckets come from image headers, captions from the files beside the images.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lorapilot.data.buckets import Bucket, BucketBatchSampler, assign_bucket, make_buckets, square_bucket
from lorapilot.data.captions import CaptionPolicy, policy_for, read_caption, tag_frequency
from lorapilot.data.images import IMAGE_SUFFIXES, ImageError, image_size, verify_image
from lorapilot.errors import LoraPilotError

if TYPE_CHECKING:
    from lorapilot.spec.model import DatasetSpec

logger = logging.getLogger(__name__)


class DatasetError(LoraPilotError):
    """A dataset folder that cannot be trained on; names the folder and the fix."""

    def __init__(self, folder: Path, message: str) -> None:
        self.folder = Path(folder)
        super().__init__(message)


@dataclass(frozen=True)
class TrainItem:
    """One image at one resolution; a dataset's `repeats` put it in the plan that many times.

    `original_size` is (height, width) after EXIF rotation, like `FittedImage.original_size`.
    `flip` says the dataset allows random horizontal flips; the training loop draws them.
    """

    image: Path
    dataset_index: int
    is_reg: bool
    weight: float
    resolution: int
    bucket: Bucket
    original_size: tuple[int, int]
    caption_raw: str | None
    policy: CaptionPolicy
    flip: bool


@dataclass
class DatasetPlan:
    """What a run will train on, plus the counts kohya writes into a LoRA's `ss_*` metadata.

    Counts of images "with repeats" count each image once per repeat and per resolution, as
    kohya's `ss_num_train_images` does (it has a single resolution).
    """

    items: list[TrainItem] = field(default_factory=list)
    skipped: list[ImageError] = field(default_factory=list)
    bucket_counts: dict[Bucket, int] = field(default_factory=dict)
    dataset_dirs: dict[str, dict[str, int]] = field(default_factory=dict)  # ss_dataset_dirs
    reg_dataset_dirs: dict[str, dict[str, int]] = field(default_factory=dict)  # ss_reg_dataset_dirs
    num_train_images: int = 0
    num_reg_images: int = 0
    tag_frequency: dict[str, dict[str, int]] = field(default_factory=dict)  # ss_tag_frequency

    def describe_buckets(self) -> list[str]:
        """One line per bucket for the training log, e.g. "bucket 512x768: 4 images"."""
        return [
            f"bucket {bucket}: {count} image{'s' if count != 1 else ''}"
            for bucket, count in sorted(self.bucket_counts.items())
        ]


def scan_datasets(
    datasets: Sequence[DatasetSpec],
    *,
    skip_bad_images: bool,
    verify_images: bool = True,
    balance_reg: bool = False,
) -> DatasetPlan:
    """Plan every dataset folder: list images, check them, read captions, assign buckets.

    A file that cannot be trained on raises its `ImageError`, or with `skip_bad_images` is left
    out with a warning and listed in `plan.skipped`. `verify_images` decodes each file (JPEGs at
    1/8 scale) so truncated files are caught here; without it only headers are read.
    Folders are read non-recursively, files in name order, so the plan is the same every time.
    `balance_reg` repeats or trims the regularization items to the training items' count, see
    `_balance_reg`.
    """
    plan = DatasetPlan()
    for index, spec in enumerate(datasets):
        folder = Path(spec.folder)
        images = _checked_images(index, folder, skip_bad_images, verify_images, plan.skipped)
        captions = [read_caption(path, spec.caption_extension) for path, _ in images]
        _log_missing_captions(folder, spec, captions)
        _add_items(plan, index, spec, images, captions)
        _add_metadata(plan, folder, spec, len(images), captions)
    if balance_reg:
        _balance_reg(plan)
    return plan


def _balance_reg(plan: DatasetPlan) -> None:
    """As many regularization items per epoch as training items, the way sd-scripts'
    DreamBoothDataset does it: reg images (in dataset and name order) are taken with their repeats
    until the training count is reached, which trims the rest; if they fall short, each gets one
    more repeat in turn until the counts match. kohya's metadata counts (`num_reg_images`, the reg
    folders' repeats) stay those of the folders, as sd-scripts reports them.

    sd-scripts balances within each of its [[datasets]]; a TrainSpec has no such grouping, so all
    reg images are balanced against all training images (the same when there is one dataset).
    """
    train_count = sum(not item.is_reg for item in plan.items)
    reg = [item for item in plan.items if item.is_reg]
    if not reg:
        return
    images = list({id(item): item for item in reg}.values())  # one per (image, resolution), in order
    found = Counter(id(item) for item in reg)  # its repeats
    counts: list[int] = []
    seen = 0
    while seen < train_count:
        for index, item in enumerate(images):
            if len(counts) < len(images):  # first pass: each image with its own repeats
                counts.append(found[id(item)])
                seen += counts[-1]
            else:
                counts[index] += 1
                seen += 1
            if seen >= train_count:
                break
    reg_items = [item for item, count in zip(images, counts, strict=False) for _ in range(count)]
    before = len(reg)
    plan.items = [item for item in plan.items if not item.is_reg] + reg_items
    plan.bucket_counts = {}
    for item in plan.items:
        plan.bucket_counts[item.bucket] = plan.bucket_counts.get(item.bucket, 0) + 1
    unused = len(images) - len(counts)
    logger.info(
        "regularization balanced to the %d training items: %d reg items instead of %d%s",
        train_count,
        len(reg_items),
        before,
        f" ({unused} reg images not used)" if unused else "",
    )


def batch_sampler(
    items: Sequence[TrainItem], datasets: Sequence[DatasetSpec], batch_size: int, seed: int
) -> BucketBatchSampler:
    """The epoch's batches as sd-scripts forms them: each item at its dataset's batch size (unset:
    `batch_size`), cut within buckets, then all batches shuffled together."""
    sizes = [datasets[item.dataset_index].batch_size or batch_size for item in items]
    return BucketBatchSampler([item.bucket for item in items], sizes, seed)


def _checked_images(
    index: int, folder: Path, skip_bad: bool, verify: bool, skipped: list[ImageError]
) -> list[tuple[Path, tuple[int, int]]]:
    """(path, (width, height)) of every usable image in the folder, in name order."""
    if not folder.is_dir():
        raise DatasetError(folder, f"dataset folder {folder} does not exist; fix datasets[{index}].folder")
    paths = sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )
    if not paths:
        raise DatasetError(
            folder,
            f"dataset folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            f"add images or fix datasets[{index}].folder",
        )
    good = []
    for path, result in zip(paths, _measure_all(paths, verify_image if verify else image_size), strict=True):
        if isinstance(result, ImageError):
            if not skip_bad:
                raise result
            logger.warning("skipping %s", result)
            skipped.append(result)
        else:
            good.append((path, result))
    if not good:
        raise DatasetError(
            folder,
            f"dataset folder {folder} has no usable images: all {len(paths)} could not be read "
            f"(see the warnings above); replace them or fix datasets[{index}].folder",
        )
    return good


def _measure_all(
    paths: list[Path], measure: Callable[[Path], tuple[int, int]]
) -> list[tuple[int, int] | ImageError]:
    """Sizes in input order; decoding runs in threads (Pillow releases the GIL while decoding)."""

    def one(path: Path) -> tuple[int, int] | ImageError:
        try:
            return measure(path)
        except ImageError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, paths))


def _add_items(
    plan: DatasetPlan,
    index: int,
    spec: DatasetSpec,
    images: list[tuple[Path, tuple[int, int]]],
    captions: list[str | None],
) -> None:
    """Each image once per resolution, `repeats` times, each with its bucket."""
    policy = policy_for(spec)
    bucketing = spec.bucket
    for resolution in spec.resolutions:
        buckets = [square_bucket(resolution)]
        if bucketing.enabled:
            limits = (bucketing.min_resolution, bucketing.max_resolution)
            buckets = make_buckets(resolution, *limits, bucketing.step)
        for (path, (width, height)), caption in zip(images, captions, strict=True):
            bucket = buckets[0]
            if bucketing.enabled:
                bucket = assign_bucket(
                    (width, height), resolution, buckets, no_upscale=bucketing.no_upscale, step=bucketing.step
                )
            item = TrainItem(
                image=path,
                dataset_index=index,
                is_reg=spec.is_reg,
                weight=spec.weight,
                resolution=resolution,
                bucket=bucket,
                original_size=(height, width),
                caption_raw=caption,
                policy=policy,
                flip=spec.flip,
            )
            plan.items.extend([item] * spec.repeats)
            plan.bucket_counts[bucket] = plan.bucket_counts.get(bucket, 0) + spec.repeats


def _add_metadata(
    plan: DatasetPlan, folder: Path, spec: DatasetSpec, img_count: int, captions: list[str | None]
) -> None:
    """kohya's per-folder counts; two datasets with the same folder name add up, as in kohya."""
    seen = spec.repeats * img_count * len(spec.resolutions)
    dirs = plan.reg_dataset_dirs if spec.is_reg else plan.dataset_dirs
    entry = dirs.setdefault(folder.name, {"n_repeats": 0, "img_count": 0})
    entry["n_repeats"] += spec.repeats
    entry["img_count"] += img_count
    if spec.is_reg:
        plan.num_reg_images += seen
    else:
        plan.num_train_images += seen
    # kohya counts the caption each image trains with: its file, else the class tokens
    texts = [text for text in (c if c is not None else spec.class_tokens for c in captions) if text]
    counts = plan.tag_frequency.setdefault(folder.name, {})
    for tag, count in tag_frequency(texts).items():
        counts[tag] = counts.get(tag, 0) + count


def _log_missing_captions(folder: Path, spec: DatasetSpec, captions: list[str | None]) -> None:
    missing = sum(caption is None for caption in captions)
    if not missing:
        return
    fallback = spec.class_tokens or spec.trigger_word
    level = logging.INFO if spec.class_tokens else logging.WARNING
    logger.log(
        level,
        "%s: %d of %d images have no %s caption; they train with %s",
        folder,
        missing,
        len(captions),
        spec.caption_extension,
        repr(fallback) if fallback else "an empty caption (set class_tokens to give them one)",
    )
