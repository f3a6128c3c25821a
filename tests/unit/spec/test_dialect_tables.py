"""Contract: every option ai-toolkit and diffusion-pipe document is a row of the reader's tables,
and that option at the trainer's own default reads without an error.

The lists below are the options' names and defaults as the trainers define them (ai-toolkit's
`toolkit/config_modules.py` config classes and its web UI's job types; diffusion-pipe's
`examples/main_example.toml`, `examples/dataset.toml`, `docs/supported_models.md`, `train.py` and
`utils/dataset.py`), written here as plain data: removing a row from a reader fails this test.
"""

from __future__ import annotations

from typing import Any

import pytest

from lorapilot.spec.draft import Draft
from lorapilot.spec.readers import aitoolkit, diffusion_pipe
from lorapilot.spec.readers.tables import KINDS, census

N = None  # "unset" in the trainers' own defaults

AITK_JOB = {"job": "extension", "config": {}, "meta": {"name": "[name]", "version": "1.0"}}
AITK_PROCESS = {
    "type": "sd_trainer",
    "training_folder": "output",
    "sqlite_db_path": "./aitk_db.db",
    "device": "cuda",
    "trigger_word": N,
    "performance_log_every": 10,
    "network": {},
    "save": {},
    "datasets": [],
    "train": {},
    "model": {},
    "sample": {},
    "logging": {},
    "monitoring": {},
    "slider": N,
}
AITK_NETWORK = {
    "type": "lora",
    "rank": 16,
    "linear": 16,
    "linear_alpha": 1.0,
    "alpha": 1.0,
    "conv": N,
    "conv_alpha": N,
    "dropout": N,
    "network_kwargs": {},
    "lorm": N,
    "transformer_only": True,
    "lokr_full_rank": False,
    "lokr_factor": -1,
    "split_multistage_loras": True,
}
AITK_NETWORK_KWARGS = {"only_if_contains": N, "ignore_if_contains": []}
AITK_SAVE = {
    "save_every": 1000,
    "dtype": "float16",
    "max_step_saves_to_keep": 5,
    "save_format": "safetensors",
    "push_to_hub": False,
    "hf_repo_id": N,
    "hf_private": False,
}
AITK_SAMPLE = {
    "sampler": "ddpm",
    "sample_every": 100,
    "width": 512,
    "height": 512,
    "neg": False,
    "seed": 0,
    "walk_seed": False,
    "guidance_scale": 7,
    "sample_steps": 20,
    "network_multiplier": 1,
    "guidance_rescale": 0.0,
    "format": "jpg",
    "adapter_conditioning_scale": 1.0,
    "refiner_start_at": 0.5,
    "extra_values": [],
    "num_frames": 1,
    "fps": 16,
    "prompts": [],
    "samples": [],
}
AITK_SAMPLE_ITEM = {
    "prompt": "a photo",
    "width": 512,
    "height": 512,
    "neg": "",
    "seed": N,
    "guidance_scale": 7,
    "sample_steps": 20,
    "fps": 16,
    "num_frames": 1,
    "ctrl_img": N,
    "ctrl_idx": 0,
    "network_multiplier": 1.0,
    "ctrl_img_1": N,
    "ctrl_img_2": N,
    "ctrl_img_3": N,
}
AITK_DATASET = {
    "type": "image",
    "folder_path": "/workspace/datasets/images/person",
    "dataset_path": N,
    "default_caption": N,
    "trigger_word": N,
    "random_triggers": [],
    "random_triggers_max": 1,
    "caption_ext": ".txt",
    "caption_type": ".txt",
    "random_scale": False,
    "random_crop": False,
    "resolution": 512,
    "scale": 1.0,
    "buckets": True,
    "bucket_tolerance": 64,
    "is_reg": False,
    "network_weight": 1.0,
    "token_dropout_rate": 0.0,
    "shuffle_tokens": False,
    "caption_dropout_rate": 0.0,
    "keep_tokens": 0,
    "flip_x": False,
    "flip_y": False,
    "augments": [],
    "control_path": N,
    "control_path_1": N,
    "control_path_2": N,
    "control_path_3": N,
    "control_transparent_color": [0, 0, 0],
    "inpaint_path": N,
    "full_size_control_images": True,
    "alpha_mask": False,
    "mask_path": N,
    "unconditional_path": N,
    "invert_mask": False,
    "mask_min_value": 0.0,
    "poi": N,
    "use_short_captions": False,
    "num_repeats": 1,
    "cache_latents": False,
    "cache_latents_to_disk": False,
    "cache_clip_vision_to_disk": False,
    "cache_text_embeddings": False,
    "standardize_images": False,
    "augmentations": N,
    "shuffle_augmentations": False,
    "guidance_type": "targeted",
    "clip_image_path": N,
    "clip_image_from_same_folder": False,
    "clip_image_augmentations": N,
    "clip_image_shuffle_augmentations": False,
    "replacements": [],
    "loss_multiplier": 1.0,
    "num_workers": 2,
    "prefetch_factor": 2,
    "extra_values": [],
    "square_crop": False,
    "replay_transforms": True,
    "num_frames": 1,
    "shrink_video_to_frames": True,
    "fps": 16,
    "debug": False,
    "controls": [],
    "fast_image_size": False,
    "do_i2v": True,
}
AITK_TRAIN = {
    "noise_scheduler": "ddpm",
    "content_or_style": "balanced",
    "steps": 1000,
    "lr": 1e-6,
    "unet_lr": 1e-6,
    "text_encoder_lr": 1e-6,
    "refiner_lr": 1e-6,
    "embedding_lr": 1e-6,
    "adapter_lr": 1e-6,
    "optimizer": "adamw",
    "optimizer_params": {},
    "lr_scheduler": "constant",
    "lr_scheduler_params": {},
    "min_denoising_steps": 0,
    "max_denoising_steps": 999,
    "batch_size": 1,
    "dtype": "fp32",
    "xformers": False,
    "sdp": False,
    "train_unet": True,
    "train_text_encoder": False,
    "train_refiner": True,
    "train_turbo": False,
    "show_turbo_outputs": False,
    "min_snr_gamma": N,
    "snr_gamma": N,
    "learnable_snr_gos": False,
    "noise_offset": 0.0,
    "skip_first_sample": False,
    "force_first_sample": False,
    "gradient_checkpointing": True,
    "weight_jitter": 0.0,
    "merge_network_on_save": False,
    "max_grad_norm": 1.0,
    "start_step": N,
    "free_u": False,
    "adapter_assist_name_or_path": N,
    "adapter_assist_type": "t2i",
    "noise_multiplier": 1.0,
    "target_noise_multiplier": 1.0,
    "random_noise_multiplier": 0.0,
    "random_noise_shift": 0.0,
    "img_multiplier": 1.0,
    "noisy_latent_multiplier": 1.0,
    "latent_multiplier": 1.0,
    "negative_prompt": N,
    "max_negative_prompts": 1,
    "reg_weight": 1.0,
    "num_train_timesteps": 1000,
    "adaptive_scaling_factor": False,
    "prompt_dropout_prob": 0.0,
    "match_noise_norm": False,
    "gradient_accumulation_steps": 1,
    "gradient_accumulation": 1,
    "short_and_long_captions": False,
    "short_and_long_captions_encoder_split": False,
    "single_item_batching": False,
    "match_adapter_assist": False,
    "match_adapter_chance": 0.0,
    "loss_target": "noise",
    "inverted_mask_prior": False,
    "inverted_mask_prior_multiplier": 0.5,
    "diff_output_preservation": False,
    "diff_output_preservation_multiplier": 1.0,
    "diff_output_preservation_class": "",
    "blank_prompt_preservation": False,
    "blank_prompt_preservation_multiplier": 1.0,
    "standardize_images": False,
    "standardize_latents": False,
    "dynamic_noise_offset": False,
    "do_cfg": False,
    "do_random_cfg": False,
    "cfg_scale": 1.0,
    "max_cfg_scale": 1.0,
    "cfg_rescale": N,
    "correct_pred_norm": False,
    "correct_pred_norm_multiplier": 1.0,
    "loss_type": "mse",
    "pred_scaler": 1.0,
    "prompt_saturation_chance": 0.0,
    "do_prior_divergence": False,
    "ema_config": N,
    "target_norm_std": N,
    "target_norm_std_value": 1.0,
    "timestep_type": "sigmoid",
    "next_sample_timesteps": 8,
    "linear_timesteps": False,
    "linear_timesteps2": False,
    "disable_sampling": False,
    "unload_text_encoder": False,
    "cache_text_embeddings": False,
    "do_paramiter_swapping": False,
    "paramiter_swapping_factor": 0.1,
    "bypass_guidance_embedding": False,
    "latent_feature_extractor_path": N,
    "latent_feature_loss_weight": 1.0,
    "diffusion_feature_extractor_path": N,
    "diffusion_feature_extractor_weight": 1.0,
    "optimal_noise_pairing_samples": 1,
    "force_consistent_noise": False,
    "blended_blur_noise": False,
    "do_guidance_loss": False,
    "guidance_loss_target": 3.0,
    "unconditional_prompt": "",
    "switch_boundary_every": 1,
    "auto_scale_batch_size": False,
    "min_batch_size": 1,
    "max_batch_size": 1,
    "batch_size_warmup_steps": 0,
    "do_differential_guidance": False,
    "differential_guidance_scale": 3.0,
}
AITK_EMA = {"use_ema": False, "ema_decay": 0.999, "use_feedback": False, "param_multiplier": 1.0}
AITK_MODEL = {
    "name_or_path": "/workspace/models/diffusers/tiny-sdxl",
    "arch": "sdxl",
    "is_v2": False,
    "is_xl": False,
    "is_pixart": False,
    "is_pixart_sigma": False,
    "is_auraflow": False,
    "is_v3": False,
    "is_flux": False,
    "is_lumina2": False,
    "use_flux_cfg": False,
    "is_ssd": False,
    "is_vega": False,
    "is_v_pred": False,
    "dtype": "float16",
    "vae_path": N,
    "refiner_name_or_path": N,
    "refiner_start_at": 0.5,
    "lora_path": N,
    "assistant_lora_path": N,
    "inference_lora_path": N,
    "latent_space_version": N,
    "use_text_encoder_1": True,
    "use_text_encoder_2": True,
    "experimental_xl": False,
    "text_encoder_bits": 16,
    "unet_path": N,
    "unet_sample_size": N,
    "vae_device": N,
    "vae_dtype": "float16",
    "te_device": N,
    "te_dtype": "float16",
    "quantize": False,
    "quantize_te": False,
    "qtype": "qfloat8",
    "qtype_te": "qfloat8",
    "low_vram": False,
    "attn_masking": False,
    "ignore_if_contains": N,
    "only_if_contains": N,
    "quantize_kwargs": {},
    "split_model_over_gpus": False,
    "split_model_other_module_param_count_scale": 0.3,
    "te_name_or_path": N,
    "extras_name_or_path": N,
    "accuracy_recovery_adapter": N,
    "compile": False,
    "model_kwargs": {},
    "layer_offloading": False,
    "layer_offloading_transformer_percent": 1.0,
    "layer_offloading_text_encoder_percent": 1.0,
}

