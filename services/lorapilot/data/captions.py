"""Captions: the text file beside each image, and the prompt a training step actually uses.

Conventions follow the trainers users come from: kohya's same-stem caption files, class tokens
for images without one, shuffled comma-separated tags with `keep_tokens` held in front, caption
dropout and `ss_tag_frequency`; ai-toolkit's `[trigger]` placeholder.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lorapilot.spec.model import DatasetSpec

logger = logging.getLogger(__name__)

# ai-toolkit writes the trigger word into captions as [trigger] (older configs: [name]).
_PLACEHOLDER = re.compile(r"\[(?:trigger|name)\]", re.IGNORECASE)


@dataclass(frozen=True)
class CaptionPolicy:
    """How one dataset's raw captions become training prompts."""

    trigger_word: str | None = None
    class_tokens: str | None = None
    shuffle: bool = False
    keep_tokens: int = 0
    dropout: float = 0.0


def policy_for(dataset: DatasetSpec) -> CaptionPolicy:
    """The caption settings of one dataset entry of a TrainSpec."""
    return CaptionPolicy(
        trigger_word=(dataset.trigger_word or "").strip() or None,
        class_tokens=(dataset.class_tokens or "").strip() or None,
        shuffle=dataset.shuffle_caption,
        keep_tokens=dataset.keep_tokens,
        dropout=dataset.caption_dropout,
    )


def read_caption(image: Path, extension: str) -> str | None:
    """The caption beside `image` (same stem), or None when there is no file or it is blank.

    Lines are joined with ", " (as ai-toolkit does) so nothing a user wrote is silently dropped.
    A file that is not UTF-8 is still used, with a warning naming it.
    """
    path = Path(image).with_suffix(extension if extension.startswith(".") else "." + extension)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        text = data.decode("utf-8-sig")  # -sig: editors on Windows start files with a BOM
    except UnicodeDecodeError:
        logger.warning("caption %s is not UTF-8; unreadable bytes became U+FFFD. Re-save it as UTF-8.", path)
        text = data.decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return ", ".join(lines) or None


def render_caption(raw: str | None, policy: CaptionPolicy, rng: random.Random) -> str:
    """The prompt for one training step; the same rng state always gives the same prompt.

    Order: dropout (→ ""), class tokens for a missing caption, trigger word, tag shuffle.
    When the trigger word is prepended here it stays first and counts as one of the kept tags
    (kohya counts a caption prefix among `keep_tokens` the same way); with `keep_tokens` 0 it
    is still kept, because a shuffled-away trigger would not be learnt as the trigger.
    """
    if policy.dropout > 0 and rng.random() < policy.dropout:
        return ""
    text = raw if raw is not None else (policy.class_tokens or "")
    text, prepended = _with_trigger(text, policy.trigger_word)
    if policy.shuffle:
        keep = max(policy.keep_tokens, 1) if prepended else policy.keep_tokens
        tags = _tags(text)
        flexible = tags[keep:]
        rng.shuffle(flexible)
        text = ", ".join(tags[:keep] + flexible)
    return text


def is_deterministic(policy: CaptionPolicy) -> bool:
    """True when every step sees the same prompt for an image, so text embeddings can be cached."""
    return not policy.shuffle and policy.dropout == 0


def tag_frequency(captions: Iterable[str]) -> dict[str, int]:
    """How often each tag occurs, as kohya's `ss_tag_frequency` counts it (comma-split, lower case)."""
    counts: dict[str, int] = {}
    for caption in captions:
        for tag in _tags(caption.lower()):
            counts[tag] = counts.get(tag, 0) + 1
    return counts


def _with_trigger(text: str, trigger: str | None) -> tuple[str, bool]:
    """Put the trigger word in: fill `[trigger]`, else prepend it unless the caption has it."""
    if _PLACEHOLDER.search(text):
        filled = _PLACEHOLDER.sub(trigger or "", text)
        return (filled if trigger else ", ".join(_tags(filled))), False  # tidy a removed placeholder
    if not trigger or re.search(rf"(?<!\w){re.escape(trigger)}(?!\w)", text, re.IGNORECASE):
        return text, False
    return (f"{trigger}, {text}" if text else trigger), True


def _tags(caption: str) -> list[str]:
    return [tag.strip() for tag in caption.split(",") if tag.strip()]
