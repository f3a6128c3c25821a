"""Sample renders during training, through the family's own pipeline over the live LoRA weights."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from lorapilot.engine.families.base import LoadedModel, ModelFamily
from lorapilot.spec.model import SampleSpec

log = logging.getLogger(__name__)


def apply_trigger(prompt: str, trigger: str | None) -> str:
    """ai-toolkit's `[trigger]` placeholder, or the trigger word in front as captions have it."""
    if not trigger:
        return prompt.replace("[trigger]", "").strip()
    if "[trigger]" in prompt:
        return prompt.replace("[trigger]", trigger)
    return prompt if trigger in prompt else f"{trigger}, {prompt}"


@torch.no_grad()
def render_samples(
    family: ModelFamily,
    model: LoadedModel,
    sample: SampleSpec,
    *,
    size: tuple[int, int],
    trigger: str | None,
    device: torch.device,
    paths: list[Path],
) -> list[Path]:
    """One image per prompt at a fixed seed, written to `paths` (PNG)."""
    pipe = family.sampling_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    written = []
    for index, (prompt, path) in enumerate(zip(sample.prompts, paths, strict=False)):
        generator = torch.Generator(device="cpu").manual_seed(sample.seed + index)
        image = pipe(
            prompt=apply_trigger(prompt, trigger),
            negative_prompt=sample.negative_prompt or None,
            num_inference_steps=sample.steps,
            guidance_scale=sample.guidance_scale,
            width=size[0],
            height=size[1],
            generator=generator,
        ).images[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        image.save(tmp, format="PNG")
        tmp.replace(path)
        written.append(path)
    log.info("samples: %s", ", ".join(p.name for p in written))
    return written
