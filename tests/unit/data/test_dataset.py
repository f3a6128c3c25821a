"""Dataset folders become the plan a training run follows, with kohya's counts for the metadata."""

from __future__ import annotations

import logging
import shutil
from collections import Counter

import pytest

from lorapilot.data.buckets import Bucket, BucketBatchSampler, square_bucket
from lorapilot.data.captions import CaptionPolicy
from lorapilot.data.dataset import DatasetError, scan_datasets
from lorapilot.data.images import ImageError
from lorapilot.spec.model import BucketSpec, DatasetSpec
from lorapilot.testing.datasets import write_demo_images


def _spec(folder, **fields):
    """A dataset entry with small sides, so tiny test images get real buckets."""
    fields.setdefault("resolutions", [256])
    fields.setdefault("bucket", BucketSpec(min_resolution=64))
    return DatasetSpec(folder=str(folder), **fields)


def test_repeats_captions_and_kohya_counts(tmp_path):
    folder = tmp_path / "4_cat"
    paths = write_demo_images(folder, 3, size=(96, 64), caption="cat")
    plan = scan_datasets([_spec(folder, repeats=4, trigger_word="ohwx")], skip_bad_images=False)

    assert len(plan.items) == 12
    assert Counter(item.image for item in plan.items) == dict.fromkeys(paths, 4)
    assert [item.image for item in plan.items[::4]] == paths  # name order, every time
    first = plan.items[0]
    assert first.caption_raw == (paths[0].with_suffix(".txt")).read_text()
    assert first.policy == CaptionPolicy(trigger_word="ohwx")
    assert first.original_size == (64, 96)
    assert first.bucket == Bucket(320, 192)  # 3:2 at 256
    assert (first.is_reg, first.weight, first.resolution, first.flip) == (False, 1.0, 256, False)

    assert plan.dataset_dirs == {"4_cat": {"n_repeats": 4, "img_count": 3}}
    assert plan.reg_dataset_dirs == {}
    assert (plan.num_train_images, plan.num_reg_images) == (12, 0)
    assert sum(plan.tag_frequency["4_cat"].values()) == 3
    assert plan.bucket_counts == {Bucket(320, 192): 12}
    assert plan.describe_buckets() == ["bucket 320x192: 12 images"]
    assert plan.skipped == []
    assert scan_datasets([_spec(folder, repeats=4, trigger_word="ohwx")], skip_bad_images=False) == plan


def test_each_image_trains_once_per_resolution(tmp_path):
    write_demo_images(tmp_path / "2_shapes", 2, size=(64, 128))
    spec = _spec(tmp_path / "2_shapes", repeats=2, resolutions=[512, 256])
    plan = scan_datasets([spec], skip_bad_images=False)
    assert len(plan.items) == 2 * 2 * 2
    by_resolution = {item.resolution: item.bucket for item in plan.items}
    assert by_resolution == {256: Bucket(192, 320), 512: Bucket(320, 704)}
    assert plan.num_train_images == 8
    assert plan.dataset_dirs == {"2_shapes": {"n_repeats": 2, "img_count": 2}}
    assert plan.describe_buckets() == ["bucket 192x320: 4 images", "bucket 320x704: 4 images"]


def test_regularization_images_are_counted_apart(tmp_path):
    write_demo_images(tmp_path / "images" / "10_ohwx", 4, caption="ohwx person")
    write_demo_images(tmp_path / "reg" / "1_person", 6, caption=None)
    plan = scan_datasets(
        [
            _spec(tmp_path / "images" / "10_ohwx", repeats=10, flip=True),
            _spec(tmp_path / "reg" / "1_person", is_reg=True, class_tokens="person", weight=0.5),
        ],
        skip_bad_images=False,
    )
    reg = [item for item in plan.items if item.is_reg]
    assert len(reg) == 6 and len(plan.items) == 46
    assert all(item.dataset_index == 1 and item.weight == 0.5 and item.caption_raw is None for item in reg)
    assert reg[0].policy.class_tokens == "person"
    assert all(item.flip for item in plan.items if not item.is_reg)
    assert (plan.num_train_images, plan.num_reg_images) == (40, 6)
    assert plan.dataset_dirs == {"10_ohwx": {"n_repeats": 10, "img_count": 4}}
    assert plan.reg_dataset_dirs == {"1_person": {"n_repeats": 1, "img_count": 6}}
    assert plan.tag_frequency["1_person"] == {"person": 6}  # class tokens stand in for captions


def test_bad_image_stops_the_scan_naming_the_file(tmp_path, write_bad_files):
    folder = tmp_path / "1_mixed"
    write_demo_images(folder, 2)
    bad = write_bad_files(folder)
    with pytest.raises(ImageError) as caught:
        scan_datasets([_spec(folder)], skip_bad_images=False)
    assert caught.value.path in bad.values()
    assert caught.value.path.name in str(caught.value)


