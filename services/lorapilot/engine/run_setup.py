"""Getting a run ready to train: model loaded, data planned and encoded, LoRA injected.

Everything here happens once per run, before the first step; the loop (`trainer.py`) then sees
tensors, LoRA parameters and a family adapter only.
"""

from __future__ import annotations

import gc
import logging
import random
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from lorapilot.data.captions import render_caption
from lorapilot.data.dataset import DatasetPlan, scan_datasets
from lorapilot.data.tensor_cache import TensorCache
from lorapilot.engine.base_weights import AssistantLora, merge_assistant, store_in_float8
from lorapilot.engine.block_swap import BlockSwapper
from lorapilot.engine.compile_cache import use_compile_cache
from lorapilot.engine.families.base import Conditioning, FamilyAdapter, LoadedModel
from lorapilot.engine.fused_lora import fuse_lora_layers
from lorapilot.engine.lora import InjectedSite, inject
from lorapilot.engine.prepare import PreparedItem, prepare_latents, prepare_text
from lorapilot.engine.sampling import sample_prompts
from lorapilot.spec.model import TrainingSpec, TrainSpec
from lorapilot.spec.preflight import cuda_available, xformers_installed
from lorapilot.workspace import Workspace

log = logging.getLogger("lorapilot.train")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def precision_on(device: torch.device, weights: str, mixed: str) -> tuple[torch.dtype, torch.dtype | None]:
    """(weight dtype, autocast dtype or None) a run uses on `device`.

    CPU autocast handles fp16 only partly (group norm, matmul priorities fail with "mixed dtype"), so
    on a CPU fp16 autocasts in bf16, and reduced-precision weights match the autocast dtype
    (`spec.preflight` says so before the run).
    """
    weight_dtype, autocast = DTYPES[weights], None if mixed == "no" else DTYPES[mixed]
    if device.type == "cpu" and autocast is torch.float16:
        autocast = torch.bfloat16
    if device.type == "cpu" and autocast is not None and weight_dtype not in (torch.float32, autocast):
        weight_dtype = autocast
    return weight_dtype, autocast


@dataclass
class PreparedRun:
    model: LoadedModel
    weight_dtype: torch.dtype
    plan: DatasetPlan
    items: list[PreparedItem]
    sites: list[InjectedSite]
    text: dict[str, Conditioning]  # per caption; empty when captions are encoded every step
    text_cached: bool
    vae_encodes: int
    text_encodes: int
    assistant: AssistantLora | None = None  # merged into the denoiser; left out of sample renders


def fast_path_on(training: TrainingSpec, device: torch.device) -> bool:
    """`training.fast`: "auto" takes the fast path on CUDA, where launch overhead is what it saves."""
    return training.fast is True or (training.fast == "auto" and device.type == "cuda")


def prepare_run(
    spec: TrainSpec,
    workspace: Workspace,
    adapter: FamilyAdapter,
    device: torch.device,
    *,
    show: bool,
    fast: bool = False,
) -> PreparedRun:
    t = spec.training
    weight_dtype, _ = precision_on(device, spec.model.weight_dtype, t.mixed_precision)
    adapter.prepare_device(device)
    model = adapter.load(spec.model, weight_dtype, workspace.cache / "model-configs")
    plan = scan_datasets(spec.datasets, skip_bad_images=t.skip_bad_images, balance_reg=t.balance_reg)
    for line in plan.describe_buckets():
        log.info(line)
    log_bucket_assignment(plan)
    assistant = None
    if spec.model.assistant_lora:  # merged in full precision, before any float8 storage
        assistant = merge_assistant(model, adapter, spec.model.assistant_lora)
    if spec.model.quantize == "float8":
        store_in_float8(model, adapter, weight_dtype)
    for name in ("vae", *adapter.text_encoder_names()):
        move(model[name], device)
    latent_root = workspace.latent_cache if spec.datasets[0].cache_latents_to_disk else None
    items, vae_encodes = prepare_latents(plan.items, adapter, model, TensorCache(latent_root), show=show)
    sites = inject(
        model, adapter.lora_sites(spec.network.train_text_encoder), spec.network, adapter.denoiser_name
    )
    text_cached = not spec.network.train_text_encoder and all(not p.item.policy.shuffle for p in items)
    text: dict[str, Conditioning] = {}
    text_encodes = 0
    if text_cached:
        text_root = workspace.text_cache if t.cache_text_encoder_outputs else None
        prompts = caption_prompts(items) | set(sample_prompts(spec))
        text, text_encodes = prepare_text(prompts, adapter, model, TensorCache(text_root), t.clip_skip)
        release_text_encoders(model, adapter)
    if t.low_vram:
        move(model["vae"], torch.device("cpu"))
    configure_training_modules(model, adapter, sites, t, fast=fast, compile_cache=workspace.cache / "torch")
    place_denoiser(model, adapter, t, device)
    return PreparedRun(
        model, weight_dtype, plan, items, sites, text, text_cached, vae_encodes, text_encodes, assistant
    )


