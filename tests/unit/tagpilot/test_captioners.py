"""Captioner choice, discovery, the WD14 tagger on a tiny ONNX model, and release when idle."""

from __future__ import annotations

import time

import pytest
from PIL import Image

from lorapilot.tagpilot.autocaption import CaptionerCache
from lorapilot.tagpilot.captioners import BACKENDS, choice_from_json, discover
from lorapilot.tagpilot.captioners.base import (
    BACKEND_OPTIONS,
    CaptionerChoice,
    CaptionerError,
    register_backend,
)
from lorapilot.tagpilot.captioners.wd14 import Wd14Tagger
from lorapilot.testing.tiny_captioners import WD14_GENERAL_TAGS, build_tiny_wd14


def test_choices_are_checked_by_backend_and_option():
    choice = choice_from_json({"backend": "wd14", "source": "tagger", "general_threshold": 0.5})
    assert choice.label == "wd14:tagger" and choice.option("general_threshold") == 0.5
    with pytest.raises(CaptionerError, match="unknown option"):
        choice_from_json({"backend": "wd14", "source": "t", "threshold": 1})
    with pytest.raises(CaptionerError, match="source"):
        choice_from_json({"backend": "blip"})
    assert {"blip", "vlm", "wd14", "openai"} <= set(BACKENDS)


def test_model_folders_are_discovered_with_their_backend(workspace):
    folder = workspace.model_dir("captioners")
    build_tiny_wd14(folder / "tagger")
    (folder / "blip-large").mkdir()
    (folder / "blip-large" / "config.json").write_text('{"model_type": "blip"}')
    (folder / "florence").mkdir()
    (folder / "florence" / "config.json").write_text('{"model_type": "florence2"}')
    (folder / "empty").mkdir()
    assert [(m["name"], m["backend"]) for m in discover(workspace)] == [
        ("blip-large", "blip"),
        ("florence", "vlm"),
        ("tagger", "wd14"),
    ]


def test_the_wd14_tagger_returns_general_tags_without_ratings(tmp_path):
    tagger = Wd14Tagger(build_tiny_wd14(tmp_path / "tagger"))
    captions = tagger.caption([Image.new("RGB", (50, 90), (200, 30, 30)), Image.new("RGB", (64, 64))])
    readable = {tag.replace("_", " ") for tag in WD14_GENERAL_TAGS}
    for caption in captions:
        tags = caption.split(", ")
        assert tags[0] == "photo" and set(tags) <= readable, caption
    with pytest.raises(CaptionerError, match=r"model\.onnx and selected_tags\.csv"):
        Wd14Tagger(tmp_path)


class _Counting:
    style = "tags"
    closed = 0

    def caption(self, images):
        return ["x"] * len(images)

    def close(self):
        type(self).closed += 1


@pytest.fixture
def counting_backend():
    register_backend("counting")(lambda choice, workspace: _Counting())
    yield CaptionerChoice("counting", "here")
    BACKENDS.pop("counting")
    BACKEND_OPTIONS.pop("counting")


def test_the_cache_keeps_one_model_and_releases_it_when_idle(workspace, counting_backend):
    cache = CaptionerCache(workspace, idle_s=0.3)
    first = cache.acquire(counting_backend)
    cache.done()
    assert cache.acquire(counting_backend) is first  # kept loaded between jobs
    time.sleep(0.5)
    assert cache.release_if_idle() is False  # in use: never released under a running job
    cache.done()
    deadline = time.monotonic() + 5
    while cache.status()["loaded"] is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _Counting.closed == 1
