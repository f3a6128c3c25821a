"""The kohya table covers every option sd-scripts documents, and its defaults never stop a run.

The lists below are sd-scripts' option names with their argparse defaults, per parser function
(main branch, late 2026): `library/train_util.py`, `train_network.py`, `library/config_util.py`,
`library/flux_train_utils.py`, `library/sd3_train_utils.py`, `library/custom_train_functions.py`,
`library/deepspeed_utils.py`, `library/sai_model_spec.py`, `library/utils.py`. Removing a row from
the reader's table fails a test here.
"""

from __future__ import annotations

import pytest

from lorapilot.spec.draft import Draft, Ignored, Rule, Unsupported
from lorapilot.spec.readers import kohya, kohya_args, kohya_dataset

LOGGING = {"console_log_level": None, "console_log_file": None, "console_log_simple": False}
SD_MODELS = {
    "v2": False,
    "v_parameterization": False,
    "pretrained_model_name_or_path": None,
    "tokenizer_cache_dir": None,
}
MODEL_SPEC = {
    f"metadata_{name}": None
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
}
DATASET_ARGS = {
    "train_data_dir": None,
    "cache_info": False,
    "shuffle_caption": False,
    "caption_separator": ",",
    "caption_extension": ".caption",
    "caption_extention": None,
    "keep_tokens": 0,
    "keep_tokens_separator": "",
    "secondary_separator": None,
    "enable_wildcard": False,
    "caption_prefix": None,
    "caption_suffix": None,
    "color_aug": False,
    "flip_aug": False,
    "face_crop_aug_range": None,
    "random_crop": False,
    "debug_dataset": False,
    "resolution": None,
    "cache_latents": False,
    "vae_batch_size": 1,
    "cache_latents_to_disk": False,
    "skip_cache_check": False,
    "enable_bucket": False,
    "min_bucket_reso": 256,
    "max_bucket_reso": 1024,
    "bucket_reso_steps": 64,
    "bucket_no_upscale": False,
    "resize_interpolation": None,
    "token_warmup_min": 1,
    "token_warmup_step": 0,
    "alpha_mask": False,
    "dataset_class": None,
    "caption_dropout_rate": 0.0,
    "caption_dropout_every_n_epochs": 0,
    "caption_tag_dropout_rate": 0.0,
    "reg_data_dir": None,
    "in_json": None,
    "dataset_repeats": 1,
}
TRAINING_ARGS = {
    "output_dir": None,
    "output_name": None,
    "huggingface_repo_id": None,
    "huggingface_repo_type": None,
    "huggingface_path_in_repo": None,
    "huggingface_token": None,
    "huggingface_repo_visibility": None,
    "save_state_to_huggingface": False,
    "resume_from_huggingface": False,
    "async_upload": False,
    "save_precision": None,
    "save_every_n_epochs": None,
    "save_every_n_steps": None,
    "save_n_epoch_ratio": None,
    "save_last_n_epochs": None,
    "save_last_n_epochs_state": None,
    "save_last_n_steps": None,
    "save_last_n_steps_state": None,
    "save_state": False,
    "save_state_on_train_end": False,
    "resume": None,
    "train_batch_size": 1,
    "max_token_length": None,
    "mem_eff_attn": False,
    "torch_compile": False,
    "dynamo_backend": "inductor",
    "xformers": False,
    "sdpa": False,
    "vae": None,
    "max_train_steps": 1600,
    "max_train_epochs": None,
    "max_data_loader_n_workers": 8,
    "persistent_data_loader_workers": False,
    "seed": None,
    "gradient_checkpointing": False,
    "gradient_accumulation_steps": 1,
    "mixed_precision": "no",
    "full_fp16": False,
    "full_bf16": False,
    "fp8_base": False,
    "ddp_timeout": None,
    "ddp_gradient_as_bucket_view": False,
    "ddp_static_graph": False,
    "clip_skip": None,
    "logging_dir": None,
    "log_with": None,
    "log_prefix": None,
    "log_tracker_name": None,
    "wandb_run_name": None,
    "log_tracker_config": None,
    "wandb_api_key": None,
    "log_config": False,
    "noise_offset": None,
    "noise_offset_random_strength": False,
    "multires_noise_iterations": None,
    "ip_noise_gamma": None,
    "ip_noise_gamma_random_strength": False,
    "multires_noise_discount": 0.3,
    "adaptive_noise_scale": None,
    "zero_terminal_snr": False,
    "min_timestep": None,
    "max_timestep": None,
    "loss_type": "l2",
    "huber_schedule": "snr",
    "huber_c": 0.1,
    "huber_scale": 1.0,
    "lowram": False,
    "highvram": False,
    "sample_every_n_steps": None,
    "sample_at_first": False,
    "sample_every_n_epochs": None,
    "sample_prompts": None,
    "sample_sampler": "ddim",
    "config_file": None,
    "output_config": False,
    "prior_loss_weight": 1.0,
}
MASKED_LOSS = {"conditioning_data_dir": None, "masked_loss": False}
DEEPSPEED = {
    "deepspeed": False,
    "zero_stage": 2,
    "offload_optimizer_device": None,
    "offload_optimizer_nvme_path": None,
    "offload_param_device": None,
    "offload_param_nvme_path": None,
    "zero3_init_flag": False,
    "zero3_save_16bit_model": False,
    "fp16_master_weights_and_gradients": False,
}
OPTIMIZER = {
    "optimizer_type": "",
    "use_8bit_adam": False,
    "use_lion_optimizer": False,
    "learning_rate": 2.0e-6,
    "max_grad_norm": 1.0,
    "optimizer_args": None,
    "lr_scheduler_type": "",
    "lr_scheduler_args": None,
    "lr_scheduler": "constant",
    "lr_warmup_steps": 0,
    "lr_decay_steps": 0,
    "lr_scheduler_num_cycles": 1,
    "lr_scheduler_power": 1.0,
    "fused_backward_pass": False,
    "lr_scheduler_timescale": None,
    "lr_scheduler_min_lr_ratio": None,
}
CONFIG = {"dataset_config": None}
CUSTOM_TRAIN = {
    "min_snr_gamma": None,
    "scale_v_pred_loss_like_noise_pred": False,
    "v_pred_like_loss": None,
    "debiased_estimation_loss": False,
    "weighted_captions": False,
}
TRAIN_NETWORK = {
    "cpu_offload_checkpointing": False,
    "no_metadata": False,
    "save_model_as": "safetensors",
    "unet_lr": None,
    "text_encoder_lr": None,
    "fp8_base_unet": False,
    "network_weights": None,
    "network_module": None,
    "network_dim": None,
    "network_alpha": 1.0,
    "network_dropout": None,
    "network_args": None,
    "network_train_unet_only": False,
    "network_train_text_encoder_only": False,
    "training_comment": None,
    "dim_from_weights": False,
    "scale_weight_norms": None,
    "base_weights": None,
    "base_weights_multiplier": None,
    "no_half_vae": False,
    "skip_until_initial_step": False,
    "initial_epoch": None,
    "initial_step": None,
    "validation_seed": None,
    "validation_split": 0.0,
    "validate_every_n_steps": None,
    "validate_every_n_epochs": None,
    "max_validation_steps": None,
    # LoRA+ as top-level options (sd-scripts also reads them from network_args)
    "loraplus_lr_ratio": None,
    "loraplus_unet_lr_ratio": None,
    "loraplus_text_encoder_lr_ratio": None,
}
SDXL = {"cache_text_encoder_outputs": False, "cache_text_encoder_outputs_to_disk": False}
DIT = {
    "cache_text_encoder_outputs": False,
    "cache_text_encoder_outputs_to_disk": False,
    "text_encoder_batch_size": None,
    "disable_mmap_load_safetensors": False,
    "weighting_scheme": "uniform",
    "logit_mean": 0.0,
    "logit_std": 1.0,
    "mode_scale": 1.29,
    "blocks_to_swap": None,
}
FLUX = {
    "clip_l": None,
    "t5xxl": None,
    "ae": None,
    "controlnet_model_name_or_path": None,
    "t5xxl_max_token_length": None,
    "apply_t5_attn_mask": False,
    "guidance_scale": 3.5,
    "timestep_sampling": "sigma",
    "sigmoid_scale": 1.0,
    "model_prediction_type": "raw",  # sd-scripts' default is sigma_scaled, which LoRA Pilot refuses
    "discrete_flow_shift": 3.0,
    "model_type": "flux",
    "split_mode": False,
}
SD3 = {
    "clip_l": None,
    "clip_g": None,
    "t5xxl": None,
    "save_clip": False,
    "save_t5xxl": False,
    "t5xxl_device": None,
    "t5xxl_dtype": None,
    "t5xxl_max_token_length": 256,
    "apply_lg_attn_mask": False,
    "apply_t5_attn_mask": False,
    "clip_l_dropout_rate": 0.0,
    "clip_g_dropout_rate": 0.0,
    "t5_dropout_rate": 0.0,
    "pos_emb_random_crop_rate": 0.0,
    "enable_scaled_pos_embed": False,
    "training_shift": 1.0,
}
ARGUMENTS = {
    "add_logging_arguments": LOGGING,
    "add_sd_models_arguments": SD_MODELS,
    "add_model_spec_arguments": MODEL_SPEC,
    "add_dataset_arguments": DATASET_ARGS,
    "add_training_arguments": TRAINING_ARGS,
    "add_masked_loss_arguments": MASKED_LOSS,
    "add_deepspeed_arguments": DEEPSPEED,
    "add_optimizer_arguments": OPTIMIZER,
    "add_config_arguments": CONFIG,
    "add_custom_train_arguments": CUSTOM_TRAIN,
    "train_network.setup_parser": TRAIN_NETWORK,
    "add_sdxl_training_arguments": SDXL,
    "add_dit_training_arguments": DIT,
    "add_flux_train_arguments": FLUX,
    "add_sd3_training_arguments": SD3,
}
# library/config_util.py: the dataset-config schema (subset, dropout, DreamBooth, fine-tuning,
# ControlNet and dataset keys) with the defaults of its *Params dataclasses.
DATASET_CONFIG = {
    "image_dir": "images",
    "num_repeats": 1,
    "shuffle_caption": False,
    "caption_separator": ",",
    "keep_tokens": 0,
    "keep_tokens_separator": "",
    "secondary_separator": None,
    "enable_wildcard": False,
    "color_aug": False,
    "flip_aug": False,
    "face_crop_aug_range": None,
    "random_crop": False,
    "caption_prefix": None,
    "caption_suffix": None,
    "caption_dropout_rate": 0.0,
    "caption_dropout_every_n_epochs": 0,
    "caption_tag_dropout_rate": 0.0,
    "token_warmup_min": 1,
    "token_warmup_step": 0,
    "custom_attributes": None,
    "resize_interpolation": None,
    "is_reg": False,
    "class_tokens": None,
    "caption_extension": ".caption",
    "cache_info": False,
    "alpha_mask": False,
    "metadata_file": None,
    "conditioning_data_dir": None,
    "batch_size": 1,
    "enable_bucket": False,
    "min_bucket_reso": 256,
    "max_bucket_reso": 1024,
    "bucket_reso_steps": 64,
    "bucket_no_upscale": False,
    "resolution": 512,
    "network_multiplier": 1.0,
    "validation_seed": None,
    "validation_split": 0.0,
}
_UNIQUE = {(name, repr(value)): value for group in ARGUMENTS.values() for name, value in group.items()}
OPTIONS = [(name, value) for (name, _), value in sorted(_UNIQUE.items())]


