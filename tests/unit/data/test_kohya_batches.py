"""sd-scripts' dataset semantics in the plan: per-dataset batch sizes and regularization balancing."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from lorapilot.data.buckets import BucketBatchSampler
from lorapilot.data.dataset import batch_sampler, scan_datasets
from lorapilot.spec.model import BucketSpec, DatasetSpec
from lorapilot.testing.datasets import write_demo_images


def _spec(folder, **fields):
    fields.setdefault("resolutions", [64])
    fields.setdefault("bucket", BucketSpec(enabled=False))
    return DatasetSpec(folder=str(folder), **fields)


def test_two_datasets_with_batch_sizes_2_and_3_give_batches_of_2_and_of_3(tmp_path):
    pairs = write_demo_images(tmp_path / "pairs", 6, size=(64, 64), seed=1)
    triples = write_demo_images(tmp_path / "triples", 6, size=(64, 64), seed=2)
    datasets = [_spec(tmp_path / "pairs", batch_size=2), _spec(tmp_path / "triples", batch_size=3)]
    plan = scan_datasets(datasets, skip_bad_images=False)
    sampler = batch_sampler(plan.items, datasets, batch_size=1, seed=0)

    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 + 2
    folders = [{plan.items[i].image.parent.name for i in batch} for batch in batches]
    assert all(len(f) == 1 for f in folders)  # a batch never mixes the two datasets' sizes
    sizes = Counter((f.pop(), len(b)) for f, b in zip(folders, batches, strict=True))
    assert sizes == {("pairs", 2): 3, ("triples", 3): 2}
    assert sorted(plan.items[i].image for b in batches for i in b) == sorted(pairs + triples)
    # batches of both datasets are shuffled together, not one dataset after the other
    orders = {tuple(len(b) for b in sampler.epoch_batches(epoch)) for epoch in range(8)}
    assert len(orders) > 1


def test_a_dataset_without_a_batch_size_takes_the_runs_and_shares_buckets_with_its_size(tmp_path):
    write_demo_images(tmp_path / "train", 4, size=(64, 64))
    write_demo_images(tmp_path / "reg", 4, size=(64, 64), seed=3)
    datasets = [_spec(tmp_path / "train", batch_size=4), _spec(tmp_path / "reg", is_reg=True)]
    plan = scan_datasets(datasets, skip_bad_images=False)
    batches = batch_sampler(plan.items, datasets, batch_size=4, seed=1).epoch_batches(0)
    # train and reg items of one batch size and bucket are cut into batches together, as in kohya
    assert sorted(len(b) for b in batches) == [4, 4]
    assert any(len({plan.items[i].is_reg for i in b}) == 2 for b in batches)


def test_per_item_batch_sizes_resume_and_refuse_other_sizes():
    keys, sizes = ["A"] * 5 + ["B"] * 4, [2] * 5 + [3] * 4
    running = BucketBatchSampler(keys, sizes, seed=4)
    epoch = running.epoch_batches(0)
    seen = [batch for _, batch in zip(range(2), running, strict=False)]
    resumed = BucketBatchSampler(keys, sizes, seed=4)
    resumed.load_state_dict(running.state_dict())
    assert seen + list(resumed) == epoch
    assert sorted(len(b) for b in epoch) == [1, 1, 2, 2, 3]
    with pytest.raises(ValueError, match=r"batch_size=\[2, 3\] but this run has 2"):
        BucketBatchSampler(keys, [2] * 9, seed=4).load_state_dict(running.state_dict())


def test_balanced_reg_images_are_repeated_to_the_training_count_and_metadata_keeps_the_folders(
    tmp_path, caplog
):
    write_demo_images(tmp_path / "train", 4, size=(64, 64))
    reg = write_demo_images(tmp_path / "reg", 2, size=(64, 64), seed=3)
    datasets = [_spec(tmp_path / "train", repeats=10), _spec(tmp_path / "reg", is_reg=True)]
    with caplog.at_level(logging.INFO):
        plan = scan_datasets(datasets, skip_bad_images=False, balance_reg=True)

    reg_items = Counter(item.image for item in plan.items if item.is_reg)
    assert reg_items == {reg[0]: 20, reg[1]: 20}  # 40 reg items per epoch for 4 × 10 train items
    assert sum(not item.is_reg for item in plan.items) == 40
    assert sum(plan.bucket_counts.values()) == 80
    assert (plan.num_train_images, plan.num_reg_images) == (40, 2)  # kohya's ss_num_* counts
    assert plan.reg_dataset_dirs == {"reg": {"n_repeats": 1, "img_count": 2}}
    assert "balanced to the 40 training items: 40 reg items instead of 2" in caplog.text

    unbalanced = scan_datasets(datasets, skip_bad_images=False)
    assert sum(item.is_reg for item in unbalanced.items) == 2


def test_more_reg_images_than_training_images_are_trimmed_in_name_order_as_kohya_does(tmp_path):
    write_demo_images(tmp_path / "train", 2, size=(64, 64))
    reg = write_demo_images(tmp_path / "reg", 5, size=(64, 64), seed=3)
    datasets = [_spec(tmp_path / "train", repeats=3), _spec(tmp_path / "reg", is_reg=True, repeats=2)]
    plan = scan_datasets(datasets, skip_bad_images=False, balance_reg=True)
    # 6 training items: reg images are taken with their 2 repeats until 6 are reached
    assert Counter(item.image for item in plan.items if item.is_reg) == {reg[0]: 2, reg[1]: 2, reg[2]: 2}
    assert plan.num_reg_images == 10


def test_uneven_balancing_gives_the_first_images_one_repeat_more(tmp_path):
    write_demo_images(tmp_path / "train", 7, size=(64, 64))
    reg = write_demo_images(tmp_path / "reg", 3, size=(64, 64), seed=3)
    datasets = [_spec(tmp_path / "train"), _spec(tmp_path / "reg", is_reg=True)]
    plan = scan_datasets(datasets, skip_bad_images=False, balance_reg=True)
    assert Counter(item.image for item in plan.items if item.is_reg) == {reg[0]: 3, reg[1]: 2, reg[2]: 2}