def test_bad_images_can_be_skipped_with_a_warning(tmp_path, write_bad_files, caplog):
    folder = tmp_path / "1_mixed"
    good = write_demo_images(folder, 2)
    bad = write_bad_files(folder)
    with caplog.at_level(logging.WARNING, logger="lorapilot.data.dataset"):
        plan = scan_datasets([_spec(folder)], skip_bad_images=True)
    assert sorted(item.image for item in plan.items) == good
    assert sorted(error.path for error in plan.skipped) == sorted(bad.values())
    for path in bad.values():
        assert path.name in caplog.text
    assert plan.dataset_dirs == {"1_mixed": {"n_repeats": 1, "img_count": 2}}


def test_header_only_scan_lets_truncated_data_through(tmp_path, write_bad_files):
    folder = tmp_path / "1_mixed"
    bad = write_bad_files(folder)
    plan = scan_datasets([_spec(folder)], skip_bad_images=True, verify_images=False)
    assert [item.image for item in plan.items] == [bad["truncated"]]
    assert sorted(error.path for error in plan.skipped) == sorted([bad["empty"], bad["text"]])


def test_folders_without_usable_images_are_errors_naming_them(tmp_path, write_bad_files):
    empty = tmp_path / "1_empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("captions only")
    with pytest.raises(DatasetError, match=r"1_empty.*no images"):
        scan_datasets([_spec(empty)], skip_bad_images=True)

    broken = tmp_path / "1_broken"
    write_bad_files(broken)
    with pytest.raises(DatasetError, match=r"1_broken.*no usable images.*all 3") as caught:
        scan_datasets([_spec(broken)], skip_bad_images=True)
    assert caught.value.folder == broken

    write_demo_images(tmp_path / "1_good", 1)
    with pytest.raises(DatasetError, match=r"does not exist.*datasets\[1\]\.folder"):
        scan_datasets([_spec(empty.parent / "1_good"), _spec(tmp_path / "typo")], skip_bad_images=True)


def test_hidden_and_non_image_files_are_ignored(tmp_path):
    folder = tmp_path / "1_clean"
    write_demo_images(folder, 2)
    (folder / "._0000.png").write_bytes(b"macOS resource fork")
    (folder / ".DS_Store").write_bytes(b"\0\0")
    (folder / "README.md").write_text("about this set")
    (folder / "sub").mkdir()
    write_demo_images(folder / "sub", 1)
    plan = scan_datasets([_spec(folder)], skip_bad_images=False)
    assert [item.image.name for item in plan.items] == ["0000.png", "0001.png"]


def test_photos_are_planned_upright(tmp_path, write_photo):
    folder = tmp_path / "1_photos"
    write_photo(folder / "cat_phone.jpg", "chelsea", orientation=6)
    write_photo(folder / "coffee.JPG", "coffee")
    spec = _spec(folder, resolutions=[512], bucket=BucketSpec(no_upscale=True))
    plan = scan_datasets([spec], skip_bad_images=False)
    sizes = {item.image.name: (item.original_size, item.bucket) for item in plan.items}
    assert sizes == {
        "cat_phone.jpg": ((451, 300), Bucket(256, 448)),  # (height, width): portrait after rotation
        "coffee.JPG": ((400, 600), Bucket(576, 384)),
    }


def test_without_bucketing_every_image_is_square(tmp_path):
    for n, size in enumerate([(64, 128), (128, 64), (80, 80)]):
        written = write_demo_images(tmp_path / "tmp", 1, size=size, seed=n)[0]
        (tmp_path / "1_sq").mkdir(exist_ok=True)
        shutil.move(written, tmp_path / "1_sq" / f"{n}.png")
    spec = _spec(tmp_path / "1_sq", resolutions=[256, 512], bucket=BucketSpec(enabled=False))
    plan = scan_datasets([spec], skip_bad_images=False)
    assert {(item.resolution, item.bucket) for item in plan.items} == {
        (256, square_bucket(256)),
        (512, square_bucket(512)),
    }


def test_plan_feeds_the_batch_sampler_with_single_bucket_batches(tmp_path):
    folder = tmp_path / "1_shapes"
    for n, size in enumerate([(96, 96), (64, 96), (96, 64), (48, 96), (128, 32)] * 2):
        written = write_demo_images(tmp_path / "tmp", 1, size=size, seed=n)[0]
        folder.mkdir(exist_ok=True)
        shutil.move(written, folder / f"{n:02d}.png")
    plan = scan_datasets([_spec(folder, resolutions=[512])], skip_bad_images=False)
    assert len(plan.bucket_counts) == 5 and set(plan.bucket_counts.values()) == {2}
    sampler = BucketBatchSampler([item.bucket for item in plan.items], batch_size=2, seed=0)
    for batch in sampler:
        assert len(batch) == 2
        assert len({plan.items[i].bucket for i in batch}) == 1