def _kind(rule: Rule) -> str:
    if isinstance(rule, Ignored):
        return "notice"
    if isinstance(rule, Unsupported):
        return "refused"
    return "honoured"


def sizes(table: dict[str, Rule]) -> dict[str, int]:
    """Rows per kind: honoured (mapped or handled), notice (Ignored), refused (Unsupported)."""
    counts = {"honoured": 0, "notice": 0, "refused": 0}
    for rule in table.values():
        counts[_kind(rule)] += 1
    return counts


def _stoppers(draft: Draft) -> list[str]:
    return [
        f"{i.field}: {i.message}"
        for i in draft.issues
        if i.message == "unknown key" or i.message.startswith("not supported")
    ]


@pytest.mark.parametrize("group", sorted(ARGUMENTS))
def test_every_sd_scripts_argument_has_a_row(group):
    assert sorted(set(ARGUMENTS[group]) - set(kohya_args.TABLE)) == []


def test_every_dataset_config_key_has_a_row():
    assert sorted(set(DATASET_CONFIG) - set(kohya_dataset.table())) == []


@pytest.mark.parametrize(("name", "default"), OPTIONS, ids=[name for name, _ in OPTIONS])
def test_an_argument_at_sd_scripts_default_never_stops_a_run(name, default):
    draft = Draft(file="config.toml")
    kohya.read({name: default}, draft)
    assert _stoppers(draft) == []


