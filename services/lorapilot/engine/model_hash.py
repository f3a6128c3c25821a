"""kohya's `sshs_model_hash` / `sshs_legacy_hash`: the hashes LoRA browsers index a file by.

sd-webui-additional-networks, A1111/Forge and CivitAI look these up in the header instead of hashing
the whole file, so a LoRA Pilot file must carry exactly the values kohya's trainer would have written
(sd-scripts `library/train_util.py`, `precalculate_safetensors_hashes` and `addnet_hash_*`):

1. keep only the training metadata, the `ss_*` keys (user edits such as titles must not change the
   hash), and serialize the tensors with that metadata (`safetensors.torch.save`, even when the kept
   dict is empty: `{}` writes an empty `__metadata__` entry, which changes the header length);
2. model hash: SHA-256 (64 hex digits) of everything after the header, the tensor bytes region;
3. legacy hash: the first 8 hex digits of SHA-256 of the 0x10000 bytes at offset 0x100000 of that
   serialization (of nothing, for a file under 1 MiB).

The file on disk differs from that serialization only in its header (it also holds `sshs_*`,
`modelspec.*` and other keys), and safetensors lays out the tensor bytes the same way whatever the
header says. So the model hash equals the hash of the file's own tensor region, and the legacy hash
depends on the header only through its length - unless the `ss_*` header exceeds 1 MiB, where kohya's
legacy hash covers header bytes whose key order safetensors does not fix, and is not reproducible even
for kohya.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

LEGACY_OFFSET = 0x100000
LEGACY_LENGTH = 0x10000
HEADER_SIZE_BYTES = 8  # little-endian u64 length of the JSON header that follows


def safetensors_hashes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) of these tensors saved with this metadata, as kohya hashes them."""
    training_metadata = {key: value for key, value in metadata.items() if key.startswith("ss_")}
    blob = save(dict(tensors), training_metadata)
    header_length = int.from_bytes(blob[:HEADER_SIZE_BYTES], "little")
    model_hash = hashlib.sha256(blob[HEADER_SIZE_BYTES + header_length :]).hexdigest()
    legacy_hash = hashlib.sha256(blob[LEGACY_OFFSET : LEGACY_OFFSET + LEGACY_LENGTH]).hexdigest()[:8]
    return model_hash, legacy_hash


def model_hashes(path: Path) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) of a saved safetensors file, whatever else its header holds."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    return safetensors_hashes(tensors, metadata)
