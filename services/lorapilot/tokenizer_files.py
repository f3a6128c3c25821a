"""Where the tokenizer of a split-file text encoder is found offline, for the loader and `validate`.

A clip_l / clip_g / t5xxl file holds weights only. Its tokenizer is a folder named like the file
beside it (`t5xxl_fp16/` beside `t5xxl_fp16.safetensors`), or for the released vocabularies: CLIP's
is rebuilt from data the project installs (`engine.families.clip_vocab`), T5 v1.1's is the copy
ComfyUI ships, when ComfyUI is installed. Both the engine and the spec resolver ask here, so
`validate` refuses what the loader could not load.
"""

from __future__ import annotations

from pathlib import Path

from lorapilot.safetensors_header import HeaderError, read_header

CLIP_VOCAB = 49408  # OpenAI CLIP's BPE vocabulary, CLIP-L's and OpenCLIP-G's
T5_VOCAB = 32128  # rows of the released T5 v1.1 embedding (32,100 tokens, padded)
COMFYUI_T5_TOKENIZER = Path("comfy/text_encoders/t5_tokenizer")
COMFYUI_HOMES = (Path("/opt/ComfyUI"), Path("/workspace/ComfyUI"))  # the image's and a user's install
# Each text encoder's embedding: the tensor whose rows are the vocabulary size.
EMBEDDINGS = {
    "clip_l": "text_model.embeddings.token_embedding.weight",
    "clip_g": "text_model.embeddings.token_embedding.weight",
    "t5xxl": "shared.weight",
}


def folder_beside(dirs: tuple[Path, ...]) -> Path | None:
    """The first of `dirs` holding a tokenizer (tokenizer_config.json)."""
    return next((d for d in dirs if (d / "tokenizer_config.json").is_file()), None)


def comfyui_t5_tokenizer() -> Path | None:
    return next(
        (h / COMFYUI_T5_TOKENIZER for h in COMFYUI_HOMES if (h / COMFYUI_T5_TOKENIZER).is_dir()), None
    )


def vocab_size(path: Path, field: str, prefix: str = "") -> int | None:
    """Rows of the text encoder's embedding, read from the header; None when it cannot be told."""
    try:
        shape = read_header(path).get(prefix + EMBEDDINGS[field], {}).get("shape")
    except (OSError, HeaderError):
        return None
    return shape[0] if isinstance(shape, list) and shape else None


def tokenizer_folder(field: str, vocab: int, dirs: tuple[Path, ...]) -> Path | None:
    """The folder of an encoder's tokenizer files; None for CLIP's built-in one or when there is none."""
    beside = folder_beside(dirs)
    if beside is not None or field not in ("t5xxl",):
        return beside
    return comfyui_t5_tokenizer() if vocab == T5_VOCAB else None


def why_no_tokenizer(field: str, name: str, vocab: int, dirs: tuple[Path, ...]) -> str | None:
    """Why encoder `field` (file `name`, `vocab` rows) has no tokenizer offline; None when it has."""
    if tokenizer_folder(field, vocab, dirs) is not None or (field != "t5xxl" and vocab == CLIP_VOCAB):
        return None
    if field == "t5xxl":
        return (
            f"no T5 tokenizer for {name} offline; put T5 v1.1's tokenizer files (tokenizer.json, "
            f"tokenizer_config.json of google/t5-v1_1-xxl) in {dirs[0]}/, or install ComfyUI (it ships them)"
        )
    return (
        f"a CLIP encoder of {vocab} tokens is not OpenAI's, so its tokenizer is not built in; put its "
        f"tokenizer files (vocab.json, merges.txt, tokenizer_config.json) in {dirs[0]}/"
    )


def missing_tokenizer(path: Path, field: str, dirs: tuple[Path, ...], prefix: str = "") -> str | None:
    """`why_no_tokenizer` for the encoder in `path` (under `prefix`), its size read from the header."""
    vocab = vocab_size(path, field, prefix)
    return None if vocab is None else why_no_tokenizer(field, path.name, vocab, dirs)
