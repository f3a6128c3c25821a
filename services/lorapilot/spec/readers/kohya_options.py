"""sd-scripts options LoRA Pilot reads but does not map: irrelevant here (a notice) or not done
(refused unless the value is sd-scripts' own default, which then passes with a notice).

The defaults are sd-scripts' argparse defaults (`library/train_util.py`, `train_network.py`,
`library/flux_train_utils.py`, `library/sd3_train_utils.py`, `library/custom_train_functions.py`),
so a config saved with every option written out still validates.
"""

from __future__ import annotations

from lorapilot.spec.draft import Unsupported

_LOGS = "metrics go to outputs/<name>/_logs/ and ControlPilot"
_LOADER = "data loading is planned by the engine"
_MEMORY = "memory use is planned by the engine"
_HUB = "LoRAs stay in the workspace; nothing is uploaded"
_METADATA = "the LoRA file's metadata is written by LoRA Pilot (ss_* and modelspec.*)"
_VALIDATION = "validation splits"
_DEEPSPEED = "DeepSpeed (LoRA Pilot runs one process per GPU)"
_HUBER = "only used with loss_type huber or smooth_l1, which LoRA Pilot does not do"

IGNORED: dict[str, str] = {
    "logging_dir": _LOGS,
    "log_with": _LOGS,
    "log_prefix": _LOGS,
    "log_tracker_name": _LOGS,
    "log_tracker_config": _LOGS,
    "log_config": _LOGS,
    "wandb_run_name": _LOGS,
    "wandb_api_key": "no remote tracker is used (the key is not stored)",
    "console_log_level": "logs go to outputs/<name>/_logs/train.log",
    "console_log_file": "logs go to outputs/<name>/_logs/train.log",
    "console_log_simple": "logs go to outputs/<name>/_logs/train.log",
    "max_data_loader_n_workers": _LOADER,
    "persistent_data_loader_workers": _LOADER,
    "cache_latents": "latents are always cached",
    "vae_batch_size": "latents are encoded by the engine in its own batches",
    "text_encoder_batch_size": "caption embeddings are encoded by the engine in its own batches",
    "skip_cache_check": "the latent cache is content-addressed in /workspace/cache",
    "cache_info": "the latent cache is content-addressed in /workspace/cache",
    "disable_mmap_load_safetensors": "model files are loaded by diffusers",
    "tokenizer_cache_dir": "tokenizers come with the model; nothing is downloaded",
    "mem_eff_attn": "SDPA attention is used",
    "sample_sampler": "samples use the model's own scheduler",
    "save_state_on_train_end": "state is kept for every saved step",
    "save_last_n_epochs_state": "state is kept for the last save only",
    "save_last_n_steps_state": "state is kept for the last save only",
    "highvram": _MEMORY,
    "lowram": f"{_MEMORY} (sd-scripts' lowram loads models straight to the GPU)",
    "cpu_offload_checkpointing": _MEMORY,
    "no_half_vae": "the VAE runs in fp32 while latents are cached",
    "huggingface_repo_type": _HUB,
    "huggingface_path_in_repo": _HUB,
    "huggingface_token": f"{_HUB} (the token is not stored)",
    "huggingface_repo_visibility": _HUB,
    "save_state_to_huggingface": _HUB,
    "async_upload": _HUB,
    "output_config": "validate prints the normalised spec instead",
    "config_file": "the config is the file given to trainpilot",
    "ddp_timeout": "one process per GPU, without DDP",
    "ddp_gradient_as_bucket_view": "one process per GPU, without DDP",
    "ddp_static_graph": "one process per GPU, without DDP",
    "dynamo_backend": "torch.compile uses its default backend",
    "no_metadata": "LoRA files always carry their ss_* metadata",
    "training_comment": _METADATA,
    "resize_interpolation": "images are resized with Lanczos when shrinking and bicubic when enlarging",
    "t5xxl_device": "the engine places the text encoders",
    "t5xxl_dtype": "the text encoders run in the weight dtype",
    "save_clip": "only the LoRA is saved",
    "save_t5xxl": "only the LoRA is saved",
    "huber_schedule": _HUBER,
    "huber_c": _HUBER,
    "huber_scale": _HUBER,
    **{
        f"metadata_{name}": _METADATA
        for name in (
            "title",
            "author",
            "description",
            "license",
            "tags",
            "usage_hint",
            "thumbnail",
            "merged_from",
            "trigger_phrase",
            "preprocessor",
            "is_negative_embedding",
        )
    },
}


