"""The CLIP BPE tokenizer of SD1.x/SD2.x/SDXL, rebuilt offline from the merges file on PyPI.

OpenAI's tokenizer derives its 49,408-entry vocabulary from `bpe_simple_vocab_16e6.txt.gz`: the
256 byte symbols, the same with an end-of-word mark, one entry per merge, then the two special
tokens. The `clip-anytorch` distribution ships that file; it is read as data (the package itself
is never imported: it needs torchvision). scripts/bootstrap installs it with `--no-deps`.
"""

from __future__ import annotations

import gzip
import json
from importlib import metadata
from pathlib import Path

from lorapilot.tokenizer_files import CLIP_VOCAB

DISTRIBUTION = "clip-anytorch"
MERGES_FILE = "clip/bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = CLIP_VOCAB


class ClipVocabMissingError(RuntimeError):
    """The merges file is not installed."""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable characters."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def merges_path() -> Path:
    try:
        path = Path(str(metadata.distribution(DISTRIBUTION).locate_file(MERGES_FILE)))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ClipVocabMissingError(
            f"the CLIP tokenizer data is missing; install it with `pip install --no-deps {DISTRIBUTION}` "
            "(scripts/bootstrap does this)"
        )
    return path


def write_clip_tokenizer(dest: Path, pad_token: str = "<|endoftext|>") -> Path:
    """A CLIPTokenizer folder (vocab.json, merges.txt, configs) at `dest`."""
    lines = gzip.decompress(merges_path().read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : VOCAB_SIZE - 256 * 2 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges)]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (dest / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": pad_token,
    }
    (dest / "special_tokens_map.json").write_text(json.dumps(special))
    config = {
        **special,
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "errors": "replace",
    }
    (dest / "tokenizer_config.json").write_text(json.dumps(config))
    return dest
