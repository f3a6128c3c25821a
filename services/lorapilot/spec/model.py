"""TrainSpec: the one training config the engine reads.

Every dialect reader produces this shape. Defaults live here and only here; cross-field rules
raise errors that name the field. Paths are already resolved inside the workspace when a
TrainSpec exists (see `spec.resolve`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from lorapilot import families

SPEC_VERSION = 1

Family = Literal[families.ids()]  # the registered family ids, as pydantic's choices
Dtype = Literal["fp32", "fp16", "bf16"]
MixedPrecision = Literal["no", "fp16", "bf16"]
Optimizer = Literal["adamw8bit", "adamw", "adafactor", "prodigy", "lion", "lion8bit", "sgd"]
Scheduler = Literal[
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"
]
TimestepSampling = Literal["uniform", "sigmoid", "logit_normal", "shift", "flux_shift"]

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # output.name, and a job's name


def check_run_name(value: str) -> str:
    """`value` if it can name a run (its folder under outputs/ and its LoRA file), else ValueError."""
    if not RUN_NAME.fullmatch(value):  # match() would let a trailing newline through
        raise ValueError("use letters, digits, '.', '_' and '-' only (no slashes), at most 128 characters")
    return value


class Section(BaseModel):
    """Unknown keys are errors: a typo must never train with a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSpec(Section):
    family: Family = Field(description="model family; decides loader, targets and training objective")
    path: str = Field(description="diffusers folder, single .safetensors/.ckpt file, or hub id")
    source: Literal["folder", "single_file", "hub"] = Field(
        "hub", description="how `path` is loaded; filled in by the resolver"
    )
    vae: str | None = Field(None, description="VAE override: folder, file or hub id")
    v_parameterization: bool = Field(False, description="train against v-prediction targets (SD2 768-v)")
    weight_dtype: Dtype = Field("bf16", description="dtype of the frozen base weights")
    quantize: Literal["none", "int8", "nf4", "float8"] = Field(
        "none",
        description="frozen denoiser weights: int8/nf4 bitsandbytes (CUDA only), or float8 storage "
        "computed in the training dtype (any device)",
    )
    transformer: str | None = Field(
        None,
        description="transformer file (original layout) that replaces the diffusers folder's own "
        "(diffusion-pipe's transformer_path)",
    )
    clip_l: str | None = Field(None, description="CLIP-L text encoder file of a split-file FLUX/SD3 model")
    clip_g: str | None = Field(None, description="CLIP-G text encoder file of a split-file SD3 model")
    t5xxl: str | None = Field(
        None, description="T5-XXL text encoder file (fp16 or fp8) of a split-file model"
    )
    assistant_lora: str | None = Field(
        None,
        description="LoRA merged into the base while training and left out of samples and the saved "
        "LoRA (ai-toolkit's schnell training adapter)",
    )

    @model_validator(mode="after")
    def _quantize_family(self) -> ModelSpec:
        if self.quantize in ("int8", "nf4") and not families.get(self.family).quantizable:
            raise ValueError(
                f"quantize applies to the large transformer models ({_ids(quantizable=True)}); "
                f"{self.family} trains in bf16/fp16 within 24 GB already"
            )
        return self

    @model_validator(mode="after")
    def _v_pred_family(self) -> ModelSpec:
        if self.v_parameterization and families.get(self.family).flow:
            raise ValueError(
                f"v_parameterization applies to UNet models; {self.family} trains with flow matching"
            )
        return self


class NetworkSpec(Section):
    type: Literal["lora", "locon", "dora"] = Field("lora", description="lora, locon (conv too) or dora")
    dim: int = Field(16, ge=1, le=1024, description="LoRA rank")
    alpha: float | None = Field(None, gt=0, description="kohya alpha; scale = alpha / dim; default = dim")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the LoRA path")
    target_modules: list[str] | None = Field(None, description="module name patterns; default per family")
    train_text_encoder: bool = Field(False, description="also train LoRA on the text encoder(s)")
    conv_dim: int | None = Field(None, ge=1, le=1024, description="rank for conv layers (LoCon)")
    conv_alpha: float | None = Field(None, gt=0, description="alpha for conv layers")
    dora: bool = Field(False, description="weight-decomposed LoRA (DoRA)")

    @model_validator(mode="after")
    def _defaults(self) -> NetworkSpec:
        # Each assignment re-runs this validator (validate_assignment), so each is guarded to run once.
        if self.type == "dora" and not self.dora:
            self.dora = True
        if self.conv_dim is not None and self.type == "lora":
            self.type = "locon"
        if self.type == "locon" and self.conv_dim is None:
            self.conv_dim = self.dim
        if self.conv_dim is not None and self.conv_alpha is None:
            self.conv_alpha = float(self.conv_dim)
        if self.alpha is None:
            self.alpha = float(self.dim)
        return self


