"""Encoding a run's images and captions once, through the content-addressed caches.

Each distinct (image bytes, bucket, flip) is VAE-encoded once per cache lifetime, not once per
step, epoch or run; frozen text encoders run once per distinct caption. The loop then trains on
tensors only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from lorapilot.data.buckets import fit_to_bucket
from lorapilot.data.dataset import TrainItem
from lorapilot.data.images import load_image
from lorapilot.data.tensor_cache import TensorCache, content_key, file_digest, tensors_digest
from lorapilot.engine.families.base import Conditioning, FamilyAdapter, ImageGeometry, LoadedModel

log = logging.getLogger(__name__)
TEXT_BATCH = 16


@dataclass(frozen=True)
class EncodedImage:
    latents: torch.Tensor  # (C, h, w) on the CPU, cache dtype
    geometry: ImageGeometry


@dataclass
class PreparedItem:
    item: TrainItem
    variants: dict[bool, EncodedImage]  # keyed by "flipped"


def encoder_id(adapter: FamilyAdapter, model: LoadedModel, components: Iterable[str], *extra: object) -> str:
    parts = [tensors_digest(adapter.identity_parts(model, name)) for name in components]
    return content_key(type(adapter).__name__, *parts, *map(str, extra))


def prepare_latents(
    items: Sequence[TrainItem], adapter: FamilyAdapter, model: LoadedModel, cache: TensorCache, *, show: bool
) -> tuple[list[PreparedItem], int]:
    """Latents for every item (both flips where flipping is on); returns them and the encode count."""
    vae_id = encoder_id(adapter, model, ["vae"])
    digests: dict[Path, str] = {}
    encoded: dict[tuple[Path, int, int, bool], EncodedImage] = {}
    encodes = 0
    prepared = []
    bar = tqdm(items, desc="caching latents", unit="img", disable=None if show else True, leave=False)
    for item in bar:
        variants = {}
        for flipped in (False, True) if item.flip else (False,):
            slot = (item.image, item.bucket.width, item.bucket.height, flipped)
            if slot not in encoded:
                digest = digests.setdefault(item.image, file_digest(item.image))
                key = content_key("latent", digest, item.bucket.width, item.bucket.height, flipped, vae_id)
                entry = cache.get(key)
                if entry is None:
                    entry = cache.put(key, _encode(item, flipped, adapter, model))
                    encodes += 1
                encoded[slot] = _from_entry(entry, item)
            variants[flipped] = encoded[slot]
        prepared.append(PreparedItem(item, variants))
    log.info("latents: %d images encoded, %d taken from the cache", encodes, len(encoded) - encodes)
    return prepared, encodes


@torch.no_grad()
def _encode(
    item: TrainItem, flipped: bool, adapter: FamilyAdapter, model: LoadedModel
) -> dict[str, torch.Tensor]:
    fitted = fit_to_bucket(load_image(item.image), item.bucket, flip=flipped)
    latents = adapter.encode_images(model, fitted.pixels.unsqueeze(0))[0]
    geometry = torch.tensor([*fitted.original_size, *fitted.crop_top_left], dtype=torch.float32)
    return {"latents": latents.float(), "geometry": geometry}


def _from_entry(entry: dict[str, torch.Tensor], item: TrainItem) -> EncodedImage:
    oh, ow, top, left = (int(v) for v in entry["geometry"].tolist())
    target = (item.bucket.height, item.bucket.width)
    return EncodedImage(entry["latents"], ImageGeometry((oh, ow), (top, left), target))


@torch.no_grad()
def prepare_text(
    prompts: Iterable[str],
    adapter: FamilyAdapter,
    model: LoadedModel,
    cache: TensorCache,
    clip_skip: int | None,
) -> tuple[dict[str, Conditioning], int]:
    """Encoder outputs for each distinct prompt through the text cache, and how many were encoded."""
    te_id = encoder_id(adapter, model, adapter.text_encoder_names(), clip_skip)
    result: dict[str, Conditioning] = {}
    missing: list[str] = []
    for prompt in sorted(set(prompts)):
        entry = cache.get(content_key("text", prompt, te_id))
        if entry is None:
            missing.append(prompt)
        else:
            result[prompt] = entry
    for start in range(0, len(missing), TEXT_BATCH):
        chunk = missing[start : start + TEXT_BATCH]
        for prompt, cond in zip(chunk, adapter.encode_prompts(model, chunk, clip_skip), strict=True):
            result[prompt] = cache.put(content_key("text", prompt, te_id), cond)
    log.info("text: %d captions encoded, %d taken from the cache", len(missing), len(result) - len(missing))
    return result, len(missing)
