"""Stable Diffusion 1.x / 2.x: one UNet, one CLIP text encoder, epsilon or v-prediction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from diffusers import StableDiffusionPipeline

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
from lorapilot.engine.families.reference_configs import SD15_REFERENCE, SD21_BASE_REFERENCE, SD21_REFERENCE
from lorapilot.families import SD2, SD15, LoraTargets
from lorapilot.spec.model import ModelSpec


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


def unet_site(targets: LoraTargets) -> LoraSite:
    """The UNet's LoRA: attention projections, and the conv layers LoCon adds."""
    return LoraSite("unet", "lora_unet", False, targets.denoiser, targets.conv)


@register_adapter(SD15, SD2)
class StableDiffusion(FamilyAdapter):
    pipeline_class = StableDiffusionPipeline
    denoiser_name: ClassVar[str] = "unet"

    def load(self, spec: ModelSpec, dtype: torch.dtype, config_cache: Path) -> LoadedModel:
        pipe = load_pipeline(
            spec,
            self.pipeline_class,
            dtype,
            config_cache,
            reference=self._reference(spec),
            safety_checker=None,
            requires_safety_checker=False,
        )
        components = {
            k: pipe.components[k] for k in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
        }
        components |= {"safety_checker": None, "feature_extractor": None, "image_encoder": None}
        facts = ModelFacts(prediction_type(pipe, spec.v_parameterization), self.family.kohya)
        return LoadedModel(components, self.pipeline_class, facts)

    def _reference(self, spec: ModelSpec) -> str:
        """The released model whose configs describe a single-file checkpoint of this family."""
        if self.family is SD2:
            return SD21_REFERENCE if spec.v_parameterization else SD21_BASE_REFERENCE
        return SD15_REFERENCE

    def lora_sites(self, train_text_encoder: bool) -> list[LoraSite]:
        sites = [unet_site(self.family.lora)]
        if train_text_encoder:
            sites.append(LoraSite("text_encoder", "lora_te", True, self.family.lora.text_encoder))
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
