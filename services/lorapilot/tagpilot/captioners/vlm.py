"""Vision-language models through transformers: Florence-2 (task prompts) or any chat VLM.

Florence-2 takes a task token (`<MORE_DETAILED_CAPTION>` by default); chat models (Qwen2-VL,
SmolVLM, …) get the prompt through their processor's chat template. Only newly generated tokens
are decoded, so a decoder-only model's echo of the prompt never lands in a caption.
"""

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

FLORENCE_TASK = "<MORE_DETAILED_CAPTION>"
CHAT_PROMPT = "Describe this image in one detailed sentence for an image-generation training caption."


class VlmCaptioner:
    style = "sentence"

    def __init__(self, source: str, *, prompt: str | None = None, max_new_tokens: int = 96) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: PLC0415 - heavy

        self.device, self.dtype = torch_device()
        try:
            self.processor = AutoProcessor.from_pretrained(source)
            model = AutoModelForImageTextToText.from_pretrained(source, dtype=self.dtype)
        except (OSError, ValueError) as exc:
            raise CaptionerError(f"cannot load vision-language model {source}: {exc}") from exc
        self.model: Any = model.to(self.device).eval()
        self.is_florence = "florence" in str(getattr(model.config, "model_type", "")).lower()
        self.prompt = prompt or (FLORENCE_TASK if self.is_florence else CHAT_PROMPT)
        self.max_new_tokens = max_new_tokens

    def _text_inputs(self, count: int) -> list[str]:
        template = getattr(self.processor, "chat_template", None)
        if self.is_florence or not template:
            return [self.prompt] * count
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.prompt}]}]
        return [self.processor.apply_chat_template(messages, add_generation_prompt=True)] * count

    def caption(self, images: list[Image.Image]) -> list[str]:
        import torch  # noqa: PLC0415

        inputs = self.processor(text=self._text_inputs(len(images)), images=images, return_tensors="pt")
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=3)
        if not self.model.config.is_encoder_decoder and "input_ids" in inputs:
            out = out[:, inputs["input_ids"].shape[1] :]
        texts = self.processor.batch_decode(out, skip_special_tokens=True)
        return [text.strip() for text in texts]

    def close(self) -> None:
        del self.model, self.processor


@register_backend("vlm", options=("prompt", "max_new_tokens"))
def _vlm(choice: CaptionerChoice, workspace: Workspace) -> VlmCaptioner:
    return VlmCaptioner(
        model_source(workspace, choice.source),
        prompt=choice.option("prompt"),
        max_new_tokens=int(choice.option("max_new_tokens", 96)),
    )
