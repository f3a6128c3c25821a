"""Captions reach the model the way kohya and ai-toolkit users expect."""

from __future__ import annotations

import logging
import random

import pytest

from lorapilot.data.captions import (
    CaptionPolicy,
    is_deterministic,
    policy_for,
    read_caption,
    render_caption,
    tag_frequency,
)
from lorapilot.spec.model import DatasetSpec

TAGS = "photo of ohwx, red hat, smiling, outdoors, blue sky, grass, sunny day"


def _render(raw, rng_seed=0, **policy):
    return render_caption(raw, CaptionPolicy(**policy), random.Random(rng_seed))


def test_read_caption_finds_the_same_stem_file(tmp_path):
    image = tmp_path / "0001.png"
    (tmp_path / "0001.txt").write_text("  a red circle \n")
    (tmp_path / "0001.caption").write_text("other extension")
    assert read_caption(image, ".txt") == "a red circle"
    assert read_caption(image, "caption") == "other extension"
    assert read_caption(tmp_path / "0002.png", ".txt") is None


def test_blank_caption_counts_as_missing_and_lines_are_joined(tmp_path):
    (tmp_path / "blank.txt").write_text(" \n\n")
    assert read_caption(tmp_path / "blank.png", ".txt") is None
    (tmp_path / "lines.txt").write_text("woman, smiling\r\n\r\nred hat\n")
    assert read_caption(tmp_path / "lines.png", ".txt") == "woman, smiling, red hat"
    (tmp_path / "bom.txt").write_bytes("\ufeffcafé au lait".encode())
    assert read_caption(tmp_path / "bom.png", ".txt") == "café au lait"


def test_non_utf8_caption_is_used_with_a_warning_naming_it(tmp_path, caplog):
    (tmp_path / "latin.txt").write_bytes("café, crème".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="lorapilot.data.captions"):
        caption = read_caption(tmp_path / "latin.png", ".txt")
    assert caption == "caf\ufffd, cr\ufffdme"
    assert "latin.txt" in caplog.text and "UTF-8" in caplog.text


def test_policy_for_takes_the_dataset_settings():
    spec = DatasetSpec(
        folder="/data/10_ohwx",
        trigger_word=" ohwx ",
        class_tokens="person",
        shuffle_caption=True,
        keep_tokens=2,
        caption_dropout=0.1,
    )
    assert policy_for(spec) == CaptionPolicy("ohwx", "person", True, 2, 0.1)
    assert policy_for(DatasetSpec(folder="/data/x", trigger_word="  ")).trigger_word is None


def test_trigger_word_is_prepended_once():
    assert _render("a red hat", trigger_word="ohwx") == "ohwx, a red hat"
    assert _render("photo of ohwx wearing a hat", trigger_word="ohwx") == "photo of ohwx wearing a hat"
    assert _render("Photo of OHWX", trigger_word="ohwx") == "Photo of OHWX"
    assert _render("ohwxman in a hat", trigger_word="ohwx") == "ohwx, ohwxman in a hat"  # whole words only
    assert _render("a red hat") == "a red hat"


def test_trigger_placeholder_is_filled_or_removed():
    assert _render("a photo of [trigger] at the beach", trigger_word="ohwx") == "a photo of ohwx at the beach"
    assert _render("[name], smiling", trigger_word="sks dog") == "sks dog, smiling"
    assert _render("[trigger], smiling, outdoors") == "smiling, outdoors"


def test_missing_caption_uses_class_tokens():
    assert _render(None, class_tokens="person") == "person"
    assert _render(None, class_tokens="person", trigger_word="ohwx") == "ohwx, person"
    assert _render(None, class_tokens="ohwx person", trigger_word="ohwx") == "ohwx person"
    assert _render(None, trigger_word="ohwx") == "ohwx"
    assert _render(None) == ""


def test_shuffle_keeps_the_leading_tags_and_is_reproducible():
    policy = CaptionPolicy(shuffle=True, keep_tokens=2)
    tags = TAGS.split(", ")
    outputs = {render_caption(TAGS, policy, random.Random(seed)) for seed in range(30)}
    assert len(outputs) > 10  # really shuffled
    for caption in outputs:
        shuffled = caption.split(", ")
        assert shuffled[:2] == tags[:2]
        assert sorted(shuffled) == sorted(tags)
    assert render_caption(TAGS, policy, random.Random(7)) == render_caption(TAGS, policy, random.Random(7))


def test_prepended_trigger_stays_first_and_counts_as_a_kept_tag():
    caption = "red hat, smiling, outdoors, blue sky"
    for seed in range(20):
        kept_none = _render(caption, seed, trigger_word="ohwx", shuffle=True, keep_tokens=0).split(", ")
        assert kept_none[0] == "ohwx"
        kept_two = _render(caption, seed, trigger_word="ohwx", shuffle=True, keep_tokens=2).split(", ")
        assert kept_two[:2] == ["ohwx", "red hat"]
        assert sorted(kept_two) == sorted(["ohwx", *caption.split(", ")])


def test_caption_dropout_happens_at_the_configured_rate():
    policy = CaptionPolicy(trigger_word="ohwx", dropout=0.3)
    rng = random.Random(1234)
    captions = [render_caption("a red hat", policy, rng) for _ in range(4000)]
    dropped = captions.count("") / len(captions)
    assert 0.27 < dropped < 0.33
    assert set(captions) == {"", "ohwx, a red hat"}
    assert _render("a red hat", dropout=1.0) == ""


def test_deterministic_policies_allow_caching_text_embeddings():
    assert is_deterministic(CaptionPolicy(trigger_word="ohwx", keep_tokens=3))
    assert not is_deterministic(CaptionPolicy(shuffle=True))
    assert not is_deterministic(CaptionPolicy(dropout=0.05))


@pytest.mark.parametrize("seed", [0, 1])
def test_same_rng_state_gives_the_same_caption_sequence(seed):
    policy = CaptionPolicy(trigger_word="ohwx", shuffle=True, keep_tokens=1, dropout=0.2)
    first, second = random.Random(seed), random.Random(seed)
    assert [render_caption(TAGS, policy, first) for _ in range(50)] == [
        render_caption(TAGS, policy, second) for _ in range(50)
    ]


def test_tag_frequency_counts_like_kohya():
    frequency = tag_frequency(["1girl, Red Hat, smiling", "1girl,red hat ,  , outdoors", ""])
    assert frequency == {"1girl": 2, "red hat": 2, "smiling": 1, "outdoors": 1}
