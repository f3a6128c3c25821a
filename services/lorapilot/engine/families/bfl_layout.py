"""FLUX.1's original (Black Forest Labs) transformer key layout, both ways.

The files people have (`flux1-dev.safetensors`, ComfyUI's `models/unet`) use the names of BFL's
reference code: `double_blocks.N.img_attn.qkv`, `single_blocks.N.linear1`, `guidance_in`, with
q/k/v (and a single block's MLP input) fused into one matrix. diffusers' converter assumes the
released width (3072); this one reads the widths off the tensors, so any FLUX-shaped file converts,
and it runs backwards too (the test writers make split files with it).
"""

from __future__ import annotations

import torch

# BFL name → diffusers name, for the tensors that are renamed only ({} is the block index).
_GLOBAL = {
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
    "txt_in": "context_embedder",
    "img_in": "x_embedder",
    "final_layer.linear": "proj_out",
}
_DOUBLE = {
    "img_mod.lin": "norm1.linear",
    "txt_mod.lin": "norm1_context.linear",
    "img_attn.norm.query_norm": "attn.norm_q",
    "img_attn.norm.key_norm": "attn.norm_k",
    "txt_attn.norm.query_norm": "attn.norm_added_q",
    "txt_attn.norm.key_norm": "attn.norm_added_k",
    "img_mlp.0": "ff.net.0.proj",
    "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj",
    "txt_mlp.2": "ff_context.net.2",
    "img_attn.proj": "attn.to_out.0",
    "txt_attn.proj": "attn.to_add_out",
}
_SINGLE = {
    "modulation.lin": "norm.linear",
    "norm.query_norm": "attn.norm_q",
    "norm.key_norm": "attn.norm_k",
    "linear2": "proj_out",
}
_DOUBLE_FUSED = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
}
_SINGLE_FUSED = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
_FINAL_MODULATION = ("final_layer.adaLN_modulation.1", "norm_out.linear")


def _param(module: str, param: str) -> str:
    # BFL's RMSNorm holds `scale`, diffusers' `weight`
    return "scale" if module.endswith("_norm") and param == "weight" else param


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    """BFL's final modulation is (shift, scale), diffusers' (scale, shift): the same swap both ways."""
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    indices = {int(key[len(prefix) :].split(".", 1)[0]) for key in state if key.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def _renames(double: int, single: int) -> dict[str, str]:
    """Module renames (BFL → diffusers) for a model with these block counts."""
    renames = dict(_GLOBAL)
    for i in range(double):
        renames |= {f"double_blocks.{i}.{b}": f"transformer_blocks.{i}.{d}" for b, d in _DOUBLE.items()}
    for i in range(single):
        renames |= {
            f"single_blocks.{i}.{b}": f"single_transformer_blocks.{i}.{d}" for b, d in _SINGLE.items()
        }
    return renames


def flux_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A BFL-layout FLUX transformer state dict in diffusers' `FluxTransformer2DModel` names.

    A `model.diffusion_model.` prefix (full checkpoints) is dropped; a tensor with no place is an error.
    """
    state = {key.removeprefix("model.diffusion_model."): value for key, value in state.items()}
    double, single = _blocks(state, "double_blocks."), _blocks(state, "single_blocks.")
    inner = state["img_in.weight"].shape[0]
    out: dict[str, torch.Tensor] = {}
    for module, new in _renames(double, single).items():
        for param in ("weight", "bias"):
            key = f"{module}.{_param(module, param)}"
            if key in state:
                out[f"{new}.{param}"] = state.pop(key)
    for param in ("weight", "bias"):
        out[f"{_FINAL_MODULATION[1]}.{param}"] = _swap_halves(state.pop(f"{_FINAL_MODULATION[0]}.{param}"))
        for i in range(double):
            for fused, parts in _DOUBLE_FUSED.items():
                chunks = state.pop(f"double_blocks.{i}.{fused}.{param}").chunk(3, dim=0)
                out |= {f"transformer_blocks.{i}.{p}.{param}": c for p, c in zip(parts, chunks, strict=True)}
        for i in range(single):
            fused = state.pop(f"single_blocks.{i}.linear1.{param}")
            sizes = (inner, inner, inner, fused.shape[0] - 3 * inner)
            chunks = fused.split(sizes, dim=0)
            out |= {
                f"single_transformer_blocks.{i}.{p}.{param}": c
                for p, c in zip(_SINGLE_FUSED, chunks, strict=True)
            }
    if state:
        raise KeyError(f"FLUX transformer tensors with no place in diffusers' layout: {sorted(state)[:5]}")
    return out


def flux_from_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `flux_to_diffusers`: diffusers' names back to the BFL layout."""
    state = dict(state)
    double = _blocks(state, "transformer_blocks.")
    single = _blocks(state, "single_transformer_blocks.")
    out: dict[str, torch.Tensor] = {}
    for module, new in _renames(double, single).items():
        for param in ("weight", "bias"):
            if f"{new}.{param}" in state:
                out[f"{module}.{_param(module, param)}"] = state.pop(f"{new}.{param}")
    for param in ("weight", "bias"):
        out[f"{_FINAL_MODULATION[0]}.{param}"] = _swap_halves(state.pop(f"{_FINAL_MODULATION[1]}.{param}"))
        for i in range(double):
            for fused, parts in _DOUBLE_FUSED.items():
                chunks = [state.pop(f"transformer_blocks.{i}.{p}.{param}") for p in parts]
                out[f"double_blocks.{i}.{fused}.{param}"] = torch.cat(chunks)
        for i in range(single):
            chunks = [state.pop(f"single_transformer_blocks.{i}.{p}.{param}") for p in _SINGLE_FUSED]
            out[f"single_blocks.{i}.linear1.{param}"] = torch.cat(chunks)
    if state:
        raise KeyError(f"FLUX transformer tensors with no place in the BFL layout: {sorted(state)[:5]}")
    return out


def flux_config(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """`FluxTransformer2DModel` arguments read off a BFL-layout state dict's shapes.

    Only the rotary axes cannot be seen in the weights: the released split of a 128-wide head is
    (16, 56, 56); other head widths get the same proportions (each spatial axis the largest even
    share up to 7/16 of the head, the time axis the rest), e.g. (4, 6, 6) for 16.
    """
    state = {key.removeprefix("model.diffusion_model."): value for key, value in state.items()}
    inner, in_channels = state["img_in.weight"].shape
    head = state["double_blocks.0.img_attn.norm.query_norm.scale"].shape[0]
    spatial = (head * 7 // 16) // 2 * 2
    patch_out = state["final_layer.linear.weight"].shape[0]
    return {
        "patch_size": 1,
        "in_channels": int(in_channels),
        "out_channels": int(patch_out),
        "num_layers": _blocks(state, "double_blocks."),
        "num_single_layers": _blocks(state, "single_blocks."),
        "attention_head_dim": int(head),
        "num_attention_heads": int(inner // head),
        "joint_attention_dim": int(state["txt_in.weight"].shape[1]),
        "pooled_projection_dim": int(state["vector_in.in_layer.weight"].shape[1]),
        "guidance_embeds": "guidance_in.in_layer.weight" in state,
        "axes_dims_rope": (head - 2 * spatial, spatial, spatial),
    }
