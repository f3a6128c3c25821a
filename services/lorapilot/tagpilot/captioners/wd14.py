"""WD14-style taggers (SmilingWolf's wd-*-tagger ONNX models) through onnxruntime.

A model folder holds `model.onnx` and `selected_tags.csv` (tag_id, name, category, count;
category 0 general, 4 character, 9 rating). Input: NHWC float32 BGR 0-255, the image padded to a
white square and resized to the model's side. Output: one sigmoid score per CSV row.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lorapilot.tagpilot.captioners.base import (
    CaptionerChoice,
    CaptionerError,
    model_source,
    register_backend,
)
from lorapilot.workspace import Workspace

GENERAL, CHARACTER = 0, 4
_KAOMOJI = {"0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3", "6_9", ">_o",
            "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||"}  # fmt: skip


class Wd14Tagger:
    style = "tags"

    def __init__(self, folder: Path, *, general_threshold: float = 0.35, character_threshold: float = 0.85):
        import onnxruntime as ort  # noqa: PLC0415 - only needed once a tagger is used

        model, tags = folder / "model.onnx", folder / "selected_tags.csv"
        if not model.is_file() or not tags.is_file():
            raise CaptionerError(f"{folder} needs model.onnx and selected_tags.csv (a WD14 tagger folder)")
        wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
        providers = [name for name in wanted if name in ort.get_available_providers()]
        try:
            self.session: Any = ort.InferenceSession(str(model), providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise CaptionerError(f"cannot load {model}: {exc}") from exc
        spec = self.session.get_inputs()[0]
        self.input_name, self.side = spec.name, int(spec.shape[1])
        with tags.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        self.names = [_readable(row["name"]) for row in rows]
        self.categories = np.array([int(row["category"]) for row in rows])
        self.general_threshold, self.character_threshold = general_threshold, character_threshold

    def _prepare(self, image: Image.Image) -> np.ndarray:
        side = max(image.size)
        square = Image.new("RGB", (side, side), (255, 255, 255))
        square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        square = square.resize((self.side, self.side), Image.Resampling.BICUBIC)
        return np.asarray(square, dtype=np.float32)[:, :, ::-1]  # RGB → BGR, as the models were trained

    def caption(self, images: list[Image.Image]) -> list[str]:
        batch = np.stack([self._prepare(image) for image in images])
        scores = self.session.run(None, {self.input_name: batch})[0]
        return [self._tags(row) for row in scores]

    def _tags(self, scores: np.ndarray) -> str:
        chosen = [
            (score, name)
            for score, name, category in zip(scores, self.names, self.categories, strict=True)
            if (category == GENERAL and score >= self.general_threshold)
            or (category == CHARACTER and score >= self.character_threshold)
        ]
        return ", ".join(name for _, name in sorted(chosen, key=lambda item: -item[0]))

    def close(self) -> None:
        del self.session


def _readable(tag: str) -> str:
    return tag if tag in _KAOMOJI else tag.replace("_", " ")


def _folder(workspace: Workspace, source: str) -> Path:
    resolved = model_source(workspace, source)
    if Path(resolved).is_dir():
        return Path(resolved)
    from huggingface_hub import hf_hub_download  # noqa: PLC0415

    try:
        model = hf_hub_download(resolved, "model.onnx")
        hf_hub_download(resolved, "selected_tags.csv")
    except Exception as exc:  # offline, missing repo, no network: all mean "not available here"
        raise CaptionerError(
            f"cannot get WD14 tagger {resolved} ({exc}); put it in models/captioners/"
        ) from exc
    return Path(model).parent


@register_backend("wd14", options=("general_threshold", "character_threshold"))
def _wd14(choice: CaptionerChoice, workspace: Workspace) -> Wd14Tagger:
    return Wd14Tagger(
        _folder(workspace, choice.source),
        general_threshold=float(choice.option("general_threshold", 0.35)),
        character_threshold=float(choice.option("character_threshold", 0.85)),
    )
