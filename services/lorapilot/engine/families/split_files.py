"""Components of FLUX.1 and SD3 models kept as separate single files, as ComfyUI users have them.

A transformer file in the original layout, `clip_l` (and SD3's `clip_g`), `t5xxl` (fp16, or fp8
e4m3fn upcast here to the compute dtype) and the `ae`/VAE file carry weights only; each module's
config is read off the tensor shapes, and the tokenizers come from a folder named like the file
beside it (`t5xxl_fp16/` beside `t5xxl_fp16.safetensors`) or, for the released vocabularies, from
data the project carries (CLIP) or ComfyUI's copy (T5). Nothing is fetched. A checkpoint that
bundles some components (SD3's `text_encoders.clip_l.transformer.*`, `first_stage_model.*`) is
read the same way, each component under its prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from safetensors import SafetensorError, safe_open
from transformers import (
    AutoTokenizer,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    PreTrainedTokenizerBase,
    T5Config,
    T5EncoderModel,
)

from lorapilot import tokenizer_files
from lorapilot.engine.families.clip_vocab import ClipVocabMissingError, write_clip_tokenizer
from lorapilot.engine.families.loading import ModelLoadError
from lorapilot.families.recognition import BUNDLED_PREFIXES, components_in_file
from lorapilot.safetensors_header import HeaderError, read_header, tensor_names
from lorapilot.spec.model import ModelSpec

# Attention heads of the released CLIP widths (heads cannot be seen in the weights); any other width
# gets 64-wide heads, at least 4 (the tiny test encoders' count).
CLIP_HEADS = {768: 12, 1024: 16, 1280: 20}
_FLOAT8 = {getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, name)}


@dataclass(frozen=True)
class Part:
    """Where one component's tensors are: the file, the prefix they carry in it, and the folders its
    tokenizer may be in."""

    field: str  # the ModelSpec field that names it ("path" or "transformer" for the denoiser)
    path: Path
    prefix: str = ""
    tokenizer_dirs: tuple[Path, ...] = ()


def part(spec: ModelSpec, field: str, tokenizer: str | None = None) -> Part:
    """Component `field` of the split-file model `spec`: inside the model file if it bundles it,
    else the file the spec names. `tokenizer` is its subfolder in a diffusers folder beside a file."""
    path = Path(spec.path)
    if field in components_in_file(path):
        beside = path.with_suffix("")
        diffusers = tokenizer and (beside / "model_index.json").is_file()  # a diffusers folder beside
        dirs = (beside / field, *([beside / tokenizer] if diffusers else []))
        return Part(field, path, BUNDLED_PREFIXES[field], dirs)
    named = getattr(spec, field)
    if not named:
        folder = "vae" if field == "vae" else "clip"
        raise ModelLoadError(
            f"model.{field}: the {spec.family} file {path.name} does not hold its {field}; set model.{field} "
            f"(or put the file in /workspace/models/{folder}/)"
        )
    return Part(field, Path(named), "", (Path(named).with_suffix(""),))


def denoiser_part(path: Path, prefix: str, field: str = "path") -> Part:
    """The denoiser's tensors of a single file: under `prefix` in a full checkpoint, else at the top
    (a ComfyUI models/unet file may carry either naming)."""
    try:
        keys = tensor_names(read_header(path))
    except (OSError, HeaderError) as exc:
        raise ModelLoadError(f"model.{field}: cannot read {path}: {exc}") from exc
    return Part(field, path, prefix if any(k.startswith(prefix) for k in keys) else "")


def read_state(source: Part) -> dict[str, torch.Tensor]:
    """The tensors of a component, its prefix dropped; only those under the prefix are read."""
    try:
        with safe_open(str(source.path), framework="pt") as handle:
            keys = [key for key in handle.keys() if key.startswith(source.prefix)]  # noqa: SIM118
            if source.field in ("path", "transformer"):  # the denoiser, not what a checkpoint bundles
                keys = [key for key in keys if not key.startswith(tuple(BUNDLED_PREFIXES.values()))]
            state = {key[len(source.prefix) :]: handle.get_tensor(key) for key in keys}
    except (OSError, SafetensorError) as exc:
        raise ModelLoadError(f"model.{source.field}: cannot read {source.path}: {exc}") from exc
    if not state:
        raise ModelLoadError(f"model.{source.field}: {source.path} holds no tensors under {source.prefix!r}")
    if "scaled_fp8" in state or any(key.endswith(".scale_weight") for key in state):
        raise ModelLoadError(
            f"model.{source.field}: {source.path.name} is a scaled fp8 file (ComfyUI's *_scaled), whose "
            "weights need their scales applied; use the fp16 or plain fp8_e4m3fn file"
        )
    return state


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating tensors in `dtype`: fp8 files are stored small, computed in the run's precision."""
    return {k: v.to(dtype) if v.is_floating_point() or v.dtype in _FLOAT8 else v for k, v in state.items()}