DP_MAIN = {
    "output_dir": "/workspace/outputs/dp",
    "eval_datasets": [],
    "epochs": 1000,
    "max_steps": 5000,
    "micro_batch_size_per_gpu": 1,
    "image_micro_batch_size_per_gpu": 1,
    "pipeline_stages": 1,
    "gradient_accumulation_steps": 1,
    "gradient_clipping": 1.0,
    "warmup_steps": 0,
    "force_constant_lr": N,
    "lr_scheduler": "constant",
    "blocks_to_swap": 0,
    "pseudo_huber_c": N,
    "eval_every_n_epochs": N,
    "eval_every_n_steps": N,
    "eval_every_n_examples": N,
    "eval_before_first_step": True,
    "eval_micro_batch_size_per_gpu": 1,
    "image_eval_micro_batch_size_per_gpu": 1,
    "eval_gradient_accumulation_steps": 1,
    "disable_block_swap_for_eval": False,
    "save_every_n_epochs": 2,
    "save_every_n_steps": 100,
    "save_every_n_examples": N,
    "checkpoint_every_n_epochs": 1,
    "checkpoint_every_n_minutes": 120,
    "activation_checkpointing": False,
    "reentrant_activation_checkpointing": False,
    "upload_hf_from_epoch": N,
    "huggingface_repo": N,
    "partition_method": "parameters",
    "partition_split": N,
    "save_dtype": "bfloat16",
    "caching_batch_size": 1,
    "map_num_proc": 8,
    "compile": False,
    "steps_per_print": 1,
    "logging_steps": 1,
    "video_clip_mode": "single_beginning",
    "x_axis_examples": False,
    "resume_from_checkpoint": False,
    "regenerate_cache": False,
}
DP_MODEL = {
    "type": "sdxl",
    "diffusers_path": "/workspace/models/diffusers/tiny-sdxl",
    "checkpoint_path": "/workspace/models/diffusers/tiny-sdxl",
    "transformer_path": N,
    "ckpt_path": N,
    "vae_path": N,
    "llm_path": N,
    "clip_path": N,
    "single_file_path": N,
    "dtype": "bfloat16",
    "transformer_dtype": "bfloat16",
    "timestep_sample_method": "logit_normal",
    "sigmoid_scale": 1.0,
    "shift": N,
    "flux_shift": False,
    "guidance": 1.0,
    "bypass_guidance_embedding": False,
    "unet_lr": 2e-5,
    "text_encoder_1_lr": 2e-5,
    "text_encoder_2_lr": 2e-5,
    "v_pred": False,
    "min_snr_gamma": N,
    "debiased_estimation_loss": False,
}
DP_ADAPTER = {
    "type": "lora",
    "rank": 32,
    "dtype": "bfloat16",
    "dropout": 0.0,
    "init_from_existing": N,
    "fuse_adapters": N,
    "decompose_factor": -1,
    "rank_dropout": 0.0,
}
DP_OPTIMIZER = {
    "type": "adamw_optimi",
    "lr": 2e-5,
    "betas": [0.9, 0.99],
    "weight_decay": 0.01,
    "eps": 1e-8,
    "stabilize": False,
    "gradient_release": False,
}
DP_MONITORING = {"enable_wandb": False, "wandb_api_key": "", "wandb_tracker_name": "", "wandb_run_name": ""}
DP_DATASET = {
    "resolutions": [512],
    "enable_ar_bucket": False,
    "min_ar": 0.5,
    "max_ar": 2.0,
    "num_ar_buckets": 7,
    "ar_buckets": N,
    "size_buckets": N,
    "frame_buckets": [1],
    "shuffle_tags": False,
    "caption_prefix": "",
    "num_repeats": 1,
    "cache_shuffle_num": 0,
    "cache_shuffle_delimiter": ", ",
    "skip_empty_caption": True,
}
DP_DIRECTORY = {
    "path": "/workspace/datasets/images/person",
    "num_repeats": 1,
    "resolutions": [512],
    "enable_ar_bucket": False,
    "min_ar": 0.5,
    "max_ar": 2.0,
    "num_ar_buckets": 7,
    "ar_buckets": N,
    "size_buckets": N,
    "frame_buckets": [1],
    "mask_path": N,
    "shuffle_tags": False,
    "caption_prefix": "",
}


