"""Tiny captioning models built on the spot: a BLIP folder and a WD14-style ONNX tagger.

They are randomly initialised (their captions are word salad) but load and run through exactly the
code paths of the real ones: `BlipForConditionalGeneration` + `BlipProcessor` from a folder, and an
onnxruntime session over an NHWC BGR image with a `selected_tags.csv` beside it, as in the
SmilingWolf WD14 repos.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

# Words of the tiny vocabularies; WD14's own tags use underscores, which the tagger turns to spaces.
_WORDS = (
    "a", "photo", "of", "the", "cat", "dog", "man", "woman", "red", "blue", "green", "sitting",
    "standing", "on", "in", "with", "table", "street", "sky", "tree", "car", "rocket", "coffee",
    "cup", "moon", "book", "face", "grass", "wall", "white", "black", "background", "small", "large",
)  # fmt: skip
WD14_GENERAL_TAGS = ("photo", "outdoors", "indoors", "sky", "cat", "no_humans", "red_background", "text")
WD14_CHARACTER_TAGS = ("hatsune_miku",)
WD14_RATING_TAGS = ("general", "sensitive", "questionable", "explicit")
_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")


def build_tiny_blip(dest: Path, seed: int = 0) -> Path:
    """A BLIP captioning model folder (config, weights, processor, tokenizer) at `dest`."""
    import torch  # noqa: PLC0415 - heavy; only this builder needs it
    from transformers import (  # noqa: PLC0415
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    dest.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate([*_SPECIALS, *_WORDS])}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True, bos_token="[DEC]", model_max_length=64)
    ids = {token: index for index, token in enumerate(_SPECIALS)}
    text = {
        "vocab_size": len(_SPECIALS) + len(_WORDS),
        "hidden_size": 32,
        "encoder_hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "max_position_embeddings": 64,
        "bos_token_id": ids["[DEC]"],
        "pad_token_id": ids["[PAD]"],
        "eos_token_id": ids["[SEP]"],
        "sep_token_id": ids["[SEP]"],
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(
        BlipConfig(text_config=text, vision_config=vision, projection_dim=32)
    )
    with torch.no_grad():  # special tokens never win, so the random model's captions are all words
        bias = model.text_decoder.cls.predictions.decoder.bias
        for token in ("[PAD]", "[UNK]", "[CLS]", "[MASK]", "[DEC]"):
            bias[ids[token]] = -1e4
    model.save_pretrained(dest)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(dest)
    return dest


def build_tiny_wd14(dest: Path, seed: int = 0, size: int = 32) -> Path:
    """A WD14-style tagger folder: `model.onnx` (NHWC BGR 0-255 → sigmoid scores) + `selected_tags.csv`.

    The net is mean-pool → linear → sigmoid, with the bias of `photo` raised so every image gets
    at least one general tag above WD14's usual 0.35 threshold.
    """
    import onnx  # noqa: PLC0415 - only the builder needs it; the tagger runs on onnxruntime
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    dest.mkdir(parents=True, exist_ok=True)
    rows = [(9, tag) for tag in WD14_RATING_TAGS]
    rows += [(0, tag) for tag in WD14_GENERAL_TAGS] + [(4, tag) for tag in WD14_CHARACTER_TAGS]
    with (dest / "selected_tags.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tag_id", "name", "category", "count"])
        for index, (category, tag) in enumerate(rows):
            writer.writerow([index, tag, category, 1000 - index])
    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((3, len(rows))) * 0.004).astype(np.float32)  # pixels are 0-255
    bias = (rng.standard_normal(len(rows)) * 0.5 - 1.0).astype(np.float32)
    bias[len(WD14_RATING_TAGS)] = 4.0  # "photo"
    nodes = [
        helper.make_node("ReduceMean", ["input_1:0", "axes"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "weight"], ["logits_raw"]),
        helper.make_node("Add", ["logits_raw", "bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_wd14",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, ["batch", len(rows)])],
        initializer=[
            numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes"),
            numpy_helper.from_array(weight, "weight"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8  # readable by onnxruntime releases older than the onnx package
    onnx.checker.check_model(model)
    onnx.save(model, dest / "model.onnx")
    return dest
