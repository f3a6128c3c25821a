"""Small CLIP and T5 tokenizers generated on the spot.

The real tokenizers are downloads; these behave the same way (byte-level BPE with `</w>` word ends
for CLIP, a Unigram model with `▁` word starts for T5) over a vocabulary of a few hundred entries,
so prompts of any text tokenize, pad and truncate exactly as the pipelines expect.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTokenizer, T5TokenizerFast

CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"
CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 512

# Words that get whole-word tokens, so typical captions are not spelled out letter by letter.
_WORDS = (
    "a", "an", "the", "of", "in", "on", "with", "and", "photo", "picture", "painting", "portrait",
    "style", "dog", "cat", "man", "woman", "person", "red", "blue", "green", "sks", "ohwx", "tiny",
    "lora", "pilot", "test", "image", "sitting", "standing", "background", "white", "black",
)  # fmt: skip


def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP-style vocabulary: every byte character, alone and word-final, then merged words."""
    alphabet = sorted(ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate(alphabet + [c + "</w>" for c in alphabet])}
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        pieces = [*word[:-1], word[-1] + "</w>"]
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in merges:
                merges.append(pair)
                vocab.setdefault(pair[0] + pair[1], len(vocab))
            pieces = [pair[0] + pair[1], *pieces[2:]]
    vocab[CLIP_BOS] = len(vocab)
    vocab[CLIP_EOS] = len(vocab)
    return vocab, merges


def clip_tokenizer(pad_token: str = CLIP_EOS) -> CLIPTokenizer:
    """A CLIP tokenizer; SDXL's and SD3's second one pads with "!" like the real OpenCLIP-G one."""
    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=vocab, merges=merges, pad_token=pad_token, model_max_length=CLIP_MAX_LENGTH)


def write_clip_vocab_files(folder: Path) -> None:
    """Add `vocab.json` and `merges.txt` beside `tokenizer.json`, as in the real model repos.

    transformers 5 saves only `tokenizer.json`; older loaders (transformers 4, kohya's scripts)
    look for the two classic files first.
    """
    vocab, merges = clip_vocab_and_merges()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1) + "\n")
    lines = ["#version: 0.2", *(f"{left} {right}" for left, right in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n")


def t5_vocab() -> list[tuple[str, float]]:
    """Unigram pieces with T5's fixed ids (`<pad>` 0, `</s>` 1, `<unk>` 2), words scored above letters."""
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    words = [("▁" + word, -8.0) for word in _WORDS]
    characters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"()-_/"
    return [*specials, ("▁", -6.0), *words, *((char, -10.0) for char in characters)]


def t5_tokenizer() -> T5TokenizerFast:
    """A T5 tokenizer without the 100 `<extra_id_N>` sentinels, which text encoding never uses."""
    return T5TokenizerFast(vocab=t5_vocab(), extra_ids=0, model_max_length=T5_MAX_LENGTH)