def _assign(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Part) -> torch.nn.Module:
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
            f"model.{source.field}: {source.path.name} lacks {len(missing)} tensors of its model "
            f"(e.g. {source.prefix}{missing[0]}); "
            "is it the right kind of file?"
        )
    model.load_state_dict(wanted, strict=False, assign=True)
    return model.eval().requires_grad_(False)


def clip_text_encoder(source: Part, dtype: torch.dtype, *, act: str, projection: bool) -> CLIPTextModel:
    """A CLIP text encoder from transformers-named weights (ComfyUI's clip_l/clip_g files).

    `projection`: the pooled output goes through `text_projection` (SD3), which the file must hold;
    without it (FLUX) a projection in the file is left out, as the pipeline pools without one.
    """
    field, path = source.field, source.path
    raw = read_state(source)
    kept = ("text_model.", "text_projection.")
    state = {k if k.startswith(kept) else f"text_model.{k}": v for k, v in raw.items()}
    try:
        vocab, hidden = state["text_model.embeddings.token_embedding.weight"].shape
        positions = state["text_model.embeddings.position_embedding.weight"].shape[0]
        intermediate = state["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0]
    except KeyError as exc:
        raise ModelLoadError(f"model.{field}: {path.name} is not a CLIP text encoder (no {exc})") from exc
    layers = len({k.split(".")[3] for k in state if k.startswith("text_model.encoder.layers.")})
    projected = state.get("text_projection.weight")
    if projection and projected is None:
        raise ModelLoadError(
            f"model.{field}: {path.name} has no text_projection, which this model pools with"
        )
    if not projection:
        state.pop("text_projection.weight", None)
        projected = None
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=CLIP_HEADS.get(hidden, max(4, hidden // 64)),
        max_position_embeddings=positions,
        hidden_act=act,
        projection_dim=projected.shape[0] if projected is not None else hidden,
        bos_token_id=vocab - 2,  # <|startoftext|> and <|endoftext|> close every CLIP vocabulary
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 1,
    )
    model_class = CLIPTextModelWithProjection if projection else CLIPTextModel
    with init_empty_weights(include_buffers=False):
        model = model_class(config)
    return _assign(model, _cast(state, dtype), source)


def t5_text_encoder(source: Part, dtype: torch.dtype) -> T5EncoderModel:
    """A T5 v1.1 encoder from transformers-named weights (ComfyUI's t5xxl_fp16 / fp8_e4m3fn files)."""
    field, path = source.field, source.path
    state = read_state(source)
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
    return _assign(model, _cast(state, dtype), source)


def vae(source: Part, dtype: torch.dtype, *, scaling_factor: float, shift_factor: float) -> AutoencoderKL:
    """A 16-channel flow-model VAE from the LDM layout (BFL's ae.safetensors, SD3's first stage)."""
    path = source.path
    state = read_state(source)
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
    return _assign(model, _cast(converted, dtype), source)


def clip_tokenizer(source: Part, vocab: int, config_cache: Path, pad_token: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a CLIP encoder: a folder named like its file beside it, else OpenAI's (49,408
    tokens, rebuilt from the data the project installs)."""
    folder = _tokenizer(source, vocab)
    if folder is None:
        folder = config_cache / f"clip-tokenizer-{'pad-eos' if pad_token.startswith('<') else 'pad-bang'}"
        try:
            write_clip_tokenizer(folder, pad_token=pad_token)
        except ClipVocabMissingError as exc:
            raise ModelLoadError(str(exc)) from exc
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def t5_tokenizer(source: Part, vocab: int) -> PreTrainedTokenizerBase:
    """The tokenizer of a T5 encoder: a folder named like its file beside it, else ComfyUI's copy of
    T5 v1.1's (the project carries no T5 vocabulary)."""
    return AutoTokenizer.from_pretrained(str(_tokenizer(source, vocab)), local_files_only=True)


def _tokenizer(source: Part, vocab: int) -> Path | None:
    why = tokenizer_files.why_no_tokenizer(source.field, source.path.name, vocab, source.tokenizer_dirs)
    if why:
        raise ModelLoadError(f"model.{source.field}: {why}")
    return tokenizer_files.tokenizer_folder(source.field, vocab, source.tokenizer_dirs)


def diffusers_model(
    model_class: type[torch.nn.Module],
    config: dict[str, Any],
    state: dict[str, torch.Tensor],
    dtype: torch.dtype,
    source: Part,
) -> Any:
    """A diffusers model built empty from `config` and filled with `state` in `dtype`."""
    with init_empty_weights(include_buffers=False):
        model = model_class(**config)
    return _assign(model, _cast(state, dtype), source)