# Where config_util's schema allows each key: subsets only, or [general] and [[datasets]] only;
# every other key may sit at any level.
SUBSET_LEVEL = {"image_dir", "is_reg", "alpha_mask", "metadata_file", "conditioning_data_dir"}
DATASET_LEVEL = {
    "batch_size",
    "enable_bucket",
    "min_bucket_reso",
    "max_bucket_reso",
    "bucket_reso_steps",
    "bucket_no_upscale",
    "resolution",
    "network_multiplier",
    "validation_seed",
    "validation_split",
}


def _placements(name: str) -> list[dict]:
    value, subset = DATASET_CONFIG[name], {"image_dir": "images"}
    if name in SUBSET_LEVEL:
        return [{"datasets": [{"subsets": [{**subset, name: value}]}]}]
    placed = [
        {"general": {name: value}, "datasets": [{"subsets": [subset]}]},
        {"datasets": [{name: value, "subsets": [subset]}]},
    ]
    if name not in DATASET_LEVEL:
        placed.append({"datasets": [{"subsets": [{**subset, name: value}]}]})
    return placed


@pytest.mark.parametrize("name", sorted(DATASET_CONFIG))
def test_a_dataset_config_key_at_sd_scripts_default_never_stops_a_run(name):
    for doc in _placements(name):
        draft = Draft(file="dataset.toml")
        kohya.read(doc, draft)
        assert _stoppers(draft) == [], doc


def test_a_refused_option_is_refused_by_name_when_it_would_change_training():
    draft = Draft(file="config.toml")
    kohya.read({"color_aug": True, "loss_type": "huber", "caption_separator": ";"}, draft)
    assert sorted(i.field for i in draft.issues) == ["caption_separator", "color_aug", "loss_type"]
    assert all(i.message.startswith("not supported by LoRA Pilot") for i in draft.issues)


def test_table_sizes_can_be_counted():
    args, dataset = sizes(kohya_args.TABLE), sizes(kohya_dataset.table())
    assert sum(args.values()) == len(kohya_args.TABLE) and min(args.values()) > 0
    assert sum(dataset.values()) == len(kohya_dataset.table()) and min(dataset.values()) > 0