def xformers_usable() -> bool:
    return xformers_installed() and cuda_available()


def move(module: torch.nn.Module | None, device: torch.device) -> None:
    """`module.to(device)`, except for bitsandbytes-quantised models, which live where they were loaded."""
    if module is not None and getattr(module, "hf_quantizer", None) is None:
        module.to(device)


def release_text_encoders(model: LoadedModel, adapter: FamilyAdapter) -> None:
    """Every caption and sample prompt is encoded: the frozen text encoders (T5 alone is ~9.5 GB) go."""
    for name in adapter.text_encoder_names():
        model.components[name] = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    log.info("text encoders unloaded; captions and sample prompts come from the text cache")


def place_denoiser(
    model: LoadedModel, adapter: FamilyAdapter, training: TrainingSpec, device: torch.device
) -> None:
    denoiser = model[adapter.denoiser_name]
    if not training.blocks_to_swap:
        move(denoiser, device)
        return
    blocks = adapter.offloadable_blocks(model)
    if not blocks:
        log.warning("blocks_to_swap: %s has no swappable blocks; ignoring it", adapter.family)
        move(denoiser, device)
        return
    count = min(training.blocks_to_swap, len(blocks))
    BlockSwapper(blocks[-count:], device).place(denoiser)


def log_bucket_assignment(plan: DatasetPlan, limit: int = 12) -> None:
    """Which images went to which bucket, so a surprising crop can be traced to its cause."""
    members: dict[str, list[str]] = {}
    for item in plan.items:
        names = members.setdefault(f"{item.bucket.width}x{item.bucket.height}", [])
        if item.image.name not in names:
            names.append(item.image.name)
    for bucket, names in sorted(members.items()):
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        log.info("bucket %s holds %s%s", bucket, ", ".join(names[:limit]), more)


def caption_prompts(items: list[PreparedItem]) -> set[str]:
    """Every text a caption can render to when captions are not shuffled: itself, or "" if dropped."""
    prompts: set[str] = set()
    rng = random.Random(0)
    for prepared in items:
        policy = prepared.item.policy
        prompts.add(render_caption(prepared.item.caption_raw, replace(policy, dropout=0.0), rng))
        if policy.dropout:
            prompts.add("")
    return prompts


def configure_training_modules(
    model: LoadedModel,
    adapter: FamilyAdapter,
    sites: list[InjectedSite],
    training: TrainingSpec,
    *,
    fast: bool = False,
    compile_cache: Path | None = None,
) -> None:
    denoiser = model[adapter.denoiser_name]
    if training.blocks_to_swap and not training.gradient_checkpointing:
        log.info("blocks_to_swap needs gradient checkpointing; turning it on")
    if training.gradient_checkpointing or training.blocks_to_swap:
        denoiser.enable_gradient_checkpointing()
        for site in sites:
            if site.site.is_text_encoder:
                site.module.gradient_checkpointing_enable()
    if training.attention == "xformers" and xformers_usable():
        denoiser.enable_xformers_memory_efficient_attention()
    elif training.attention == "xformers":
        log.info("attention: xformers is not installed or there is no CUDA GPU; using PyTorch SDPA")
    if fast:
        fused = fuse_lora_layers(site.module for site in sites)
        log.info("fast path: %d LoRA layers fused", fused)
    if training.compile:
        if compile_cache is not None:
            use_compile_cache(compile_cache)
        # In place: parameter names (and so saved LoRA keys) stay those of the eager module.
        denoiser.compile(dynamic=False)
    for site in sites:
        site.module.train()


def offload_vae(model: LoadedModel) -> None:
    """low_vram: the VAE waits on the CPU until the next sample render."""
    move(model["vae"], torch.device("cpu"))
