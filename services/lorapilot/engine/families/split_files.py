"""Components of FLUX.1 and SD3 models kept as separate single files, as ComfyUI users have them.

A transformer file in the original layout, `clip_l` (and SD3's `clip_g`), `t5xxl` (fp16, or fp8
e4m3fn upcast here to the compute dtype) and the `ae`/VAE file carry weights only; each module's
config is read off the tensor shapes, and the tokenizers come from a folder named like the file
beside it (`t5xxl_fp16/` beside `t5xxl_fp16.safetensors`) or, for the released vocabularies, from
data the project carries (CLIP) or ComfyUI's copy (T5). Nothing is fetched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import (
    AutoTokenizer,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    PreTrainedTokenizerBase,
    T5Config,
    T5EncoderModel,
)

from lorapilot.engine.families.clip_vocab import VOCAB_SIZE as CLIP_VOCAB
from lorapilot.engine.families.clip_vocab import ClipVocabMissingError, write_clip_tokenizer
from lorapilot.engine.families.loading import ModelLoadError

# Attention heads of the released CLIP widths (heads cannot be seen in the weights); any other width
# gets 64-wide heads, at least 4 (the tiny test encoders' count).
CLIP_HEADS = {768: 12, 1024: 16, 1280: 20}
T5_VOCAB = 32128  # rows of the released T5 v1.1 embedding (32,100 tokens, padded)
# Where ComfyUI keeps the T5 tokenizer it ships, relative to its install folder.
COMFYUI_T5_TOKENIZER = Path("comfy/text_encoders/t5_tokenizer")
COMFYUI_HOMES = (Path("/opt/ComfyUI"), Path("/workspace/ComfyUI"))
_FLOAT8 = {getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, name)}


def read_state(path: str | Path, field: str, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of `path` under `prefix` (prefix dropped); `field` names the spec field for errors."""
    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise ModelLoadError(f"model.{field}: cannot read {path}: {exc}") from exc
    if prefix:
        state = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
        if not state:
            raise ModelLoadError(f"model.{field}: {path} holds no tensors under {prefix!r}")
    return state


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating tensors in `dtype`: fp8 files are stored small, computed in the run's precision."""
    return {k: v.to(dtype) if v.is_floating_point() or v.dtype in _FLOAT8 else v for k, v in state.items()}


def _assign(
    model: torch.nn.Module, state: dict[str, torch.Tensor], field: str, path: Path
) -> torch.nn.Module:
    """Load `state` into an empty `model`; every parameter must be in the file."""
    own = model.state_dict()
    # transformers names CLIPTextModel's tensors with or without `text_model.` depending on version
    wanted = {}
    for key, value in state.items():
        for name in (key, key.removeprefix("text_model."), f"text_model.{key}"):
            if name in own:
                wanted[name] = value
                break
    missing = sorted(set(own) - set(wanted) - {n for n, _ in model.named_buffers()})
    if missing:
        raise ModelLoadError(
            f"model.{field}: {path.name} lacks {len(missing)} tensors of its model (e.g. {missing[0]}); "
            "is it the right kind of file?"
        )
    model.load_state_dict(wanted, strict=False, assign=True)
    return model.eval().requires_grad_(False)