class BucketSpec(Section):
    enabled: bool = Field(True, description="aspect-ratio bucketing")
    min_resolution: int | None = Field(
        None, ge=64, description="smallest bucket side; default half the resolution"
    )
    max_resolution: int | None = Field(
        None, ge=64, description="largest bucket side; default twice the resolution"
    )
    step: int = Field(64, ge=8, description="bucket side granularity")
    no_upscale: bool = Field(False, description="never upscale an image into a bucket")

    @model_validator(mode="after")
    def _order(self) -> BucketSpec:
        if (
            self.min_resolution is not None
            and self.max_resolution is not None
            and (self.min_resolution > self.max_resolution)
        ):
            raise ValueError(
                f"min_resolution {self.min_resolution} is larger than max_resolution {self.max_resolution}"
            )
        if self.step % 8:
            raise ValueError(f"step {self.step} must be a multiple of 8")
        return self


class DatasetSpec(Section):
    folder: str = Field(description="image folder (images + same-stem caption files)")
    repeats: int = Field(1, ge=1, le=10_000, description="times each image is seen per epoch")
    caption_extension: str = Field(".txt", description="caption file extension")
    trigger_word: str | None = Field(None, description="prepended to every caption")
    class_tokens: str | None = Field(None, description="caption for images without a caption file")
    is_reg: bool = Field(False, description="regularization (prior-preservation) images")
    weight: float = Field(1.0, gt=0, le=100, description="loss weight of this dataset")
    resolutions: list[int] = Field(default_factory=lambda: [1024], description="training sides")
    bucket: BucketSpec = Field(default_factory=BucketSpec, description="aspect-ratio buckets of this dataset")
    shuffle_caption: bool = Field(False, description="shuffle comma-separated tags")
    keep_tokens: int = Field(0, ge=0, description="leading tags kept in place when shuffling")
    caption_dropout: float = Field(0.0, ge=0.0, le=1.0, description="chance of an empty caption")
    cache_latents_to_disk: bool = Field(True, description="keep VAE latents in the workspace cache")
    flip: bool = Field(False, description="random horizontal flips")
    batch_size: int | None = Field(
        None, ge=1, le=1024, description="images per batch from this dataset; default training.batch_size"
    )

    @field_validator("caption_extension")
    @classmethod
    def _dot(cls, value: str) -> str:
        value = value.strip()
        if not value or "/" in value or "\\" in value:
            raise ValueError("must be a file extension such as .txt or .caption")
        return value if value.startswith(".") else "." + value

    @field_validator("resolutions")
    @classmethod
    def _sides(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("needs at least one resolution")
        for side in value:
            if side < 64 or side > 4096 or side % 8:
                raise ValueError(f"{side} is not a usable side; use a multiple of 8 between 64 and 4096")
        return sorted(set(value))

    @model_validator(mode="after")
    def _bucket_sides(self) -> DatasetSpec:
        """kohya's defaults scaled to the resolution; explicit sides must admit the resolution."""
        b, low, high = self.bucket, min(self.resolutions), max(self.resolutions)
        if b.min_resolution is None:
            b.min_resolution = max(64, low // 2 // b.step * b.step)
        if b.max_resolution is None:
            b.max_resolution = max(high * 2, b.min_resolution)
        if b.enabled and b.min_resolution > low:
            raise ValueError(f"bucket min_resolution {b.min_resolution} is above the resolution {low}")
        if b.enabled and b.max_resolution < high:
            raise ValueError(f"bucket max_resolution {b.max_resolution} is below the resolution {high}")
        return self


class EarlyStoppingSpec(Section):
    patience: int = Field(description="evaluations without improvement before stopping", ge=1)
    min_delta: float = Field(0.0, ge=0.0, description="smallest loss drop that counts as improvement")
    every: int = Field(50, ge=1, description="steps between evaluations of the smoothed loss")


class TrainingSpec(Section):
    max_steps: int | None = Field(
        None, ge=1, le=10_000_000, description="optimizer steps to train; with epochs, whichever ends first"
    )
    epochs: int | None = Field(
        None, ge=1, le=100_000, description="passes over the data; with max_steps, whichever ends first"
    )
    batch_size: int = Field(1, ge=1, le=1024, description="images per micro-batch (per process)")
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=1024, description="micro-batches whose gradients add up to one optimizer step"
    )
    # Up to 10: Prodigy and other adaptive optimizers take a multiplier around 1.0 as their "LR".
    learning_rate: float = Field(
        1e-4, gt=0, le=10, description="LR of every LoRA parameter; unet_lr/text_encoder_lr override it"
    )
    unet_lr: float | None = Field(None, gt=0, le=10, description="denoiser LR; default learning_rate")
    text_encoder_lr: float | None = Field(None, gt=0, le=10, description="text-encoder LR")
    optimizer: Optimizer = Field(
        "adamw8bit", description="optimizer; adamw8bit, lion and lion8bit are bitsandbytes' (CUDA)"
    )
    optimizer_args: dict[str, Any] = Field(
        default_factory=dict, description="extra optimizer keyword arguments, e.g. weight_decay, betas"
    )
    lr_scheduler: Scheduler = Field("constant", description="LR schedule over the run's optimizer steps")
    warmup_steps: int = Field(0, ge=0, description="optimizer steps of linear LR warm-up from 0")
    lr_end: float = Field(0.0, ge=0, description="LR floor for decaying schedules")
    lr_cycles: int = Field(1, ge=1, description="restarts for cosine_with_restarts")
    lr_power: float = Field(1.0, gt=0, description="power for polynomial")
    mixed_precision: MixedPrecision = Field(
        "bf16", description="autocast dtype of the forward pass; 'no' is fp32; fp16 adds a grad scaler"
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory, slower steps"
    )
    max_grad_norm: float = Field(1.0, ge=0, description="gradient clipping; 0 turns it off")
    noise_offset: float = Field(
        0.0, ge=0, le=1, description="offset noise strength (darker darks, brighter lights); 0 turns it off"
    )
    min_snr_gamma: float | None = Field(
        None, gt=0, description="min-SNR-γ loss weighting (5 is usual); unset turns it off"
    )
    timestep_sampling: TimestepSampling | None = Field(None, description="flow models; default per family")
    discrete_flow_shift: float = Field(3.0, gt=0, description="σ shift for timestep_sampling 'shift'")
    logit_mean: float = Field(0.0, ge=-5, le=5, description="mean of the logit-normal/sigmoid σ sampler")
    logit_std: float = Field(1.0, gt=0, le=5, description="scale of the logit-normal/sigmoid σ sampler")
    loss_weighting: Literal["none", "sigma_sqrt", "cosmap"] = Field(
        "none", description="flow models: per-σ loss weighting (SD3 paper)"
    )
    guidance_scale: float = Field(1.0, ge=0, description="FLUX-dev guidance embedding while training")
    prior_loss_weight: float = Field(1.0, ge=0, description="loss weight of regularization images")
    balance_reg: bool = Field(
        False,
        description="repeat or trim regularization images to as many per epoch as training images (kohya)",
    )
    min_timestep: int | None = Field(None, ge=0, le=999, description="UNet models: lowest training timestep")
    max_timestep: int | None = Field(
        None, ge=1, le=1000, description="UNet models: training timesteps stay below this"
    )
    loraplus_lr_ratio: float | None = Field(
        None, gt=0, le=1000, description="LoRA+: the up (B) matrices learn at this multiple of the LR"
    )
    clip_skip: int | None = Field(
        None,
        ge=1,
        le=12,
        description="CLIP layer (from the end) captions are read from; 1 or unset: the last",
    )
    attention: Literal["sdpa", "xformers"] = Field(
        "sdpa", description="attention kernel of the denoiser: PyTorch SDPA or xformers"
    )
    cache_text_encoder_outputs: bool = Field(
        False, description="keep caption embeddings in the workspace cache for later runs (frozen encoders)"
    )
    compile: bool = Field(False, description="torch.compile the denoiser")
    fast: bool | Literal["auto"] = Field(
        "auto",
        description=(
            "fast path: fused LoRA layers, one flat optimizer buffer, no host syncs inside a step; "
            "auto: on with CUDA"
        ),
    )
    seed: int = Field(
        42, ge=0, lt=2**32, description="seed of LoRA initialisation, data order, augmentation and noise"
    )
    low_vram: bool = Field(
        False, description="encoders and VAE leave the GPU once captions/latents are cached"
    )
    blocks_to_swap: int = Field(
        0, ge=0, le=100, description="transformer blocks kept on the host and streamed in (flow models)"
    )
    skip_bad_images: bool = Field(
        False, description="skip unreadable images with a warning instead of failing"
    )
    early_stopping: EarlyStoppingSpec | None = Field(
        None, description="stop once the smoothed loss stops improving; unset trains to the end"
    )
    ema_decay: float | None = Field(None, gt=0, lt=1, description="EMA of the LoRA weights (ai-toolkit)")

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted `no` (kohya's spelling) as false.
        return "no" if value is False else value

    @model_validator(mode="after")
    def _length(self) -> TrainingSpec:
        if self.max_steps is None and self.epochs is None:
            self.max_steps = 1000
        if self.lr_end >= (self.unet_lr or self.learning_rate):
            raise ValueError(f"lr_end {self.lr_end} must be below the learning rate")
        low, high = self.min_timestep or 0, self.max_timestep or 1000
        if low >= high:
            raise ValueError(f"min_timestep {low} must be below max_timestep {high}")
        return self


class SamplePrompt(Section):
    """One sample prompt; unset options take the sample section's value (kohya's per-line options)."""

    text: str = Field(description="the prompt; [trigger] becomes the dataset's trigger word")
    negative_prompt: str | None = Field(None, description="this prompt's negative prompt")
    width: int | None = Field(None, ge=64, le=4096, multiple_of=8, description="this prompt's width (px)")
    height: int | None = Field(None, ge=64, le=4096, multiple_of=8, description="this prompt's height (px)")
    steps: int | None = Field(None, ge=1, le=200, description="this prompt's denoising steps")
    guidance_scale: float | None = Field(None, ge=0, le=50, description="this prompt's guidance scale")
    seed: int | None = Field(None, ge=0, lt=2**32, description="this prompt's seed")


class SampleSpec(Section):
    every: int = Field(0, ge=0, description="steps between sample renders; 0 turns sampling off")
    every_n_epochs: int | None = Field(
        None, ge=1, description="epochs between sample renders (kohya's sample_every_n_epochs)"
    )
    at_start: bool = Field(False, description="render the samples once before the first step")
    prompts: list[SamplePrompt] = Field(
        default_factory=list,
        description="prompts to render, each text or {text, negative_prompt, width, height, steps, "
        "guidance_scale, seed}; [trigger] becomes the dataset's trigger word",
    )
    negative_prompt: str = Field("", description="negative prompt of every sample (UNet and SD3 models)")
    seed: int = Field(42, ge=0, lt=2**32, description="seed of every render, so samples compare over steps")
    steps: int = Field(20, ge=1, le=200, description="denoising steps per sample")
    guidance_scale: float = Field(7.0, ge=0, le=50, description="guidance scale of the sample renders")
    width: int | None = Field(
        None, ge=64, le=4096, multiple_of=8, description="sample width (px); default: the largest resolution"
    )
    height: int | None = Field(
        None, ge=64, le=4096, multiple_of=8, description="sample height (px); default: the largest resolution"
    )

    @field_validator("prompts", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"text": item} if isinstance(item, str) else item for item in value]
        return value

    @field_serializer("prompts")
    def _plain_texts(self, prompts: list[SamplePrompt]) -> list[Any]:
        """A prompt without options of its own is written back as its text, as the user wrote it."""
        return [
            p.text if not (p.model_fields_set - {"text"}) else p.model_dump(exclude_none=True)
            for p in prompts
        ]

    @property
    def on(self) -> bool:
        """Whether any renders are asked for."""
        return bool(self.prompts) and bool(self.every or self.every_n_epochs or self.at_start)

    @model_validator(mode="after")
    def _prompts(self) -> SampleSpec:
        if (self.every or self.every_n_epochs or self.at_start) and not self.prompts:
            raise ValueError("sampling is on (every > 0) but there are no prompts")
        return self


class SaveSpec(Section):
    every_n_steps: int | None = Field(None, ge=1, description="periodic LoRA saves")
    every_n_epochs: int | None = Field(
        None, ge=1, description="epochs between periodic LoRA saves (<name>-NNNNNN.safetensors, as kohya)"
    )
    keep_last: int | None = Field(None, ge=1, description="periodic saves kept; older ones are deleted")
    format: Literal["kohya", "diffusers"] = Field("kohya", description="key naming of the LoRA file")
    dtype: Dtype = Field("fp16", description="dtype of the saved LoRA tensors")
    save_state: bool = Field(True, description="keep resumable training state")


class OutputSpec(Section):
    name: str = Field(description="run name; the LoRA is <name>.safetensors")
    folder: str = Field(description="run folder, inside the workspace's outputs/")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_run_name(value)


class TrainSpec(Section):
    spec_version: Literal[1] = Field(SPEC_VERSION, description="version of this config shape; always 1")
    model: ModelSpec = Field(description="the base model the LoRA is trained for")
    network: NetworkSpec = Field(default_factory=NetworkSpec, description="the LoRA: type, rank, targets")
    datasets: list[DatasetSpec] = Field(
        min_length=1, description="image folders to train on; at least one that is not regularization"
    )
    training: TrainingSpec = Field(
        default_factory=TrainingSpec, description="length, optimizer, LR schedule, precision and noise"
    )
    sample: SampleSpec = Field(default_factory=SampleSpec, description="sample renders during training")
    save: SaveSpec = Field(default_factory=SaveSpec, description="periodic saves and the LoRA file's format")
    output: OutputSpec = Field(description="run name and folder")

    @model_validator(mode="after")
    def _cross(self) -> TrainSpec:
        if all(d.is_reg for d in self.datasets):
            raise ValueError("every dataset is a regularization set; add at least one training dataset")
        family = families.get(self.model.family)
        t = self.training
        if not family.flow:
            for name in ("timestep_sampling", "loss_weighting", "blocks_to_swap"):
                if name in t.model_fields_set and getattr(t, name) not in (None, "none", 0):
                    raise ValueError(
                        f"training.{name} applies to flow-matching models ({_ids(flow=True)}); "
                        f"{self.model.family} trains with DDPM noise"
                    )
        if self.network.dora and "dora" not in family.network_types:
            raise ValueError(
                f"network.type dora: ComfyUI does not load DoRA magnitudes in {family.label} LoRA files; "
                "use lora"
            )
        if (t.min_timestep is not None or t.max_timestep is not None) and family.flow:
            raise ValueError(
                f"training.min_timestep/max_timestep apply to DDPM models; {self.model.family} trains "
                "with flow matching (use timestep_sampling)"
            )
        if self.network.train_text_encoder and not family.trains_text_encoders:
            raise ValueError(
                f"network.train_text_encoder: {self.model.family} LoRAs train the transformer only; the "
                "text encoders stay frozen and their outputs are cached"
            )
        if t.blocks_to_swap and self.model.quantize != "none":
            raise ValueError(
                "training.blocks_to_swap cannot stream quantised weights; use either blocks_to_swap or "
                "model.quantize"
            )
        if self.network.dora and self.model.quantize == "float8":
            raise ValueError(
                "network.type dora reads the base weights outside their layers, which model.quantize "
                "float8 keeps in float8; use lora or locon with float8, or quantize none with dora"
            )
        if self.network.conv_dim and "locon" not in family.network_types:
            raise ValueError(f"network.conv_dim: {self.model.family} has no conv layers to train (use lora)")
        if self.training.cache_text_encoder_outputs and self.network.train_text_encoder:
            raise ValueError(
                "cache_text_encoder_outputs needs frozen text encoders (train_text_encoder false)"
            )
        return self


def _ids(**facts: object) -> str:
    """The ids of the families with these facts, for messages."""
    return ", ".join(f.id for f in families.where(**facts))
