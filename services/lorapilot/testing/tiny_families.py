"""Which tiny parts make up each family's pipeline, in a registry keyed by family name.

Widths are chosen so the real cross-component rules hold: SDXL's cross-attention width is the two
CLIP widths added, SD3's T5 is wider than both CLIPs together, pooled sizes match the embedding
inputs. The two CLIPs of SDXL/SD3 differ in width (32 and 64), as the real 768 and 1280 do: diffusers'
single-file loader tells them apart by width alone.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from lorapilot.families import FLUX_DEV, FLUX_SCHNELL, SD2, SD3, SD15, SD35_LARGE, SD35_MEDIUM, SDXL
from lorapilot.testing import tiny_components as parts
from lorapilot.testing.tiny_tokenizers import clip_tokenizer, t5_tokenizer

CLIP_L = 32  # width of the CLIP-L stand-in
CLIP_G = 64  # width of the OpenCLIP-G stand-in
CLIP_G_PROJECTION = 48  # its pooled projection; unlike the real one, not square, so transposes show
T5_WIDTH = 128  # >= CLIP_L + CLIP_G: SD3 zero-pads the CLIP embeddings up to the T5 width


@dataclass(frozen=True)
class TinyFamily:
    """A family's pipeline class name and the recipe for its components."""

    name: str
    pipeline_class: str
    components: Callable[[int], dict[str, Any]]


FAMILIES: dict[str, TinyFamily] = {}


def register(name: str, pipeline_class: str) -> Callable[[Callable[[int], dict[str, Any]]], Any]:
    """Add a family's component recipe to the registry under `name`."""

    def decorate(recipe: Callable[[int], dict[str, Any]]) -> Callable[[int], dict[str, Any]]:
        FAMILIES[name] = TinyFamily(name, pipeline_class, recipe)
        return recipe

    return decorate


def part_seed(seed: int, part: str) -> int:
    """Seed for one component, so each part's weights depend on the family seed and its own name only."""
    return (seed * 1_000_003 + zlib.crc32(part.encode())) % 2**63


