"""What the training loop needs from a model family's engine adapter, and the registry adapters
add themselves to, each against its entries of `lorapilot.families`.

The loop never names a family: it asks the adapter to load components, encode prompts, run the
denoiser and tell it where LoRA goes. Everything family-specific lives behind these hooks; the
family's facts (targets, kohya names) come from its registry entry, `self.family`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from diffusers import DiffusionPipeline

from lorapilot import families
from lorapilot.engine.objective import DiffusionObjective, Objective
from lorapilot.families import Family, KohyaNames
from lorapilot.spec.model import ModelSpec, SampleSpec, TrainingSpec

Conditioning = dict[str, torch.Tensor]  # one prompt's encoder outputs, each without a batch dim


@dataclass(frozen=True)
class ImageGeometry:
    """Where a training image came from; some denoisers are conditioned on it (micro-conditioning)."""

    original_size: tuple[int, int]  # (height, width) before resizing
    crop_top_left: tuple[int, int]  # (top, left) of the crop in the resized image
    target_size: tuple[int, int]  # (height, width) of the training bucket


@dataclass(frozen=True)
class LoraSite:
    """A model that receives LoRA layers, and how its keys are named in exported files."""

    name: str  # pipeline attribute and diffusers key prefix: "unet", "text_encoder", …
    kohya_prefix: str  # "lora_unet", "lora_te", "lora_te1", …
    is_text_encoder: bool
    targets: tuple[str, ...]  # peft target module names (suffix match)
    conv_targets: tuple[str, ...] = ()  # extra conv module names trained by LoCon
    exclude: str | None = None  # regex (full match) of module paths the targets must not catch


@dataclass(frozen=True)
class ModelFacts:
    """What the loaded checkpoint says about itself; it can differ from what its family alone says
    (an SD2 base or 768-v checkpoint, a FLUX file with or without the guidance embedding)."""

    prediction_type: str  # what the denoiser predicts: "epsilon", "v_prediction" or "flow"
    kohya: KohyaNames  # how kohya's metadata names the model the files hold


FactsT = TypeVar("FactsT", bound=ModelFacts)


@dataclass
class LoadedModel(Generic[FactsT]):
    """A family's components on their devices, the pipeline class to sample with, and the facts its
    adapter read off the files (a `ModelFacts` subclass of the adapter's own)."""

    components: dict[str, Any]
    pipeline_class: type[DiffusionPipeline]
    facts: FactsT

    def __getitem__(self, name: str) -> Any:
        return self.components[name]


class FamilyAdapter(ABC):
    """The engine's side of one or more registered families. Subclasses set the class attributes
    and implement the hooks; `self.family` is the registry entry being trained."""

    pipeline_class: ClassVar[type[DiffusionPipeline]]
    denoiser_name: ClassVar[str]  # "unet" or "transformer"

    def __init__(self, family: Family) -> None:
        self.family = family

    @abstractmethod
    def load(self, spec: ModelSpec, dtype: torch.dtype, config_cache: Path) -> LoadedModel:
        """Load every component on the CPU in `dtype`; the loop moves them to the device.

        `config_cache` is a workspace folder for configs the family writes (single-file loading).
        """

    def prediction_type(self, model: LoadedModel) -> str:
        """What the denoiser predicts: "epsilon", "v_prediction" or "flow"."""
        return model.facts.prediction_type

    @abstractmethod
    def lora_sites(self, train_text_encoder: bool) -> list[LoraSite]:
        """Where LoRA goes: the denoiser always, the text encoders when asked."""

    @abstractmethod
    def text_encoder_names(self) -> tuple[str, ...]:
        """Component names of the text encoders (frozen ones may be cached and offloaded)."""

    @abstractmethod
    def encode_prompts(
        self, model: LoadedModel, prompts: Sequence[str], clip_skip: int | None
    ) -> list[Conditioning]:
        """Encoder outputs per prompt, on the text encoders' device."""

    @abstractmethod
    def predict(
        self,
        model: LoadedModel,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        conditioning: Conditioning,
        geometry: Sequence[ImageGeometry],
    ) -> torch.Tensor:
        """The denoiser's output for a batch (`conditioning` tensors carry the batch dim)."""

    def encode_images(self, model: LoadedModel, pixels: torch.Tensor) -> torch.Tensor:
        """Latents of images in [-1, 1] (scaled as the denoiser expects)."""
        vae = model["vae"]
        latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return (latents - shift) * vae.config.scaling_factor

    def identity_parts(self, model: LoadedModel, component: str) -> list[torch.Tensor]:
        """A few tensors that identify a component's weights, for cache keys (not a full hash)."""
        params = list(model[component].parameters())
        return [params[0], params[len(params) // 2], params[-1]]

    def sampling_pipeline(self, model: LoadedModel) -> DiffusionPipeline:
        """A pipeline over the live (LoRA-injected) components, for sample renders."""
        return self.pipeline_class(**model.components)

    def objective(self, model: LoadedModel, training: TrainingSpec, device: torch.device) -> Objective:
        """Noise, targets and loss weights; DDPM ε/v by default."""
        return DiffusionObjective(
            model["scheduler"].config,
            self.prediction_type(model),
            device,
            min_timestep=training.min_timestep,
            max_timestep=training.max_timestep,
        )

    def prepare_device(self, device: torch.device) -> None:
        """Backend switches a family needs on the training device (known kernel failures)."""
        return

    def lora_file_format(self, requested: str) -> str:
        """Key layout of the saved LoRA: "kohya", "diffusers", or "peft_folded" (alpha in the weights)."""
        return requested

    def offloadable_blocks(self, model: LoadedModel) -> list[torch.nn.Module]:
        """The denoiser's repeated blocks, in execution order, that block swapping may stream in."""
        return []

    def sampling_arguments(self, model: LoadedModel, sample: SampleSpec) -> dict[str, Any]:
        """Pipeline-call arguments for a sample render besides prompt, size and generator."""
        return {
            "negative_prompt": sample.negative_prompt or None,
            "num_inference_steps": sample.steps,
            "guidance_scale": sample.guidance_scale,
        }

    def embedding_arguments(self, prompt: Conditioning, negative: Conditioning | None) -> dict[str, Any]:
        """Pipeline-call arguments that stand in for prompts when the text encoders are unloaded."""
        args = {name: value.unsqueeze(0) for name, value in prompt.items()}
        if negative is not None:
            args |= {f"negative_{name}": value.unsqueeze(0) for name, value in negative.items()}
        return args


ADAPTERS: dict[str, type[FamilyAdapter]] = {}


def register_adapter(*served: Family) -> Callable[[type[FamilyAdapter]], type[FamilyAdapter]]:
    """Class decorator: the adapter trains these registered families (`adapter_for`)."""

    def add(cls: type[FamilyAdapter]) -> type[FamilyAdapter]:
        for family in served:
            ADAPTERS[family.id] = cls
        return cls

    return add


def adapter_for(family_id: str) -> FamilyAdapter:
    """A new adapter for one run of the family `family_id`."""
    family = families.get(family_id)
    if family.id not in ADAPTERS:
        raise ValueError(
            f"no training support for model family {family.id!r} yet; available: {', '.join(ADAPTERS)}"
        )
    return ADAPTERS[family.id](family)
