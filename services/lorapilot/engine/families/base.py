"""What the training loop needs from a model family, and the registry families add themselves to.

The loop never names a family: it asks the adapter to load components, encode prompts, run the
denoiser and tell it where LoRA goes. Everything family-specific lives behind these hooks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from diffusers import DiffusionPipeline

from lorapilot.engine.objective import DiffusionObjective, Objective
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


@dataclass
class LoadedModel:
    """A family's components on their devices, plus the pipeline class to sample with."""

    components: dict[str, Any]
    pipeline_class: type[DiffusionPipeline]
    extras: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.components[name]


class ModelFamily(ABC):
    """One model family. Subclasses set the class attributes and implement the hooks."""

    name: ClassVar[str]
    pipeline_class: ClassVar[type[DiffusionPipeline]]
    denoiser_name: ClassVar[str]  # "unet" or "transformer"

    @abstractmethod
    def load(self, spec: ModelSpec, dtype: torch.dtype, config_cache: Path) -> LoadedModel:
        """Load every component on the CPU in `dtype`; the loop moves them to the device.

        `config_cache` is a workspace folder for configs the family writes (single-file loading).
        """

    # load() puts "prediction_type" and "base_model_version" (kohya's ss_ value) into extras: both can
    # depend on the checkpoint (SD2 base vs 768-v), not only on the family.
    def prediction_type(self, model: LoadedModel) -> str:
        """What the denoiser predicts: "epsilon", "v_prediction" or "flow"."""
        return model.extras["prediction_type"]

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
        return DiffusionObjective(model["scheduler"].config, self.prediction_type(model), device)

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


FAMILIES: dict[str, Callable[[], ModelFamily]] = {}


def register_family(*names: str) -> Callable[[type[ModelFamily]], type[ModelFamily]]:
    """Class decorator: make a family available to `family_for` under the given spec names."""

    def add(cls: type[ModelFamily]) -> type[ModelFamily]:
        for name in names:
            FAMILIES[name] = cls
        return cls

    return add


def family_for(name: str) -> ModelFamily:
    if name not in FAMILIES:
        raise ValueError(
            f"no training support for model family {name!r} yet; available: {', '.join(FAMILIES)}"
        )
    return FAMILIES[name]()
