"""API-format ComfyUI workflows for test renders, one builder per model family, and a check of a
workflow against a ComfyUI's `/object_info`.

API format: `{node_id: {"class_type": ..., "inputs": {name: value or [source_id, output_index]}}}`.
LoRAs are applied by a chain of loaders, one per LoRA, so several LoRAs blend with their own weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lorapilot import families
from lorapilot.comfy.errors import SettingsError
from lorapilot.families import ComfyGraph, Family

Workflow = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class LoraUse:
    name: str  # as listed in models/loras/ (LoraLoader's lora_name)
    strength: float


@dataclass(frozen=True)
class Render:
    """What one image shows: the prompt, the LoRAs with their weights, and fixed sampling settings."""

    prompt: str
    loras: tuple[LoraUse, ...] = ()
    negative: str = ""
    seed: int = 42
    steps: int = 20
    cfg: float = 7.0
    width: int = 512
    height: int = 512
    sampler: str = "euler"
    scheduler: str = "normal"
    guidance: float = 3.5  # FLUX-dev's guidance embedding
    prefix: str = "lorapilot"


@dataclass(frozen=True)
class Base:
    """The base model files ComfyUI loads, by the loader input names they go to."""

    files: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, family: Family) -> str:
        value = self.files.get(key)
        if not value:
            raise SettingsError(
                f"no ComfyUI base model file {key!r} for family {family}: set bases.{family}.{key} in "
                "config/comfy.yaml (a file name as ComfyUI lists it)"
            )
        return value

    def require(self, family: Family) -> tuple[str, ...]:
        """The family's base files, in the order its workflow loads them (the first missing one raises)."""
        return tuple(self.get(key, family) for key in family.comfy.files)

    def option(self, key: str, graph: ComfyGraph) -> str:
        return self.files.get(key, graph.options[key])


class _Graph:
    def __init__(self) -> None:
        self.nodes: Workflow = {}

    def add(self, class_type: str, **inputs: Any) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id


def _sample_decode_save(
    graph: _Graph,
    render: Render,
    *,
    model: list,
    positive: list,
    negative: list,
    latent: str,
    vae: list,
    cfg: float,
    sampler: str,
    scheduler: str,
) -> None:
    """KSampler → VAEDecode → SaveImage: every family's graph ends the same way."""
    sample = graph.add(
        "KSampler",
        model=model,
        positive=positive,
        negative=negative,
        latent_image=[latent, 0],
        seed=render.seed,
        steps=render.steps,
        cfg=cfg,
        sampler_name=sampler,
        scheduler=scheduler,
        denoise=1.0,
    )
    image = graph.add("VAEDecode", samples=[sample, 0], vae=vae)
    graph.add("SaveImage", images=[image, 0], filename_prefix=render.prefix)


def _checkpoint(graph: _Graph, render: Render, base: Base, family: Family) -> None:
    """CheckpointLoaderSimple → LoraLoader… → CLIPTextEncode ×2 → EmptyLatentImage → KSampler →
    VAEDecode → SaveImage."""
    (ckpt_name,) = base.require(family)
    ckpt = graph.add("CheckpointLoaderSimple", ckpt_name=ckpt_name)
    model, clip = [ckpt, 0], [ckpt, 1]
    for lora in render.loras:
        node = graph.add(
            "LoraLoader",
            model=model,
            clip=clip,
            lora_name=lora.name,
            strength_model=lora.strength,
            strength_clip=lora.strength,
        )
        model, clip = [node, 0], [node, 1]
    positive = graph.add("CLIPTextEncode", text=render.prompt, clip=clip)
    negative = graph.add("CLIPTextEncode", text=render.negative, clip=clip)
    latent = graph.add("EmptyLatentImage", width=render.width, height=render.height, batch_size=1)
    _sample_decode_save(
        graph,
        render,
        model=model,
        positive=[positive, 0],
        negative=[negative, 0],
        latent=latent,
        vae=[ckpt, 2],
        cfg=render.cfg,
        sampler=render.sampler,
        scheduler=render.scheduler,
    )


def _model_loras(graph: _Graph, model: list, render: Render) -> list:
    for lora in render.loras:
        node = graph.add(
            "LoraLoaderModelOnly", model=model, lora_name=lora.name, strength_model=lora.strength
        )
        model = [node, 0]
    return model


def _unet_dual_clip(graph: _Graph, render: Render, base: Base, family: Family) -> None:
    """UNETLoader → LoraLoaderModelOnly…; DualCLIPLoader(flux) → CLIPTextEncode → FluxGuidance; VAELoader."""
    unet_name, clip_name1, clip_name2, vae_name = base.require(family)
    unet = graph.add(
        "UNETLoader", unet_name=unet_name, weight_dtype=base.option("weight_dtype", family.comfy)
    )
    model = _model_loras(graph, [unet, 0], render)
    clip = graph.add("DualCLIPLoader", clip_name1=clip_name1, clip_name2=clip_name2, type="flux")
    positive = graph.add("CLIPTextEncode", text=render.prompt, clip=[clip, 0])
    guided = graph.add(
        "FluxGuidance", conditioning=[positive, 0], guidance=render.guidance if family.comfy.guidance else 1.0
    )
    negative = graph.add("CLIPTextEncode", text="", clip=[clip, 0])  # unused at cfg 1, but KSampler needs one
    latent = graph.add("EmptySD3LatentImage", width=render.width, height=render.height, batch_size=1)
    vae = graph.add("VAELoader", vae_name=vae_name)
    _sample_decode_save(
        graph,
        render,
        model=model,
        positive=[guided, 0],
        negative=[negative, 0],
        latent=latent,
        vae=[vae, 0],
        cfg=1.0,
        sampler="euler",
        scheduler="simple",
    )


