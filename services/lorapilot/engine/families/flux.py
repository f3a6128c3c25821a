"""FLUX.1 dev and schnell: an MMDiT over packed 2×2 latent patches, CLIP-L (pooled) + T5 text, flow matching.

dev is guidance-distilled: its transformer embeds a guidance scale, trained at `training.guidance_scale`
(1.0, as ai-toolkit does) and sampled at 3.5 unless the sample section says otherwise. schnell is
timestep-distilled: no guidance embedding, no resolution shift, four sampling steps, T5 at 256 tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

from lorapilot.engine.families import split_files
from lorapilot.engine.families.base import (
    Conditioning,
    ImageGeometry,
    LoadedModel,
    ModelFacts,
    register_adapter,
)
from lorapilot.engine.families.bfl_layout import flux_config, flux_to_diffusers
from lorapilot.engine.families.flow_transformer import FlowTransformerFamily
from lorapilot.families import FLUX_DEV, FLUX_SCHNELL, Family
from lorapilot.spec.model import ModelSpec, SampleSpec, TrainingSpec


@dataclass(frozen=True)
class FluxFacts(ModelFacts):
    """What a FLUX checkpoint says about itself, and the guidance this run trains at."""

    timestep_distilled: bool  # schnell: no guidance embedding
    max_sequence_length: int  # T5 tokens
    train_guidance: float = 1.0  # the guidance embedding's input while training (dev)


# The released ae.safetensors' latent normalisation and the released schedulers (black-forest-labs'
# FLUX.1-dev / -schnell scheduler_config.json): dev shifts by resolution, schnell not at all.
AE_FACTORS = {"scaling_factor": 0.3611, "shift_factor": 0.1159}
DEV_SCHEDULER = {
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
SCHNELL_SCHEDULER = {"shift": 1.0, "use_dynamic_shifting": False}


def transformer_from_file(path: Path, dtype: torch.dtype, field: str = "path") -> FluxTransformer2DModel:
    """A FLUX transformer from a BFL-layout file (a ComfyUI models/unet file or a full checkpoint)."""
    source = split_files.denoiser_part(path, "model.diffusion_model.", field)
    state = split_files.read_state(source)
    return split_files.diffusers_model(
        FluxTransformer2DModel, flux_config(state), flux_to_diffusers(state), dtype, source
    )


def split_file_components(spec: ModelSpec, dtype: torch.dtype, config_cache: Path) -> dict[str, Any]:
    """A FLUX pipeline's components from a BFL-layout transformer file plus clip_l, t5xxl and ae files
    (or the ones a full checkpoint bundles)."""
    transformer = transformer_from_file(Path(spec.path), dtype)
    clip_part = split_files.part(spec, "clip_l", "tokenizer")
    t5_part = split_files.part(spec, "t5xxl", "tokenizer_2")
    clip = split_files.clip_text_encoder(clip_part, dtype, act="quick_gelu", projection=False)
    t5 = split_files.t5_text_encoder(t5_part, dtype)
    scheduler = DEV_SCHEDULER if transformer.config.guidance_embeds else SCHNELL_SCHEDULER
    return {
        "transformer": transformer,
        "text_encoder": clip,
        "text_encoder_2": t5,
        "tokenizer": split_files.clip_tokenizer(
            clip_part, clip.config.vocab_size, config_cache, "<|endoftext|>"
        ),
        "tokenizer_2": split_files.t5_tokenizer(t5_part, t5.config.vocab_size),
        "vae": split_files.vae(split_files.part(spec, "vae"), dtype, **AE_FACTORS),
        "scheduler": FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, **scheduler),
    }


@register_adapter(FLUX_DEV, FLUX_SCHNELL)
class Flux(FlowTransformerFamily):
    pipeline_class = FluxPipeline
    transformer_class = FluxTransformer2DModel
    default_sampling: ClassVar[str] = "flux_shift"

    def __init__(self, family: Family) -> None:
        super().__init__(family)
        self._ids_by_shape: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}

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
            "tokenizer",
            "tokenizer_2",
            "transformer",
            "scheduler",
        )
        components = self.load_components(spec, dtype, config_cache, names)
        components |= {"image_encoder": None, "feature_extractor": None}
        distilled_steps = not components["transformer"].config.guidance_embeds
        files_hold = FLUX_SCHNELL if distilled_steps else FLUX_DEV  # the checkpoint decides, not the name
        facts = FluxFacts(
            prediction_type="flow",
            kohya=files_hold.kohya,
            timestep_distilled=distilled_steps,
            max_sequence_length=256 if distilled_steps else 512,
        )
        return LoadedModel(components, self.pipeline_class, facts)

    def objective(self, model: LoadedModel[FluxFacts], training: TrainingSpec, device: torch.device):
        model.facts = replace(model.facts, train_guidance=training.guidance_scale)
        if training.timestep_sampling is None and model.facts.timestep_distilled:
            training = training.model_copy(update={"timestep_sampling": "sigmoid"})  # schnell: no shift
        return super().objective(model, training, device)

    def text_encoder_names(self) -> tuple[str, ...]:
        return ("text_encoder", "text_encoder_2")

    def encode_prompts(
        self, model: LoadedModel[FluxFacts], prompts: Sequence[str], clip_skip: int | None
    ) -> list[Conditioning]:
        pipe = self.pipeline_class(**model.components)
        embeds, pooled, _ = pipe.encode_prompt(
            list(prompts),
            device=model["text_encoder_2"].device,
            max_sequence_length=model.facts.max_sequence_length,
        )
        return [{"prompt_embeds": e, "pooled_prompt_embeds": p} for e, p in zip(embeds, pooled, strict=True)]

    def _image_ids(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Position ids of the packed latent grid, built once per bucket: diffusers builds them on
        the host, and copying them every step would make the host wait for the device."""
        key = (h, w, device, dtype)
        if key not in self._ids_by_shape:
            ids = self.pipeline_class._prepare_latent_image_ids(1, h, w, torch.device("cpu"), dtype)
            self._ids_by_shape[key] = ids.to(device)
        return self._ids_by_shape[key]

    def predict(
        self,
        model: LoadedModel[FluxFacts],
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        conditioning: Conditioning,
        geometry: Sequence[ImageGeometry],
    ) -> torch.Tensor:
        transformer = model["transformer"]
        b, c, h, w = noisy_latents.shape
        device, dtype = noisy_latents.device, noisy_latents.dtype
        packed = self.pipeline_class._pack_latents(noisy_latents, b, c, h, w)
        image_ids = self._image_ids(h // 2, w // 2, device, dtype)
        text = conditioning["prompt_embeds"]
        text_ids = torch.zeros(text.shape[1], 3, device=device, dtype=dtype)
        guidance = None
        if transformer.config.guidance_embeds:
            guidance = torch.full((b,), model.facts.train_guidance, device=device)
        out = transformer(
            hidden_states=packed,
            timestep=timesteps / 1000.0,
            guidance=guidance,
            pooled_projections=conditioning["pooled_prompt_embeds"],
            encoder_hidden_states=text,
            txt_ids=text_ids,
            img_ids=image_ids,
            return_dict=False,
        )[0]
        # unpack: (b, h/2·w/2, c·4) patches back to (b, c, h, w)
        return out.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)

    def sampling_arguments(self, model: LoadedModel[FluxFacts], sample: SampleSpec) -> dict[str, Any]:
        chosen = sample.model_fields_set
        if model.facts.timestep_distilled:
            steps = sample.steps if "steps" in chosen else 4
            guidance = 0.0  # schnell ignores guidance; there is no embedding for it
        else:
            steps = sample.steps
            guidance = sample.guidance_scale if "guidance_scale" in chosen else 3.5
        return {
            "num_inference_steps": steps,
            "guidance_scale": guidance,
            "max_sequence_length": model.facts.max_sequence_length,
        }

    def embedding_arguments(self, prompt: Conditioning, negative: Conditioning | None) -> dict[str, Any]:
        # FLUX samples without a negative prompt (its guidance is embedded, not classifier-free).
        return super().embedding_arguments(prompt, None)