def clip_text_encoder(
    path: Path, dtype: torch.dtype, *, act: str, field: str, prefix: str = "", eos_id: int | None = None
) -> CLIPTextModel:
    """A CLIP text encoder from transformers-named weights (ComfyUI's clip_l/clip_g files)."""
    raw = read_state(path, field, prefix)
    kept = ("text_model.", "text_projection.")
    state = {k if k.startswith(kept) else f"text_model.{k}": v for k, v in raw.items()}
    try:
        vocab, hidden = state["text_model.embeddings.token_embedding.weight"].shape
        positions = state["text_model.embeddings.position_embedding.weight"].shape[0]
        intermediate = state["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0]
    except KeyError as exc:
        raise ModelLoadError(f"model.{field}: {path.name} is not a CLIP text encoder (no {exc})") from exc
    layers = len({k.split(".")[3] for k in state if k.startswith("text_model.encoder.layers.")})
    projection = state.get("text_projection.weight")
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=CLIP_HEADS.get(hidden, max(4, hidden // 64)),
        max_position_embeddings=positions,
        hidden_act=act,
        projection_dim=projection.shape[0] if projection is not None else hidden,
        bos_token_id=vocab - 2,  # <|startoftext|> and <|endoftext|> close every CLIP vocabulary
        eos_token_id=eos_id if eos_id is not None else vocab - 1,
        pad_token_id=vocab - 1,
    )
    model_class = CLIPTextModelWithProjection if projection is not None else CLIPTextModel
    with init_empty_weights(include_buffers=False):
        model = model_class(config)
    return _assign(model, _cast(state, dtype), field, path)


def t5_text_encoder(path: Path, dtype: torch.dtype, *, field: str, prefix: str = "") -> T5EncoderModel:
    """A T5 v1.1 encoder from transformers-named weights (ComfyUI's t5xxl_fp16 / fp8_e4m3fn files)."""
    state = read_state(path, field, prefix)
    block = "encoder.block.0.layer."
    try:
        vocab, width = state["shared.weight"].shape
        inner = state[f"{block}0.SelfAttention.q.weight"].shape[0]
        buckets, heads = state[f"{block}0.SelfAttention.relative_attention_bias.weight"].shape
    except KeyError as exc:
        raise ModelLoadError(f"model.{field}: {path.name} is not a T5 encoder (no {exc})") from exc
    gated = f"{block}1.DenseReluDense.wi_0.weight" in state
    d_ff = state[f"{block}1.DenseReluDense.{'wi_0' if gated else 'wi'}.weight"].shape[0]
    config = T5Config(
        vocab_size=vocab,
        d_model=width,
        d_kv=inner // heads,
        d_ff=d_ff,
        num_layers=len({k.split(".")[2] for k in state if k.startswith("encoder.block.")}),
        num_heads=heads,
        relative_attention_num_buckets=buckets,
        feed_forward_proj="gated-gelu" if gated else "relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    state.setdefault("encoder.embed_tokens.weight", state["shared.weight"])
    with init_empty_weights(include_buffers=False):
        model = T5EncoderModel(config)
    return _assign(model, _cast(state, dtype), field, path)


def vae(
    path: Path, dtype: torch.dtype, *, scaling_factor: float, shift_factor: float, prefix: str = ""
) -> AutoencoderKL:
    """A 16-channel flow-model VAE from the LDM layout (BFL's ae.safetensors, SD3's first stage)."""
    state = read_state(path, "vae", prefix)
    try:
        levels = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.down."))
        widths = [state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] for i in range(levels)]
        per_level = 1 + max(int(k.split(".")[4]) for k in state if k.startswith("encoder.down.0.block."))
        latent = state["decoder.conv_in.weight"].shape[1]
    except (KeyError, ValueError) as exc:
        raise ModelLoadError(f"model.vae: {path.name} is not a VAE in the original layout ({exc})") from exc
    config: dict[str, Any] = {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": widths,
        "layers_per_block": per_level,
        "latent_channels": latent,
        "scaling_factor": scaling_factor,
        "shift_factor": shift_factor,
        "use_quant_conv": "quant_conv.weight" in state,
        "use_post_quant_conv": "post_quant_conv.weight" in state,
        "force_upcast": True,
    }
    converted = convert_ldm_vae_checkpoint(state, config)
    with init_empty_weights(include_buffers=False):
        model = AutoencoderKL(**config)
    return _assign(model, _cast(converted, dtype), "vae", path)


def clip_tokenizer(path: Path, vocab: int, config_cache: Path, pad_token: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a CLIP file: a folder named like it beside it, else OpenAI's (49,408 tokens)."""
    beside = _beside(path)
    if beside is not None:
        return AutoTokenizer.from_pretrained(str(beside), local_files_only=True)
    if vocab != CLIP_VOCAB:
        raise ModelLoadError(
            f"{path.name}: a CLIP encoder of {vocab} tokens is not OpenAI's; put its tokenizer files "
            f"(vocab.json, merges.txt) in {path.with_suffix('')}/"
        )
    dest = config_cache / f"clip-tokenizer-{'pad-eos' if pad_token.startswith('<') else 'pad-bang'}"
    try:
        write_clip_tokenizer(dest, pad_token=pad_token)
    except ClipVocabMissingError as exc:
        raise ModelLoadError(str(exc)) from exc
    return AutoTokenizer.from_pretrained(str(dest), local_files_only=True)


def t5_tokenizer(path: Path, vocab: int) -> PreTrainedTokenizerBase:
    """The tokenizer of a T5 file: a folder named like it beside it, else ComfyUI's copy of T5 v1.1's."""
    beside = _beside(path)
    if beside is None and vocab == T5_VOCAB:
        shipped = [home / COMFYUI_T5_TOKENIZER for home in COMFYUI_HOMES]
        beside = next((folder for folder in shipped if folder.is_dir()), None)
    if beside is None:
        raise ModelLoadError(
            f"model.t5xxl: no tokenizer for {path.name}; put the T5 v1.1 tokenizer files (tokenizer.json, "
            f"tokenizer_config.json, as in google/t5-v1_1-xxl) in {path.with_suffix('')}/"
        )
    return AutoTokenizer.from_pretrained(str(beside), local_files_only=True)


def _beside(path: Path) -> Path | None:
    folder = path.with_suffix("")
    return folder if (folder / "tokenizer_config.json").is_file() else None


def required(spec_value: str | None, field: str, family: str, model_path: str) -> Path:
    """A component file the spec must name (the resolver fills it in from ComfyUI's folders)."""
    if not spec_value:
        raise ModelLoadError(
            f"model.{field}: the {family} transformer file {Path(model_path).name} needs its {field} file; "
            f"set model.{field} (or put it in /workspace/models/{'vae' if field == 'vae' else 'clip'}/)"
        )
    return Path(spec_value)


def diffusers_model(
    *,
    model_class: type[torch.nn.Module],
    config: dict[str, Any],
    state: dict[str, torch.Tensor],
    dtype: torch.dtype,
    field: str,
    path: Path,
) -> Any:
    """A diffusers model built empty from `config` and filled with `state` in `dtype`."""
    with init_empty_weights(include_buffers=False):
        model = model_class(**config)
    return _assign(model, _cast(state, dtype), field, path)
