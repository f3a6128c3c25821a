"""Sample renders during training, through the family's own pipeline over the live LoRA weights."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from lorapilot.engine.families.base import Conditioning, FamilyAdapter, LoadedModel
from lorapilot.spec.model import SamplePrompt, SampleSpec, TrainSpec

log = logging.getLogger(__name__)
PROMPT_OPTIONS = ("negative_prompt", "width", "height", "steps", "guidance_scale", "seed")


def apply_trigger(prompt: str, trigger: str | None) -> str:
    """ai-toolkit's `[trigger]` placeholder, or the trigger word in front as captions have it."""
    if not trigger:
        return prompt.replace("[trigger]", "").strip()
    if "[trigger]" in prompt:
        return prompt.replace("[trigger]", trigger)
    return prompt if trigger in prompt else f"{trigger}, {prompt}"


def sample_trigger(spec: TrainSpec) -> str | None:
    return next((d.trigger_word for d in spec.datasets if d.trigger_word), None)


def prompt_options(sample: SampleSpec, prompt: SamplePrompt) -> SampleSpec:
    """The sample section with the options this prompt sets over it (kohya's per-line --n, --w, --h,
    --s, --l, --d); an option the prompt leaves unset keeps the section's value."""
    own = {name: getattr(prompt, name) for name in PROMPT_OPTIONS if getattr(prompt, name) is not None}
    return sample.model_copy(update=own)


def sample_prompts(spec: TrainSpec) -> list[str]:
    """The texts sample renders encode: each prompt with the trigger applied, and the negative prompt."""
    if not spec.sample.prompts:
        return []
    trigger = sample_trigger(spec)
    negatives = {p.negative_prompt for p in spec.sample.prompts if p.negative_prompt is not None}
    texts = [apply_trigger(p.text, trigger) for p in spec.sample.prompts]
    return [*texts, spec.sample.negative_prompt, *sorted(negatives)]


@torch.no_grad()
def render_samples(
    adapter: FamilyAdapter,
    model: LoadedModel,
    sample: SampleSpec,
    *,
    size: tuple[int, int],
    trigger: str | None,
    paths: list[Path],
    device: torch.device,
    dtype: torch.dtype,
    embeddings: Mapping[str, Conditioning] | None = None,
) -> list[Path]:
    """One image per prompt, written to `paths` (PNG), each with its own options over the section's
    (`size` is the default); a prompt without a seed of its own renders at `sample.seed` + its index,
    so samples compare over steps.

    With `embeddings` (the text cache, when the text encoders are unloaded) prompts are looked up
    there instead of being encoded.
    """
    pipe = adapter.sampling_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    written = []
    for index, (prompt, path) in enumerate(zip(sample.prompts, paths, strict=False)):
        options = prompt_options(sample, prompt)
        arguments = adapter.sampling_arguments(model, options)
        seed = prompt.seed if prompt.seed is not None else sample.seed + index
        generator = torch.Generator(device="cpu").manual_seed(seed)
        text = apply_trigger(prompt.text, trigger)
        if embeddings is None:
            call = {**arguments, "prompt": text}
        else:
            call = {k: v for k, v in arguments.items() if k != "negative_prompt"}
            prompt_embeds = _to(embeddings[text], device, dtype)
            negative_embeds = _to(embeddings[options.negative_prompt], device, dtype)
            call |= adapter.embedding_arguments(prompt_embeds, negative_embeds)
        width, height = prompt.width or size[0], prompt.height or size[1]
        image = pipe(**call, width=width, height=height, generator=generator).images[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        image.save(tmp, format="PNG")
        tmp.replace(path)
        written.append(path)
    log.info("samples: %s", ", ".join(p.name for p in written))
    return written


def _to(conditioning: Conditioning, device: torch.device, dtype: torch.dtype) -> Conditioning:
    return {name: value.to(device, dtype) for name, value in conditioning.items()}
