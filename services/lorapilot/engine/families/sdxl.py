"""Stable Diffusion XL: one UNet, two CLIP text encoders (penultimate layers + pooled), size conditioning."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from diffusers import StableDiffusionXLPipeline

from lorapilot.engine.device_copy import to_device
from lorapilot.engine.families.base import (
    Conditioning,
    FamilyAdapter,
    ImageGeometry,
    LoadedModel,
    LoraSite,
    ModelFacts,
    register_adapter,
)
from lorapilot.engine.families.loading import load_pipeline, prediction_type
from lorapilot.engine.families.reference_configs import SDXL_REFERENCE
from lorapilot.engine.families.sd import tokenize, unet_site
from lorapilot.families import SDXL
from lorapilot.spec.model import ModelSpec

log = logging.getLogger(__name__)


@register_adapter(SDXL)
class StableDiffusionXL(FamilyAdapter):
    pipeline_class = StableDiffusionXLPipeline
    denoiser_name: ClassVar[str] = "unet"

    def load(self, spec: ModelSpec, dtype: torch.dtype, config_cache: Path) -> LoadedModel:
        pipe = load_pipeline(spec, self.pipeline_class, dtype, config_cache, reference=SDXL_REFERENCE)
        names = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler")
        components = {k: pipe.components[k] for k in names}
        components |= {"image_encoder": None, "feature_extractor": None}
        facts = ModelFacts(prediction_type(pipe, spec.v_parameterization), self.family.kohya)
        return LoadedModel(components, self.pipeline_class, facts)

    def lora_sites(self, train_text_encoder: bool) -> list[LoraSite]:
        sites = [unet_site(self.family.lora)]
        if train_text_encoder:
            clip = self.family.lora.text_encoder
            sites.append(LoraSite("text_encoder", "lora_te1", True, clip))
            sites.append(LoraSite("text_encoder_2", "lora_te2", True, clip))
        return sites

    def text_encoder_names(self) -> tuple[str, ...]:
        return ("text_encoder", "text_encoder_2")

    def encode_prompts(
        self, model: LoadedModel, prompts: Sequence[str], clip_skip: int | None
    ) -> list[Conditioning]:
        if clip_skip and clip_skip > 1:
            log.warning("clip_skip is not used by SDXL (it always reads the penultimate layers); ignoring it")
        hidden: list[torch.Tensor] = []
        pooled = None
        for encoder_name, tokenizer_name in (
            ("text_encoder", "tokenizer"),
            ("text_encoder_2", "tokenizer_2"),
        ):
            encoder = model[encoder_name]
            output = encoder(
                tokenize(model[tokenizer_name], prompts).to(encoder.device), output_hidden_states=True
            )
            hidden.append(output.hidden_states[-2])
            pooled = output[0]  # the second encoder's projected pooled output
        embeds = torch.cat(hidden, dim=-1)
        return [{"prompt_embeds": e, "pooled_prompt_embeds": p} for e, p in zip(embeds, pooled, strict=True)]

    def predict(
        self,
        model: LoadedModel,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        conditioning: Conditioning,
        geometry: Sequence[ImageGeometry],
    ) -> torch.Tensor:
        unet = model["unet"]
        sizes = torch.tensor([[*g.original_size, *g.crop_top_left, *g.target_size] for g in geometry])
        time_ids = to_device(sizes, noisy_latents.device, conditioning["prompt_embeds"].dtype)
        added = {"text_embeds": conditioning["pooled_prompt_embeds"], "time_ids": time_ids}
        return unet(
            noisy_latents,
            timesteps,
            encoder_hidden_states=conditioning["prompt_embeds"],
            added_cond_kwargs=added,
        ).sample