def _sd_components(seed: int, *, v2: bool) -> dict[str, Any]:
    seed_of = partial(part_seed, seed)
    act = "gelu" if v2 else "quick_gelu"
    return {
        "vae": parts.vae(seed_of("vae"), latent_channels=4, scaling_factor=0.18215),
        "text_encoder": parts.clip_text_encoder(seed_of("text_encoder"), hidden=CLIP_L, act=act),
        "tokenizer": clip_tokenizer(),
        "unet": parts.sd_unet(seed_of("unet"), cross_attention_dim=CLIP_L, v2=v2),
        "scheduler": parts.sd_scheduler("v_prediction" if v2 else "epsilon"),
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


@register(SD15.id, "StableDiffusionPipeline")
def sd15(seed: int) -> dict[str, Any]:
    """Stable Diffusion 1.5: one CLIP-L, epsilon prediction."""
    return _sd_components(seed, v2=False)


@register(SD2.id, "StableDiffusionPipeline")
def sd2(seed: int) -> dict[str, Any]:
    """Stable Diffusion 2.x 768-v: OpenCLIP-style (GELU) text encoder, linear proj_in, v-prediction."""
    return _sd_components(seed, v2=True)


@register(SDXL.id, "StableDiffusionXLPipeline")
def sdxl(seed: int) -> dict[str, Any]:
    """SDXL base: CLIP-L plus a projected OpenCLIP-G, text_time micro-conditioning."""
    seed_of = partial(part_seed, seed)
    return {
        "vae": parts.vae(seed_of("vae"), latent_channels=4, scaling_factor=0.13025),
        "text_encoder": parts.clip_text_encoder(seed_of("text_encoder"), hidden=CLIP_L),
        "text_encoder_2": parts.clip_text_encoder(
            seed_of("text_encoder_2"), hidden=CLIP_G, projection=CLIP_G_PROJECTION, act="gelu"
        ),
        "tokenizer": clip_tokenizer(),
        "tokenizer_2": clip_tokenizer(pad_token="!"),
        "unet": parts.sdxl_unet(
            seed_of("unet"), cross_attention_dim=CLIP_L + CLIP_G, pooled_dim=CLIP_G_PROJECTION
        ),
        "scheduler": parts.sd_scheduler(),
    }


@register(SD3.id, "StableDiffusion3Pipeline")
def sd3(seed: int) -> dict[str, Any]:
    """SD3 medium: two projected CLIPs and a T5 feeding an MMDiT over 16-channel latents."""
    return _sd3_components(seed)


@register(SD35_LARGE.id, "StableDiffusion3Pipeline")
def sd35_large(seed: int) -> dict[str, Any]:
    """SD3.5 Large: SD3 with query-key RMS norms in the MMDiT's attention."""
    return _sd3_components(seed, qk_norm="rms_norm")


@register(SD35_MEDIUM.id, "StableDiffusion3Pipeline")
def sd35_medium(seed: int) -> dict[str, Any]:
    """SD3.5 Medium: query-key norms and MMDiT-X's second attention in the first block."""
    return _sd3_components(seed, qk_norm="rms_norm", dual_attention_layers=(0,))


def _sd3_components(seed: int, **mmdit: Any) -> dict[str, Any]:
    seed_of = partial(part_seed, seed)
    t5 = t5_tokenizer()
    return {
        "vae": parts.vae(seed_of("vae"), latent_channels=16, scaling_factor=1.5305, shift_factor=0.0609),
        "text_encoder": parts.clip_text_encoder(seed_of("text_encoder"), hidden=CLIP_L, projection=CLIP_L),
        "text_encoder_2": parts.clip_text_encoder(
            seed_of("text_encoder_2"), hidden=CLIP_G, projection=CLIP_G_PROJECTION, act="gelu"
        ),
        "text_encoder_3": parts.t5_text_encoder(
            seed_of("text_encoder_3"), width=T5_WIDTH, vocab_size=len(t5)
        ),
        "tokenizer": clip_tokenizer(),
        "tokenizer_2": clip_tokenizer(pad_token="!"),
        "tokenizer_3": t5,
        "transformer": parts.sd3_transformer(
            seed_of("transformer"),
            joint_attention_dim=T5_WIDTH,
            pooled_dim=CLIP_L + CLIP_G_PROJECTION,
            **mmdit,
        ),
        "scheduler": parts.flow_scheduler(shift=3.0),
    }


def _flux_components(seed: int, *, dev: bool) -> dict[str, Any]:
    seed_of = partial(part_seed, seed)
    t5 = t5_tokenizer()
    return {
        "vae": parts.vae(seed_of("vae"), latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159),
        "text_encoder": parts.clip_text_encoder(seed_of("text_encoder"), hidden=CLIP_L),
        "text_encoder_2": parts.t5_text_encoder(
            seed_of("text_encoder_2"), width=T5_WIDTH, vocab_size=len(t5)
        ),
        "tokenizer": clip_tokenizer(),
        "tokenizer_2": t5,
        "transformer": parts.flux_transformer(
            seed_of("transformer"), joint_attention_dim=T5_WIDTH, pooled_dim=CLIP_L, guidance=dev
        ),
        # as the real configs: dev shifts by resolution, schnell (4-step distilled) not at all
        "scheduler": parts.flow_scheduler(shift=3.0 if dev else 1.0, dynamic=dev),
    }


@register(FLUX_DEV.id, "FluxPipeline")
def flux_dev(seed: int) -> dict[str, Any]:
    """FLUX.1-dev: guidance-distilled, so the transformer embeds the guidance scale."""
    return _flux_components(seed, dev=True)


@register(FLUX_SCHNELL.id, "FluxPipeline")
def flux_schnell(seed: int) -> dict[str, Any]:
    """FLUX.1-schnell: timestep-distilled, no guidance embedding, no resolution shift."""
    return _flux_components(seed, dev=False)
