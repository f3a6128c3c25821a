"""BLIP image captioning through transformers (e.g. Salesforce/blip-image-captioning-large)."""

from __future__ import annotations

from typing import Any

from PIL import Image

from lorapilot.tagpilot.captioners.base import (
    CaptionerChoice,
    CaptionerError,
    model_source,
    register_backend,
    torch_device,
)
from lorapilot.workspace import Workspace


class BlipCaptioner:
    style = "sentence"

    def __init__(
        self, source: str, *, max_new_tokens: int = 40, num_beams: int = 3, prompt: str = ""
    ) -> None:
        from transformers import BlipForConditionalGeneration, BlipProcessor  # noqa: PLC0415 - heavy

        self.device, self.dtype = torch_device()
        try:
            self.processor = BlipProcessor.from_pretrained(source)
            model = BlipForConditionalGeneration.from_pretrained(source, dtype=self.dtype)
        except (OSError, ValueError) as exc:
            raise CaptionerError(f"cannot load BLIP model {source}: {exc}") from exc
        self.model: Any = model.to(self.device).eval()
        self.max_new_tokens, self.num_beams, self.prompt = max_new_tokens, num_beams, prompt

    def caption(self, images: list[Image.Image]) -> list[str]:
        import torch  # noqa: PLC0415

        kwargs: dict[str, Any] = {"images": images, "return_tensors": "pt"}
        if self.prompt:  # conditional captioning: BLIP continues the prompt ("a photography of")
            kwargs["text"] = [self.prompt] * len(images)
        inputs = self.processor(**kwargs).to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams)
        return [text.strip() for text in self.processor.batch_decode(out, skip_special_tokens=True)]

    def close(self) -> None:
        del self.model, self.processor


@register_backend("blip", options=("max_new_tokens", "num_beams", "prompt"))
def _blip(choice: CaptionerChoice, workspace: Workspace) -> BlipCaptioner:
    return BlipCaptioner(
        model_source(workspace, choice.source),
        max_new_tokens=int(choice.option("max_new_tokens", 40)),
        num_beams=int(choice.option("num_beams", 3)),
        prompt=str(choice.option("prompt", "")),
    )
