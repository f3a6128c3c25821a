"""kohya's `ss_*` metadata for a LoRA file (FORMATS.md §1): what A1111/Forge, CivitAI and LoRA
browsers show about how a LoRA was trained. Every value is a string."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorapilot import families
from lorapilot.spec.model import TrainSpec

_NETWORK_MODULE = {"lora": "networks.lora", "locon": "networks.lora", "dora": "networks.lora"}


@dataclass
class RunFacts:
    """What only the running engine knows."""

    session_id: str
    started_at: float
    base_model_version: str
    num_train_images: int
    num_reg_images: int
    batches_per_epoch: int
    epochs: int
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    dataset_dirs: dict[str, dict[str, int]] = field(default_factory=dict)
    reg_dataset_dirs: dict[str, dict[str, int]] = field(default_factory=dict)
    tag_frequency: dict[str, dict[str, int]] = field(default_factory=dict)
    bucket_info: dict[str, Any] = field(default_factory=dict)
    finished_at: float | None = None
    architecture: str | None = None  # modelspec's name when it differs from base_model_version


def bucket_info(counts: dict[Any, int]) -> dict[str, Any]:
    """kohya's ss_bucket_info: {"buckets": {i: {"resolution": [w, h], "count": n}}}."""
    ordered = sorted(counts.items(), key=lambda kv: (kv[0].width, kv[0].height))
    return {
        "buckets": {
            str(i): {"resolution": [b.width, b.height], "count": n} for i, (b, n) in enumerate(ordered)
        }
    }


def legacy_model_hash(path: Path) -> str | None:
    """A1111's short model hash of a checkpoint file (sha256 of 64 KiB at 1 MiB), or None."""
    try:
        with path.open("rb") as handle:
            handle.seek(0x100000)
            return hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]
    except OSError:
        return None


