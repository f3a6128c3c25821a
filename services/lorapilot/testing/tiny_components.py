"""Factories for the tiny, randomly initialised parts that the tiny pipelines are made of.

Each factory keeps the architecture of the real component (block types, embedding kinds, latent
channels, the VAE's 8× downscale) and shrinks only widths and depths, so shapes that code derives
from configs stay meaningful. Every factory seeds torch itself: a part's weights depend only on the
seed and its own settings, never on what was built before it.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from lorapilot.testing.tiny_tokenizers import CLIP_BOS, CLIP_EOS, CLIP_MAX_LENGTH, clip_vocab_and_merges

LATENT_SIZE = 8  # latent side at the tiny models' default 64×64 resolution


def clip_text_encoder(
    seed: int, *, hidden: int = 32, projection: int | None = None, act: str = "quick_gelu"
) -> CLIPTextModel:
    """CLIP text encoder; with `projection` the `WithProjection` variant SDXL/SD3 pool from.

    `act="gelu"` marks OpenCLIP-trained encoders (SD2, OpenCLIP-G), as in their real configs.
    """
    vocab, _ = clip_vocab_and_merges()
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=CLIP_MAX_LENGTH,
        hidden_act=act,
        projection_dim=projection or hidden,
        bos_token_id=vocab[CLIP_BOS],
        eos_token_id=vocab[CLIP_EOS],
        pad_token_id=vocab[CLIP_EOS],
    )
    torch.manual_seed(seed)
    model_class = CLIPTextModelWithProjection if projection else CLIPTextModel
    return model_class(config).eval()


def t5_text_encoder(seed: int, *, width: int = 128, vocab_size: int) -> T5EncoderModel:
    """T5 v1.1-style encoder (gated GELU), as the real `t5-v1_1-xxl` that SD3 and FLUX use."""
    config = T5Config(
        vocab_size=vocab_size,
        d_model=width,
        d_kv=width // 4,
        d_ff=width * 2,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(seed)
    return T5EncoderModel(config).eval()


def vae(
    seed: int, *, latent_channels: int, scaling_factor: float, shift_factor: float | None = None
) -> AutoencoderKL:
    """AutoencoderKL with four blocks, so latents are 1/8 of the image side like every real VAE.

    SD3 and FLUX VAEs (16 latent channels, a shift factor) have no quant convs; SD's have them.
    """
    flow_vae = shift_factor is not None
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        latent_channels=latent_channels,
        sample_size=LATENT_SIZE * 8,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=not flow_vae,
        use_post_quant_conv=not flow_vae,
        force_upcast=True,
    ).eval()


def sd_unet(seed: int, *, cross_attention_dim: int, v2: bool = False) -> UNet2DConditionModel:
    """SD1.5-style UNet (conv proj_in); `v2=True` gives SD2's linear proj_in and upcast attention."""
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=2,
        attention_head_dim=(2, 4),
        cross_attention_dim=cross_attention_dim,
        use_linear_projection=v2,
        upcast_attention=v2,
    ).eval()


def sdxl_unet(seed: int, *, cross_attention_dim: int, pooled_dim: int) -> UNet2DConditionModel:
    """SDXL-style UNet: first block without attention, deeper transformers lower down, text_time embedding."""
    time_embed_dim = 8
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=2,
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        cross_attention_dim=cross_attention_dim,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        # pooled text embedding + six micro-conditioning numbers (sizes, crop, target size)
        projection_class_embeddings_input_dim=pooled_dim + 6 * time_embed_dim,
    ).eval()


def sd3_transformer(
    seed: int,
    *,
    joint_attention_dim: int,
    pooled_dim: int,
    qk_norm: str | None = None,
    dual_attention_layers: tuple[int, ...] = (),
) -> SD3Transformer2DModel:
    """SD3-medium-style MMDiT; position embeddings cover latents up to 64×64 (512 px). SD3.5 adds
    `qk_norm`, SD3.5 Medium also MMDiT-X's `dual_attention_layers`."""
    torch.manual_seed(seed)
    return SD3Transformer2DModel(
        sample_size=LATENT_SIZE,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=joint_attention_dim,
        caption_projection_dim=32,  # the transformer's inner width: heads × head dim
        pooled_projection_dim=pooled_dim,
        pos_embed_max_size=32,
        qk_norm=qk_norm,
        dual_attention_layers=dual_attention_layers,
    ).eval()


def flux_transformer(
    seed: int, *, joint_attention_dim: int, pooled_dim: int, guidance: bool
) -> FluxTransformer2DModel:
    """FLUX.1-style transformer; dev embeds the guidance scale, schnell does not."""
    torch.manual_seed(seed)
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,  # 16 latent channels packed 2×2
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=joint_attention_dim,
        pooled_projection_dim=pooled_dim,
        guidance_embeds=guidance,
        axes_dims_rope=(4, 6, 6),  # must add up to attention_head_dim
    ).eval()


def sd_scheduler(prediction_type: str = "epsilon") -> EulerDiscreteScheduler:
    """The SD1.5/SD2/SDXL noise schedule: 1000 steps of scaled-linear betas."""
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
        interpolation_type="linear",
        timestep_spacing="leading",
        steps_offset=1,
    )


def flow_scheduler(*, shift: float, dynamic: bool = False) -> FlowMatchEulerDiscreteScheduler:
    """Flow-matching schedule; `dynamic` shifts by resolution like FLUX.1-dev's real config."""
    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=shift,
        use_dynamic_shifting=dynamic,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
