"""One model family as every layer sees it: a frozen record of facts, no code and no heavy imports.

The spec readers, the file probe, TagPilot, ControlPilot, the ComfyUI workflows, the kohya metadata
and the engine's adapters all read these facts instead of keeping their own tables keyed by a
family name, so a family is added in one place (plus its engine adapter).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeVar

Denoiser = Literal["unet", "transformer"]
Objective = Literal["ddpm", "flow"]  # DDPM noise (ε or v targets) or flow matching
NetworkType = Literal["lora", "locon", "dora"]
V = TypeVar("V")


def frozen_mapping(mapping: Mapping[str, V] | None = None) -> Mapping[str, V]:
    """A read-only copy, so a family's facts cannot be changed after registration."""
    return MappingProxyType(dict(mapping or {}))


NOT_EMPTY = "<not empty>"  # a ConfigMarker value: the key holds a non-empty list (or any true value)


@dataclass(frozen=True)
class ConfigMarker:
    """`key` of the JSON file `file` (relative to a diffusers folder) holds `value` (or, with
    `NOT_EMPTY`, anything but null, false, 0 or an empty list)."""

    file: str
    key: str
    value: object


@dataclass(frozen=True)
class Recognition:
    """How the family is told from what is on disk or from a name.

    Families are asked newest first (see `registry.newest_first`), so a family registered after
    another may refine it: schnell after dev, SD2 after SD1.5, SDXL after SD2.
    """

    pipeline_classes: tuple[str, ...] = ()  # model_index.json `_class_name`s of its diffusers folders
    # Among families sharing a pipeline class, any one of these picks this family; a family with
    # none is the one chosen when no other's markers are present.
    folder_markers: tuple[ConfigMarker, ...] = ()
    tensor_patterns: tuple[str, ...] = ()  # regexes: each matches some tensor name of its single files
    tensor_absent: tuple[str, ...] = ()  # regexes: none matches a tensor name of its single files
    name_pattern: str | None = None  # regex searched in a lower-cased hub id or file name
    # Among families a dialect names alike (ai-toolkit's `arch: flux`), the one whose keyword the
    # model path contains; a family without a keyword is the default.
    path_keyword: str | None = None
    # Families whose files the probe may report for this one's: a config naming either is trusted
    # (SD1.x and SD2.x checkpoints share one loader, which reads the prediction type off the files).
    trusted_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComfyGraph:
    """How ComfyUI renders with the family: the shape of the workflow `comfy.workflows` builds, the
    base-model files its loader nodes take (`bases.<family>.<input>` in config/comfy.yaml), and
    loader settings that have a default."""

    # checkpoint: CheckpointLoaderSimple with its own CLIP (SD1/2/XL); checkpoint_triple_clip: a
    # checkpoint plus TripleCLIPLoader (SD3); unet_dual_clip: UNETLoader, DualCLIPLoader, VAELoader (FLUX)
    workflow: Literal["checkpoint", "checkpoint_triple_clip", "unet_dual_clip"]
    files: tuple[str, ...]
    options: Mapping[str, str] = field(default_factory=frozen_mapping)
    guidance: bool = False  # a guidance-distilled model: the render's guidance goes in a FluxGuidance node

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every loader input a `bases.<family>` entry may name."""
        return self.files + tuple(self.options)


@dataclass(frozen=True)
class KohyaNames:
    """What kohya's metadata calls the family (FORMATS.md §1)."""

    base_model_version: str  # ss_base_model_version
    v2: bool = False  # ss_v2
    architecture: str | None = None  # modelspec.architecture, when not the base model version


@dataclass(frozen=True)
class LoraTargets:
    """Default LoRA targets, as peft module-name suffixes."""

    denoiser: tuple[str, ...]
    conv: tuple[str, ...] = ()  # conv layers LoCon adds
    text_encoder: tuple[str, ...] = ()  # CLIP attention and MLP layers, when the text encoders are trained
    exclude: str | None = None  # regex (full match) of denoiser module paths the suffixes must not catch


@dataclass(frozen=True)
class Family:
    """A model family: its id as configs spell it, and what every layer needs to know about it."""

    id: str  # TrainSpec's model.family
    label: str  # what people call it: "SDXL", "FLUX.1 dev"
    denoiser: Denoiser
    objective: Objective
    native_resolution: int  # the side of the square it is made for
    recognition: Recognition
    kohya: KohyaNames
    comfy: ComfyGraph
    lora: LoraTargets
    # Names other trainers' configs use for it, by where they appear (`registry.DIALECT_NAMES`).
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=frozen_mapping)
    image_multiple: int = 8  # rendered sides are multiples of this: the VAE's downscale × patch size
    network_types: tuple[NetworkType, ...] = ("lora", "locon", "dora")
    trains_text_encoders: bool = True  # LoRA on the text encoders as well as the denoiser
    quantizable: bool = False  # the frozen denoiser may be loaded 8/4-bit (bitsandbytes)
    # The component files a transformer-only single file needs (ComfyUI's split layout: models/unet +
    # models/clip + models/vae), by the ModelSpec field naming each, with the file names ComfyUI's
    # docs give them, preferred in this order; empty: the family's single files are complete.
    split_files: Mapping[str, tuple[str, ...]] = field(default_factory=frozen_mapping)

    @property
    def flow(self) -> bool:
        return self.objective == "flow"

    def trusts(self, probed: Family) -> bool:
        """Whether a config naming this family may point at files probed as `probed`."""
        return probed.id == self.id or probed.id in self.recognition.trusted_with

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"Family({self.id!r})"

    def __hash__(self) -> int:  # the mappings are read-only views, not hashable; the id is unique
        return hash(self.id)
