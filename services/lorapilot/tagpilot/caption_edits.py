"""Bulk caption edits: trigger word, prefix/suffix, find/replace, remove a tag, tag frequency.

Captions come in two styles: tag lists (`1girl, red hair, smiling`, WD14's and booru style) and
sentences (BLIP/Florence style). Joining text follows the style: ", " between tags, a sentence
break between sentences; the trigger word always leads, comma-separated, as kohya users write it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from lorapilot.data.captions import tag_frequency
from lorapilot.tagpilot.errors import TagPilotError
from lorapilot.tagpilot.store import Dataset

MAX_TEXT = 500


def split_tags(caption: str) -> list[str]:
    return [tag.strip() for tag in caption.split(",") if tag.strip()]


def has_word(caption: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", caption, re.IGNORECASE) is not None


def with_trigger(caption: str, word: str) -> str:
    if not word or has_word(caption, word):
        return caption
    return f"{word}, {caption}" if caption else word


def with_prefix(caption: str, text: str, style: str) -> str:
    if not text or caption.startswith(text):
        return caption
    if not caption:
        return text
    return f"{text}, {caption}" if style == "tags" else f"{text} {caption}"


def with_suffix(caption: str, text: str, style: str) -> str:
    if not text or caption.endswith(text):
        return caption
    if not caption:
        return text
    return f"{caption}, {text}" if style == "tags" else f"{caption} {text}"


def without_tag(caption: str, tag: str) -> str:
    target = tag.strip().lower()
    return ", ".join(t for t in split_tags(caption) if t.lower() != target)


def merge_caption(old: str, new: str, style: str) -> str:
    """`old` with `new` appended: tags not already there, or the new sentence after the old."""
    if not old:
        return new
    if not new:
        return old
    if style == "tags":
        seen = {tag.lower() for tag in split_tags(old)}
        extra = [tag for tag in split_tags(new) if tag.lower() not in seen]
        return ", ".join([*split_tags(old), *extra])
    joiner = " " if old.rstrip().endswith((".", "!", "?")) else ". "
    return old.rstrip() + joiner + new


def _text(body: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise TagPilotError(f"'{key}' must be text of at most {MAX_TEXT} characters")
    if required and not value.strip():
        raise TagPilotError(f"'{key}' is required for this operation")
    return value.strip() if key != "replace" else value


def bulk_edit(dataset: Dataset, body: dict[str, Any]) -> dict[str, Any]:
    """Apply one operation to every image (or `images`, a list of names); returns counts."""
    style = dataset.settings()["caption_style"]
    op = body.get("op")
    edit: Callable[[str], str]
    if op == "trigger":
        word = _text(body, "word")
        edit = lambda caption: with_trigger(caption, word)  # noqa: E731
    elif op == "prefix":
        text = _text(body, "text")
        edit = lambda caption: with_prefix(caption, text, style)  # noqa: E731
    elif op == "suffix":
        text = _text(body, "text")
        edit = lambda caption: with_suffix(caption, text, style)  # noqa: E731
    elif op == "replace":
        find, replacement = _text(body, "find"), _text(body, "replace", required=False)
        edit = lambda caption: caption.replace(find, replacement)  # noqa: E731
    elif op == "remove_tag":
        tag = _text(body, "tag")
        edit = lambda caption: without_tag(caption, tag)  # noqa: E731
    else:
        raise TagPilotError(f"unknown op {op!r}; use trigger, prefix, suffix, replace or remove_tag")
    changed = 0
    with dataset.lock:
        for name in _chosen(dataset, body.get("images")):
            before = dataset.caption(name)
            after = edit(before)
            if after != before:
                dataset.set_caption(name, after)
                changed += 1
        if op == "trigger":
            dataset.update_settings({"trigger_word": body["word"].strip()})
    return {"op": op, "changed": changed}


def _chosen(dataset: Dataset, images: Iterable[str] | None) -> list[str]:
    names = [record.name for record in dataset.records()]
    if images is None:
        return names
    if not isinstance(images, list) or not all(isinstance(name, str) for name in images):
        raise TagPilotError("'images' must be a list of image names")
    unknown = sorted(set(images) - set(names))
    if unknown:
        raise TagPilotError(f"no such images in {dataset.name!r}: {', '.join(unknown[:5])}")
    return [name for name in names if name in set(images)]


def frequency_table(dataset: Dataset) -> list[dict[str, Any]]:
    """Every tag with how often it occurs (as kohya's ss_tag_frequency counts), most frequent first."""
    counts = tag_frequency(caption for caption in dataset.captions().values() if caption)
    return [
        {"tag": tag, "count": count} for tag, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