def _no(reason: str, *defaults: object) -> Unsupported:
    return Unsupported(reason, defaults)


UNSUPPORTED: dict[str, Unsupported] = {
    "network_weights": _no("starting from existing LoRA weights"),
    "dim_from_weights": _no("reading the rank from network_weights"),
    "network_train_text_encoder_only": _no("text-encoder-only LoRAs"),
    "base_weights": _no("merging LoRAs into the base before training"),
    "base_weights_multiplier": _no("merging LoRAs into the base before training"),
    "scale_weight_norms": _no("max-norm regularisation of the LoRA weights"),
    "ip_noise_gamma": _no("input perturbation noise"),
    "ip_noise_gamma_random_strength": _no("input perturbation noise"),
    "multires_noise_iterations": _no("multi-resolution noise"),
    "multires_noise_discount": _no("multi-resolution noise", 0.3),
    "adaptive_noise_scale": _no("adaptive noise offset"),
    "noise_offset_random_strength": _no("random noise-offset strength"),
    "zero_terminal_snr": _no("zero-terminal-SNR schedules"),
    "debiased_estimation_loss": _no("debiased estimation loss"),
    "scale_v_pred_loss_like_noise_pred": _no("v-prediction loss scaling"),
    "v_pred_like_loss": _no("v-prediction-like loss"),
    "loss_type": _no("loss functions other than L2 (MSE)", "l2"),
    "masked_loss": _no("masked loss"),
    "alpha_mask": _no("alpha masks as loss masks"),
    "conditioning_data_dir": _no("ControlNet conditioning images"),
    "controlnet_model_name_or_path": _no("ControlNet training"),
    "weighted_captions": _no("weighted captions ((word:1.2))"),
    "max_token_length": _no("captions longer than 75 tokens"),
    "t5xxl_max_token_length": _no(
        "T5 lengths other than the engine's (256 tokens for schnell and SD3, 512 for dev)", 256, 512
    ),
    "apply_t5_attn_mask": _no("T5 attention masks"),
    "apply_lg_attn_mask": _no("CLIP attention masks"),
    "clip_l_dropout_rate": _no("per-encoder caption dropout", 0.0),
    "clip_g_dropout_rate": _no("per-encoder caption dropout", 0.0),
    "t5_dropout_rate": _no("per-encoder caption dropout", 0.0),
    "pos_emb_random_crop_rate": _no("positional-embedding crops", 0.0),
    "enable_scaled_pos_embed": _no("scaled positional embeddings"),
    "training_shift": _no("a training shift on top of the weighting scheme", 1.0),
    "mode_scale": _no("the mode weighting scheme", 1.29),
    "model_type": _no("Chroma models", "flux"),
    "token_warmup_min": _no("token warm-up", 1),
    "token_warmup_step": _no("token warm-up", 0),
    "caption_dropout_every_n_epochs": _no("epoch-periodic caption dropout", 0),
    "caption_tag_dropout_rate": _no("per-tag dropout; use caption_dropout_rate", 0.0),
    "caption_suffix": _no("caption suffixes"),
    "caption_separator": _no("tag separators other than a comma", ","),
    "keep_tokens_separator": _no("a keep-tokens separator; use keep_tokens"),
    "secondary_separator": _no("a secondary tag separator"),
    "enable_wildcard": _no("caption wildcards"),
    "color_aug": _no("colour augmentation"),
    "face_crop_aug_range": _no("face crop augmentation"),
    "random_crop": _no("random crops (images are resized into buckets)"),
    "in_json": _no("fine-tuning metadata files; use caption files beside the images"),
    "dataset_repeats": _no("fine-tuning metadata files; use caption files beside the images", 1),
    "dataset_class": _no("custom dataset classes"),
    "debug_dataset": _no("dataset debugging (nothing would be trained)"),
    "resume": _no("resuming from an sd-scripts state folder (LoRA Pilot resumes its own runs)"),
    "resume_from_huggingface": _no("resuming from the Hub"),
    "huggingface_repo_id": _no("uploads to the Hub"),
    "save_n_epoch_ratio": _no("saving by epoch ratio; use save_every_n_epochs"),
    "skip_until_initial_step": _no("skipping to an initial step"),
    "initial_epoch": _no("starting at a later epoch", 1),
    "initial_step": _no("starting at a later step", 0),
    "use_8bit_adam": _no("the old optimizer switch; use optimizer_type AdamW8bit"),
    "use_lion_optimizer": _no("the old optimizer switch; use optimizer_type Lion"),
    "lr_scheduler_type": _no("custom scheduler classes", ""),
    "lr_scheduler_args": _no("scheduler arguments"),
    "lr_decay_steps": _no("warmup-stable-decay schedules", 0),
    "lr_scheduler_timescale": _no("inverse square-root schedules"),
    "lr_scheduler_min_lr_ratio": _no("a minimum LR as a ratio; use lr_end"),
    "fused_backward_pass": _no("fused backward passes"),
    "full_fp16": _no("fp16 gradients (LoRA weights train in fp32)"),
    "full_bf16": _no("bf16 gradients (LoRA weights train in fp32)"),
    "split_mode": _no("split mode (deprecated in sd-scripts too); use blocks_to_swap"),
    "validation_seed": _no(_VALIDATION),
    "validation_split": _no(_VALIDATION, 0.0),
    "validate_every_n_steps": _no(_VALIDATION),
    "validate_every_n_epochs": _no(_VALIDATION),
    "max_validation_steps": _no(_VALIDATION),
    "deepspeed": _no(_DEEPSPEED),
    "zero_stage": _no(_DEEPSPEED, 2),
    "offload_optimizer_device": _no(_DEEPSPEED),
    "offload_optimizer_nvme_path": _no(_DEEPSPEED),
    "offload_param_device": _no(_DEEPSPEED),
    "offload_param_nvme_path": _no(_DEEPSPEED),
    "zero3_init_flag": _no(_DEEPSPEED),
    "zero3_save_16bit_model": _no(_DEEPSPEED),
    "fp16_master_weights_and_gradients": _no(_DEEPSPEED),
}

# Options of sd-scripts' dataset-config TOML (`library/config_util.py`) that LoRA Pilot does not map.
DATASET_IGNORED = {name: IGNORED[name] for name in ("cache_info", "resize_interpolation")}
DATASET_UNSUPPORTED: dict[str, Unsupported] = {
    **{
        name: UNSUPPORTED[name]
        for name in (
            "color_aug",
            "random_crop",
            "face_crop_aug_range",
            "keep_tokens_separator",
            "secondary_separator",
            "caption_separator",
            "enable_wildcard",
            "caption_suffix",
            "caption_tag_dropout_rate",
            "caption_dropout_every_n_epochs",
            "token_warmup_min",
            "token_warmup_step",
            "alpha_mask",
        )
    },
    "custom_attributes": _no("custom attributes (per-subset loss tweaks)"),
    "network_multiplier": _no("a LoRA multiplier per dataset", 1.0),
    "validation_seed": _no(_VALIDATION),
    "validation_split": _no(_VALIDATION, 0.0),
}