def kohya_metadata(spec: TrainSpec, facts: RunFacts) -> dict[str, str]:
    t, n, d0 = spec.training, spec.network, spec.datasets[0]
    args: dict[str, Any] = {}
    if n.conv_dim:
        args |= {"conv_dim": str(n.conv_dim), "conv_alpha": str(n.conv_alpha)}
    if n.dora:
        args["dora_wd"] = "True"
    if t.loraplus_lr_ratio:  # a network argument in sd-scripts, so it shows in ss_network_args
        args["loraplus_lr_ratio"] = str(t.loraplus_lr_ratio)
    meta: dict[str, Any] = {
        "ss_session_id": facts.session_id,
        "ss_training_started_at": facts.started_at,
        "ss_training_finished_at": facts.finished_at if facts.finished_at is not None else "",
        "ss_output_name": spec.output.name,
        "ss_learning_rate": t.learning_rate,
        "ss_unet_lr": t.unet_lr if t.unet_lr is not None else t.learning_rate,
        "ss_text_encoder_lr": (t.text_encoder_lr or t.learning_rate) if n.train_text_encoder else 0,
        "ss_num_train_images": facts.num_train_images,
        "ss_num_reg_images": facts.num_reg_images,
        "ss_num_batches_per_epoch": facts.batches_per_epoch,
        "ss_num_epochs": facts.epochs,
        "ss_epoch": facts.epoch,
        "ss_steps": facts.step,
        "ss_max_train_steps": facts.total_steps,
        "ss_lr_warmup_steps": t.warmup_steps,
        "ss_lr_scheduler": t.lr_scheduler,
        "ss_optimizer": _optimizer_name(t.optimizer, t.optimizer_args),
        "ss_network_module": _NETWORK_MODULE[n.type],
        "ss_network_dim": n.dim,
        "ss_network_alpha": n.alpha,
        "ss_network_dropout": n.dropout,
        "ss_network_args": json.dumps(args),
        "ss_mixed_precision": t.mixed_precision,
        "ss_full_fp16": False,
        "ss_base_model_version": facts.base_model_version,
        "ss_v2": families.get(spec.model.family).kohya.v2,
        "ss_clip_skip": t.clip_skip if t.clip_skip is not None else "None",
        "ss_resolution": f"({max(d0.resolutions)}, {max(d0.resolutions)})",
        "ss_enable_bucket": d0.bucket.enabled,
        "ss_min_bucket_reso": d0.bucket.min_resolution,
        "ss_max_bucket_reso": d0.bucket.max_resolution,
        "ss_bucket_no_upscale": d0.bucket.no_upscale,
        "ss_bucket_info": json.dumps(facts.bucket_info),
        "ss_seed": t.seed,
        "ss_noise_offset": t.noise_offset if t.noise_offset else "None",
        "ss_min_snr_gamma": t.min_snr_gamma if t.min_snr_gamma is not None else "None",
        "ss_gradient_checkpointing": t.gradient_checkpointing,
        "ss_gradient_accumulation_steps": t.gradient_accumulation_steps,
        "ss_max_grad_norm": t.max_grad_norm,
        "ss_cache_latents": True,
        "ss_caption_dropout_rate": d0.caption_dropout,
        "ss_shuffle_caption": d0.shuffle_caption,
        "ss_keep_tokens": d0.keep_tokens,
        "ss_flip_aug": d0.flip,
        "ss_prior_loss_weight": t.prior_loss_weight,
        "ss_sd_model_name": Path(spec.model.path).name,
        "ss_vae_name": Path(spec.model.vae).name if spec.model.vae else "None",
        "ss_datasets": json.dumps([_dataset_entry(d, t.batch_size) for d in spec.datasets]),
        "ss_dataset_dirs": json.dumps(facts.dataset_dirs),
        "ss_reg_dataset_dirs": json.dumps(facts.reg_dataset_dirs),
        "ss_tag_frequency": json.dumps(facts.tag_frequency),
        "modelspec.architecture": f"{facts.architecture or facts.base_model_version}/lora",
        "modelspec.title": spec.output.name,
        "modelspec.resolution": f"{max(d0.resolutions)}x{max(d0.resolutions)}",
    }
    if spec.model.source == "single_file":
        model_hash = legacy_model_hash(Path(spec.model.path))
        if model_hash:
            meta["ss_sd_model_hash"] = model_hash
    trigger = next((d.trigger_word for d in spec.datasets if d.trigger_word), None)
    if trigger:
        meta["modelspec.trigger_phrase"] = trigger
    return {key: str(value) for key, value in meta.items()}


def _optimizer_name(name: str, args: dict[str, Any]) -> str:
    full = {
        "adamw8bit": "bitsandbytes.optim.AdamW8bit",
        "adamw": "torch.optim.AdamW",
        "lion": "bitsandbytes.optim.Lion",
        "lion8bit": "bitsandbytes.optim.Lion8bit",
        "adafactor": "transformers.optimization.Adafactor",
        "prodigy": "prodigyopt.Prodigy",
        "sgd": "torch.optim.SGD",
    }[name]
    return f"{full}({','.join(f'{k}={v}' for k, v in args.items())})" if args else full


def _dataset_entry(dataset: Any, batch_size: int) -> dict[str, Any]:
    return {
        "image_dir": Path(dataset.folder).name,
        "batch_size_per_device": dataset.batch_size or batch_size,  # kohya's name, per dataset
        "num_repeats": dataset.repeats,
        "is_reg": dataset.is_reg,
        "class_tokens": dataset.class_tokens,
        "resolution": dataset.resolutions,
        "enable_bucket": dataset.bucket.enabled,
        "caption_extension": dataset.caption_extension,
        "keep_tokens": dataset.keep_tokens,
        "shuffle_caption": dataset.shuffle_caption,
        "caption_dropout_rate": dataset.caption_dropout,
        "flip_aug": dataset.flip,
        "weight": dataset.weight,
    }
