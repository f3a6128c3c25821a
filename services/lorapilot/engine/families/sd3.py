"""Stable Diffusion 3 / 3.5: an MMDiT over 16-channel latents, two CLIPs (pooled) + T5 text, flow matching.

SD3.5 Large adds query-key norms, SD3.5 Medium also a second attention in its first blocks (MMDiT-X);
both train as SD3 does, so one adapter serves the three registry entries.

Defaults follow the SD3 paper's high-resolution recipe as diffusers' SD3 LoRA script implements it:
logit-normal σ with the scheduler's shift of 3.0, attention layers as LoRA targets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

from lorapilot.engine.families import split_files
from lorapilot.engine.families.base import (
    Conditioning,
    ImageGeometry,
    LoadedModel,
    ModelFacts,
    register_adapter,
)
from lorapilot.engine.families.flow_transformer import FlowTransformerFamily
from lorapilot.families import SD3, SD35_LARGE, SD35_MEDIUM
from lorapilot.spec.model import ModelSpec

log = logging.getLogger(__name__)

T5_TOKENS = 256  # diffusers' SD3 default for training and sampling
# The released SD3/SD3.5 VAE's latent normalisation and scheduler (stabilityai's configs).
VAE_FACTORS = {"scaling_factor": 1.5305, "shift_factor": 0.0609}
SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0}
_DIFFUSION_MODEL = "model.diffusion_model."


def mmdit_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """`SD3Transformer2DModel` arguments read off a Stability-layout MMDiT's shapes.

    Heads are not in the weights; MMDiTs have as many as joint blocks (SD3's depth rule: 24 for
    medium, 38 for SD3.5 large), each head the width divided by them. The sample size only sets the
    pipeline's default resolution: 128 latents (1024 px), as released.
    """
    depth = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("joint_blocks."))
    inner, text_width = state["context_embedder.weight"].shape
    patch = state["x_embedder.proj.weight"]
    patch_size = patch.shape[-1]
    return {
        "sample_size": 128,
        "patch_size": patch_size,
        "in_channels": patch.shape[1],
        "num_layers": depth,
        "attention_head_dim": inner // depth,
        "num_attention_heads": depth,
        "joint_attention_dim": text_width,
        "caption_projection_dim": inner,
        "pooled_projection_dim": state["y_embedder.mlp.0.weight"].shape[1],
        "out_channels": state["final_layer.linear.weight"].shape[0] // patch_size**2,
        "pos_embed_max_size": math.isqrt(state["pos_embed"].shape[1]),
        "dual_attention_layers": tuple(
            sorted({int(k.split(".")[1]) for k in state if ".x_block.attn2." in k})
        ),
        "qk_norm": "rms_norm" if any(".attn.ln_q." in key for key in state) else None,
    }


def transformer_from_file(path: Path, dtype: torch.dtype, field: str = "path") -> SD3Transformer2DModel:
    """An SD3/SD3.5 MMDiT from a Stability-layout file (a models/unet file or a full checkpoint)."""
    source = split_files.denoiser_part(path, _DIFFUSION_MODEL, field)
    state = split_files.read_state(source)
    config = mmdit_config(state)  # before converting: the converter empties `state`
    converted = convert_sd3_transformer_checkpoint_to_diffusers(state)
    return split_files.diffusers_model(SD3Transformer2DModel, config, converted, dtype, source)


def split_file_components(spec: ModelSpec, dtype: torch.dtype, config_cache: Path) -> dict[str, Any]:
    """An SD3/SD3.5 pipeline's components from a Stability-layout file: the MMDiT, and the text
    encoders and VAE it bundles (all-in-one checkpoints) or the clip_l, clip_g, t5xxl, vae files."""
    transformer = transformer_from_file(Path(spec.path), dtype)
    clip_l = split_files.part(spec, "clip_l", "tokenizer")
    clip_g = split_files.part(spec, "clip_g", "tokenizer_2")
    t5 = split_files.part(spec, "t5xxl", "tokenizer_3")
    encoders = {
        "text_encoder": split_files.clip_text_encoder(clip_l, dtype, act="quick_gelu", projection=True),
        "text_encoder_2": split_files.clip_text_encoder(clip_g, dtype, act="gelu", projection=True),
        "text_encoder_3": split_files.t5_text_encoder(t5, dtype),
    }
    vocab = {name: model.config.vocab_size for name, model in encoders.items()}
    return {
        "transformer": transformer,
        **encoders,
        "tokenizer": split_files.clip_tokenizer(clip_l, vocab["text_encoder"], config_cache, "<|endoftext|>"),
        "tokenizer_2": split_files.clip_tokenizer(clip_g, vocab["text_encoder_2"], config_cache, "!"),
        "tokenizer_3": split_files.t5_tokenizer(t5, vocab["text_encoder_3"]),
        "vae": split_files.vae(split_files.part(spec, "vae"), dtype, **VAE_FACTORS),
        "scheduler": FlowMatchEulerDiscreteScheduler(**SCHEDULER),
    }


@register_adapter(SD3, SD35_LARGE, SD35_MEDIUM)
class StableDiffusion3(FlowTransformerFamily):
    pipeline_class = StableDiffusion3Pipeline
    transformer_class = SD3Transformer2DModel
    default_sampling: ClassVar[str] = "shift"

    def split_file_components(
        self, spec: ModelSpec, dtype: torch.dtype, config_cache: Path
    ) -> dict[str, Any]:
        return split_file_components(spec, dtype, config_cache)

    def transformer_from_file(self, path: Path, dtype: torch.dtype) -> torch.nn.Module:
        return transformer_from_file(path, dtype, "transformer")

    def load(self, spec: ModelSpec, dtype: torch.dtype, config_cache: Path) -> LoadedModel:
        names = (
            "vae",
            "text_encoder",
            "text_encoder_2",
            "text_encoder_3",
            "tokenizer",
            "tokenizer_2",
            "tokenizer_3",
            "transformer",
            "scheduler",
        )
        components = self.load_components(spec, dtype, config_cache, names)
        components |= {"image_encoder": None, "feature_extractor": None}
        return LoadedModel(components, self.pipeline_class, ModelFacts("flow", self.family.kohya))

    def text_encoder_names(self) -> tuple[str, ...]:
        return ("text_encoder", "text_encoder_2", "text_encoder_3")

    def encode_prompts(
        self, model: LoadedModel, prompts: Sequence[str], clip_skip: int | None
    ) -> list[Conditioning]:
        pipe = self.pipeline_class(**model.components)
        embeds, _, pooled, _ = pipe.encode_prompt(
            list(prompts),
            None,
            None,
            device=model["text_encoder"].device,
            do_classifier_free_guidance=False,
            clip_skip=clip_skip if clip_skip and clip_skip > 1 else None,
            max_sequence_length=T5_TOKENS,
        )
        return [{"prompt_embeds": e, "pooled_prompt_embeds": p} for e, p in zip(embeds, pooled, strict=True)]

    def predict(
        self,
        model: LoadedModel,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        conditioning: Conditioning,
        geometry: Sequence[ImageGeometry],
    ) -> torch.Tensor:
        return model["transformer"](
            hidden_states=noisy_latents,
            timestep=timesteps,
            encoder_hidden_states=conditioning["prompt_embeds"],
            pooled_projections=conditioning["pooled_prompt_embeds"],
            return_dict=False,
        )[0]
