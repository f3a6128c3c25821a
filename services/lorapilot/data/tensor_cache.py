"""A content-addressed cache of tensors (VAE latents, text-encoder outputs) in memory and on disk.

Keys are hashes of everything that decides the value (image bytes, target size, encoder weights),
so a cache entry is reused across runs and a changed image simply misses. Entries are written
atomically; an unreadable entry is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)


def content_key(*parts: str | bytes | int | float) -> str:
    """A stable hex key for a sequence of parts (their order matters)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else repr(part).encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_digest(tensors: Iterable[torch.Tensor]) -> str:
    """A fingerprint of some weights: identifies an encoder for cache keys without hashing all of it."""
    digest = hashlib.sha256()
    for tensor in tensors:
        flat = tensor.detach().float().flatten()
        sample = flat[:: max(1, flat.numel() // 4096)].cpu().numpy().tobytes()
        digest.update(str(tuple(tensor.shape)).encode() + sample)
    return digest.hexdigest()[:16]


class TensorCache:
    """`get`/`put` dicts of tensors by key; `root=None` keeps them in memory only."""

    def __init__(self, root: Path | None, dtype: torch.dtype = torch.float16) -> None:
        self.root = root
        self.dtype = dtype
        self.memory: dict[str, dict[str, torch.Tensor]] = {}
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        if self.root is None:
            raise ValueError("a memory-only cache has no files")
        return self.root / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        if key in self.memory:
            self.hits += 1
            return self.memory[key]
        if self.root is not None and self._path(key).is_file():
            try:
                value = load_file(str(self._path(key)))
            except (SafetensorError, OSError, ValueError) as exc:
                log.warning("cache entry %s is unreadable (%s); recomputing it", self._path(key), exc)
            else:
                self.memory[key] = value
                self.hits += 1
                return value
        self.misses += 1
        return None

    def put(
        self, key: str, value: dict[str, torch.Tensor], *, persist: bool = True
    ) -> dict[str, torch.Tensor]:
        """Store `value` in the cache dtype, so fresh and cached runs train on the same numbers."""
        stored = {k: v.detach().to("cpu", self.dtype).contiguous() for k, v in value.items()}
        self.memory[key] = stored
        if self.root is not None and persist:
            self._write(self._path(key), stored)
        return stored

    @staticmethod
    def _write(path: Path, value: dict[str, torch.Tensor]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
        os.close(fd)
        try:
            save_file(value, tmp)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not write cache entry %s (%s); continuing without it", path, exc)
            Path(tmp).unlink(missing_ok=True)
