"""What FLUX.1 and SD3 share: a flow-matching transformer, large frozen encoders, optional 4/8-bit base.

Only the two family adapters import this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from diffusers import BitsAndBytesConfig

from lorapilot.engine.families.base import FamilyAdapter, LoadedModel, LoraSite
from lorapilot.engine.families.loading import ModelLoadError, load_pipeline
from lorapilot.engine.objective import FlowMatchingObjective
from lorapilot.spec.model import ModelSpec, TrainingSpec


def quantization_config(spec: ModelSpec, dtype: torch.dtype) -> BitsAndBytesConfig | None:
    """bitsandbytes settings for `model.quantize`; the LoRA layers stay fp32 on top of them."""
    if spec.quantize in ("none", "float8"):
        return None
    if not torch.cuda.is_available():
        raise ModelLoadError(
            f"model.quantize: {spec.quantize} needs a CUDA GPU (bitsandbytes quantises the weights on the "
            "GPU); use quantize: none on a machine without one"
        )
    if spec.quantize == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_use_double_quant=True,
    )


class FlowTransformerFamily(FamilyAdapter):
    denoiser_name: ClassVar[str] = "transformer"
    transformer_class: ClassVar[type]
    default_sampling: ClassVar[str]

    def load_components(
        self, spec: ModelSpec, dtype: torch.dtype, config_cache: Path, names: tuple[str, ...]
    ) -> dict[str, Any]:
        if spec.source == "single_file":
            self.refuse_quantized_single_file(spec)
            return self.split_file_components(spec, dtype, config_cache)
        kwargs: dict[str, Any] = {}
        quantization = quantization_config(spec, dtype)
        if spec.transformer is not None:
            if quantization is not None:
                raise ModelLoadError(
                    f"model.quantize: quantising a transformer file ({spec.transformer}) is not supported; "
                    "use quantize: float8 or none"
                )
            kwargs["transformer"] = self.transformer_from_file(Path(spec.transformer), dtype)
        elif quantization is not None:
            self.refuse_quantized_single_file(spec)
            try:
                kwargs["transformer"] = self.transformer_class.from_pretrained(
                    spec.path,
                    subfolder="transformer",
                    quantization_config=quantization,
                    dtype=dtype,
                    local_files_only=spec.source != "hub",
                )
            except (OSError, ValueError, RuntimeError) as exc:
                raise ModelLoadError(f"cannot load the transformer of {spec.path} quantised: {exc}") from exc
        pipe = load_pipeline(spec, self.pipeline_class, dtype, config_cache, **kwargs)
        return {k: pipe.components[k] for k in names}

    def split_file_components(
        self, spec: ModelSpec, dtype: torch.dtype, config_cache: Path
    ) -> dict[str, Any]:
        """The components of a single-file model: the original-layout denoiser file and the
        components it bundles or the spec's component files (`split_files`)."""
        raise ModelLoadError(f"model.path: single-file {spec.family} checkpoints are not supported")

    def transformer_from_file(self, path: Path, dtype: torch.dtype) -> torch.nn.Module:
        """The denoiser from an original-layout file, for `model.transformer`."""
        raise ModelLoadError(f"model.transformer: {self.family.label} transformer files are not supported")

    @staticmethod
    def refuse_quantized_single_file(spec: ModelSpec) -> None:
        if spec.source == "single_file" and spec.quantize in ("int8", "nf4"):
            raise ModelLoadError(
                f"model.quantize: quantising a single-file {spec.family} checkpoint is not supported; "
                "point model.path at a diffusers folder"
            )

    def lora_sites(self, train_text_encoder: bool) -> list[LoraSite]:
        # The text encoders stay frozen (the spec refuses train_text_encoder for these families).
        targets = self.family.lora
        return [LoraSite("transformer", "lora_transformer", False, targets.denoiser, exclude=targets.exclude)]

    def objective(self, model: LoadedModel, training: TrainingSpec, device: torch.device):
        sampling = training.timestep_sampling or self.default_sampling
        return FlowMatchingObjective(
            sampling,
            shift=training.discrete_flow_shift,
            logit_mean=training.logit_mean,
            logit_std=training.logit_std,
            weighting=training.loss_weighting,
            image_seq_len=self.image_seq_len,
        )

    @staticmethod
    def image_seq_len(latents: torch.Tensor) -> int:
        """Image tokens of a latent batch (2×2 patches in both families)."""
        return (latents.shape[-2] // 2) * (latents.shape[-1] // 2)

    def prepare_device(self, device: torch.device) -> None:
        if device.type == "cuda":
            # cuDNN's SDPA backward hit an illegal memory access on H100 (torch 2.11) for FLUX LoRA
            # training at 1024² (DESIGN §9); flash / memory-efficient SDPA are unaffected.
            torch.backends.cuda.enable_cudnn_sdp(False)

    def lora_file_format(self, requested: str) -> str:
        # ComfyUI and diffusers both read `transformer.<module>.lora_A/B` keys (ComfyUI splits q/k/v onto
        # FLUX's fused weights itself); neither reads a kohya key layout of diffusers module names for
        # both families, and that naming carries no alpha, so it is folded into the weights.
        return "peft_folded"

    def offloadable_blocks(self, model: LoadedModel) -> list[torch.nn.Module]:
        transformer = model["transformer"]
        blocks: list[torch.nn.Module] = list(transformer.transformer_blocks)
        blocks += list(getattr(transformer, "single_transformer_blocks", []))
        return blocks