def _aitk_doc(section: str, key: str, value: Any) -> dict[str, Any]:
    """A whole ai-toolkit job with `key: value` in `section`."""
    process: dict[str, Any] = {"type": "sd_trainer"}
    job: dict[str, Any] = {"job": "extension", "config": {"name": "x", "process": [process]}}
    if section == "job":
        job[key] = job.get(key, value)  # config holds the process
    elif section == "process":
        process[key] = value
    elif section == "datasets[]":
        process["datasets"] = [{key: value}]
    elif section == "sample.samples[]":
        process["sample"] = {"samples": [{"prompt": "a photo", key: value}]}
    elif section == "train.ema_config":
        process["train"] = {"ema_config": {key: value}}
    elif section == "network.network_kwargs":
        process["network"] = {"network_kwargs": {key: value}}
    else:
        process[section] = {key: value}
    return job


def _dp_doc(section: str, key: str, value: Any) -> dict[str, Any]:
    """A diffusion-pipe main config (or, for dataset keys, a dataset file) with `key: value`."""
    if section == "dataset":
        return {key: value, "directory": [{"path": "/workspace/datasets/images/person"}]}
    if section == "dataset.directory[]":
        folder = "/workspace/datasets/images/person"
        return {"resolutions": [512], "directory": [{"path": folder, key: value}]}
    doc: dict[str, Any] = {
        "model": {"type": "sdxl", "dtype": "bfloat16"},
        "adapter": {"rank": 4},
        "optimizer": {"type": "adamw_optimi", "lr": 2e-5},
    }
    if section == "main":
        doc[key] = value
    else:
        doc[section] = {**doc.get(section, {}), key: value}
    return doc