def _checkpoint_triple_clip(graph: _Graph, render: Render, base: Base, family: Family) -> None:
    """CheckpointLoaderSimple (MMDiT + VAE) → LoraLoaderModelOnly…; TripleCLIPLoader for the three
    text encoders."""
    ckpt_name, clip_name1, clip_name2, clip_name3 = base.require(family)
    ckpt = graph.add("CheckpointLoaderSimple", ckpt_name=ckpt_name)
    model = _model_loras(graph, [ckpt, 0], render)
    clip = graph.add("TripleCLIPLoader", clip_name1=clip_name1, clip_name2=clip_name2, clip_name3=clip_name3)
    positive = graph.add("CLIPTextEncode", text=render.prompt, clip=[clip, 0])
    negative = graph.add("CLIPTextEncode", text=render.negative, clip=[clip, 0])
    latent = graph.add("EmptySD3LatentImage", width=render.width, height=render.height, batch_size=1)
    _sample_decode_save(
        graph,
        render,
        model=model,
        positive=[positive, 0],
        negative=[negative, 0],
        latent=latent,
        vae=[ckpt, 2],
        cfg=render.cfg,
        sampler=render.sampler,
        scheduler="sgm_uniform",
    )


# ComfyGraph.workflow → graph builder; a family names its workflow in its registry entry
BUILDERS: dict[str, Callable[[_Graph, Render, Base, Family], None]] = {
    "checkpoint": _checkpoint,
    "checkpoint_triple_clip": _checkpoint_triple_clip,
    "unet_dual_clip": _unet_dual_clip,
}


def family_of(family_id: str) -> Family:
    """The registered family, or the SettingsError a workflow request for an unknown one gets."""
    family = families.find(family_id)
    if family is None:
        raise SettingsError(
            f"no ComfyUI workflow for family {family_id!r}; known: {', '.join(families.ids())}"
        )
    return family


def build(family_id: str, render: Render, base: Base) -> Workflow:
    family = family_of(family_id)
    graph = _Graph()
    BUILDERS[family.comfy.workflow](graph, render, base, family)
    return graph.nodes


def base_loaders(family_id: str) -> dict[str, str]:
    """Each of the family's base inputs → the loader node class it goes to (whose `/object_info`
    entry lists the files ComfyUI offers for it), found by building the workflow with marker names."""
    markers = {key: f"\0{key}" for key in family_of(family_id).comfy.inputs}
    workflow = build(family_id, Render(""), Base(markers))
    return {
        key: node["class_type"]
        for node in workflow.values()
        for key, value in node["inputs"].items()
        if markers.get(key) == value
    }


def check(workflow: Workflow, object_info: dict[str, Any]) -> list[str]:
    """Every problem ComfyUI would reject the workflow for: unknown classes, unknown or missing
    inputs, links to absent nodes or outputs, values outside a list of choices."""
    problems = []
    for node_id, node in workflow.items():
        cls = node.get("class_type")
        info = object_info.get(cls)
        if info is None:
            problems.append(f"node {node_id}: class {cls!r} is not installed in this ComfyUI")
            continue
        spec = info.get("input") or {}
        required, optional = spec.get("required") or {}, spec.get("optional") or {}
        inputs = node.get("inputs") or {}
        for name in required:
            if name not in inputs:
                problems.append(f"node {node_id} ({cls}): required input {name!r} is missing")
        for name, value in inputs.items():
            declared = required.get(name) or optional.get(name)
            if declared is None:
                problems.append(f"node {node_id} ({cls}): input {name!r} does not exist")
                continue
            where = f"node {node_id} ({cls}) input {name!r}"
            problems += _check_value(workflow, object_info, where, value, declared)
    return problems


def _check_value(workflow: Workflow, object_info: dict, where: str, value: Any, declared: list) -> list[str]:
    kind = declared[0]
    if kind == "COMBO":  # the newer object_info spelling of a list of choices
        kind = list((declared[1] if len(declared) > 1 else {}).get("options") or [])
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
        source = workflow.get(str(value[0]))
        if source is None:
            return [f"{where}: links to node {value[0]}, which the workflow lacks"]
        outputs = (object_info.get(source["class_type"]) or {}).get("output") or []
        if value[1] >= len(outputs):
            return [f"{where}: node {value[0]} has no output {value[1]}"]
        if isinstance(kind, str) and outputs[value[1]] != kind:
            return [f"{where}: expects {kind}, gets {outputs[value[1]]} from node {value[0]}"]
        return []
    if isinstance(kind, list) and value not in kind:
        shown = ", ".join(map(str, kind[:8])) + (" …" if len(kind) > 8 else "")
        return [f"{where}: {value!r} is not one of its choices ({shown or 'none available'})"]
    return []
