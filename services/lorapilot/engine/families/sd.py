"""Stable Diffusion 1.x / 2.x: one UNet, one CLIP text encoder, epsilon or v-prediction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from diffusers import StableDiffusionPipeline

from lorapilot.engine.families.base import (
    Conditioning,
    ImageGeometry,
    LoadedModel,
    LoraSite,
    ModelFamily,
    register_family,
)
from lorapilot.engine.families.loading import load_pipeline, prediction_type
from lorapilot.spec.model import ModelSpec

UNET_ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
UNET_CONV = ("conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv")
# All four projections: diffusers skips a text-encoder LoRA without out_proj.
CLIP_ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")


def clip_hidden_states(encoder: torch.nn.Module, ids: torch.Tensor, clip_skip: int | None) -> torch.Tensor:
    """kohya's clip_skip: 1 (or None) is the last layer; N uses the N-th from last, then the final norm."""
    output = encoder(ids.to(encoder.device), output_hidden_states=True)
    if not clip_skip or clip_skip <= 1:
        return output.last_hidden_state
    hidden = output.hidden_states[-clip_skip]
    # transformers 5 flattened CLIPTextModel (no `.text_model`); older versions nest it.
    return getattr(encoder, "text_model", encoder).final_layer_norm(hidden)


def tokenize(tokenizer, prompts: Sequence[str]) -> torch.Tensor:
    return tokenizer(
        list(prompts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


@register_family("sd15", "sd2")
class StableDiffusion(ModelFamily):
    name: ClassVar[str] = "sd"
    pipeline_class = StableDiffusionPipeline
    denoiser_name: ClassVar[str] = "unet"

    def load(self, spec: ModelSpec, dtype: torch.dtype, config_cache: Path) -> LoadedModel:
        pipe = load_pipeline(
            spec, self.pipeline_class, dtype, config_cache, safety_checker=None, requires_safety_checker=False
        )
        components = {
            k: pipe.components[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
        }
        components |= {"safety_checker": None, "feature_extractor": None, "image_encoder": None}
        is_v2 = spec.family == "sd2"
        extras = {
            "prediction_type": prediction_type(pipe, spec.v_parameterization),
            "base_model_version": "sd_v2" if is_v2 else "sd_v1",
        }
        return LoadedModel(components, self.pipeline_class, extras)

    def lora_sites(self, train_text_encoder: bool) -> list[LoraSite]:
        sites = [LoraSite("unet", "lora_unet", False, UNET_ATTENTION, UNET_CONV)]
        if train_text_encoder:
            sites.append(LoraSite("text_encoder", "lora_te", True, CLIP_ATTENTION))
        return sites

    def text_encoder_names(self) -> tuple[str, ...]:
        return ("text_encoder",)

    def encode_prompts(
        self, model: LoadedModel, prompts: Sequence[str], clip_skip: int | None
    ) -> list[Conditioning]:
        hidden = clip_hidden_states(model["text_encoder"], tokenize(model["tokenizer"], prompts), clip_skip)
        return [{"prompt_embeds": h} for h in hidden]

    def sampling_pipeline(self, model: LoadedModel) -> StableDiffusionPipeline:
        # Samples are for the trainer's own eyes; there is no safety checker in a training run.
        return self.pipeline_class(**model.components, requires_safety_checker=False)

    def predict(
        self,
        model: LoadedModel,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        conditioning: Conditioning,
        geometry: Sequence[ImageGeometry],
    ) -> torch.Tensor:
        unet = model["unet"]
        return unet(noisy_latents, timesteps, encoder_hidden_states=conditioning["prompt_embeds"]).sample