AITK_CASES = {
    "job": AITK_JOB,
    "process": AITK_PROCESS,
    "network": AITK_NETWORK,
    "network.network_kwargs": AITK_NETWORK_KWARGS,
    "save": AITK_SAVE,
    "datasets[]": AITK_DATASET,
    "train": AITK_TRAIN,
    "train.ema_config": AITK_EMA,
    "model": AITK_MODEL,
    "sample": AITK_SAMPLE,
    "sample.samples[]": AITK_SAMPLE_ITEM,
}
DP_CASES = {
    "main": DP_MAIN,
    "model": DP_MODEL,
    "adapter": DP_ADAPTER,
    "optimizer": DP_OPTIMIZER,
    "monitoring": DP_MONITORING,
    "dataset": DP_DATASET,
    "dataset.directory[]": DP_DIRECTORY,
}
CASES = [
    (reader, section, key, default)
    for reader, cases in ((aitoolkit, AITK_CASES), (diffusion_pipe, DP_CASES))
    for section, options in cases.items()
    for key, default in options.items()
]


def _id(case: tuple) -> str:
    reader, section, key, _ = case
    return f"{reader.DIALECT}:{section}.{key}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_documented_option_is_a_row_and_its_default_reads_cleanly(case):
    reader, section, key, default = case
    assert key in reader.TABLES[section], f"{_id(case)} is missing from the reader's {section} table"
    doc = (_aitk_doc if reader is aitoolkit else _dp_doc)(section, key, default)
    draft = Draft(file="config")
    reader.read(doc, draft)
    named = [i for i in draft.issues if i.field.split(".")[-1].split("[")[0] == key]
    mine = named + [i for i in draft.issues if i.message == "unknown key"]
    assert mine == [], f"{_id(case)} at its default ({default!r}): {mine}"


@pytest.mark.parametrize("reader", [aitoolkit, diffusion_pipe], ids=lambda r: r.DIALECT)
def test_census_counts_every_row_once(reader):
    counts = census(reader.TABLES)
    assert set(counts) == set(KINDS)
    assert sum(counts.values()) == sum(len(table) for table in reader.TABLES.values())
    assert all(counts[kind] > 0 for kind in KINDS)
