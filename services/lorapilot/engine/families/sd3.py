"""Stable Diffusion 3 / 3.5: an MMDiT over 16-channel latents, two CLIPs (pooled) + T5 text, flow matching.

Defaults follow the SD3 paper's high-resolution recipe as diffusers' SD3 LoRA script implements it:
logit-normal σ with the scheduler's shift of 3.0, attention layers as LoRA targets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

from lorapilot.engine.families.base import (
    Conditioning,
    ImageGeometry,
    LoadedModel,
    ModelFacts,
    register_adapter,
)
from lorapilot.engine.families.flow_transformer import FlowTransformerFamily
from lorapilot.families import SD3
from lorapilot.spec.model import ModelSpec

log = logging.getLogger(__name__)

T5_TOKENS = 256  # diffusers' SD3 default for training and sampling


@register_adapter(SD3)
class StableDiffusion3(FlowTransformerFamily):
    pipeline_class = StableDiffusion3Pipeline
    transformer_class = SD3Transformer2DModel
    default_sampling: ClassVar[str] = "shift"

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
