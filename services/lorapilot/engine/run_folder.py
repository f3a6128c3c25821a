"""The files of one training run (DESIGN §3 `outputs/<name>/`)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

LORA_SUFFIX = ".safetensors"
PARTIAL_SUFFIXES = (".tmp", ".partial")  # files being written: atomic_files and lora_export


class SaveKind(Enum):
    """The periodic saves, each with its own name and its own keep_last count.

    `STEP` is `<name>-stepNNNNNNNN`; `EPOCH` is kohya-ss's `<name>-NNNNNN` (its EPOCH_FILE_NAME).
    """

    STEP = ("-step", 8)
    EPOCH = ("-", 6)

    def file_name(self, name: str, number: int) -> str:
        tag, digits = self.value
        return f"{name}{tag}{number:0{digits}d}{LORA_SUFFIX}"

    def number(self, name: str, file_name: str) -> int | None:
        """The step or epoch in `file_name` when it is a save of this kind of run `name`."""
        tag, digits = self.value
        pattern = rf"{re.escape(name)}{re.escape(tag)}(\d{{{digits}}}){re.escape(LORA_SUFFIX)}"
        match = re.fullmatch(pattern, file_name)
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class RunFolder:
    root: Path
    name: str

    @property
    def lora(self) -> Path:
        return self.root / f"{self.name}{LORA_SUFFIX}"

    def periodic_lora(self, number: int, kind: SaveKind = SaveKind.STEP) -> Path:
        return self.root / kind.file_name(self.name, number)

    def periodic_loras(self, kind: SaveKind = SaveKind.STEP) -> list[tuple[int, Path]]:
        """Periodic saves of one kind, oldest (lowest step or epoch) first."""
        found = []
        for path in self.root.glob(f"{self.name}-*{LORA_SUFFIX}"):
            number = kind.number(self.name, path.name)
            if number is not None:
                found.append((number, path))
        return sorted(found)

    def saves(self) -> list[Path]:
        """Periodic saves of every kind, oldest written first: the last is the newest LoRA."""
        found = [path for kind in SaveKind for _, path in self.periodic_loras(kind)]
        return sorted(found, key=_written)

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def sample(self, step: int, index: int) -> Path:
        return self.samples / f"step{step:08d}_{index}.png"

    @property
    def logs(self) -> Path:
        return self.root / "_logs"

    @property
    def spec_json(self) -> Path:
        return self.root / "spec.json"

    def partial_saves(self) -> list[Path]:
        """What a save that did not finish left (state.tmp/, temporary files): a process killed mid-save."""
        found = [self.root / "state.tmp"] if (self.root / "state.tmp").exists() else []
        for folder in (self.root, self.state, self.logs):
            if folder.is_dir():
                found += [p for p in folder.iterdir() if p.is_file() and p.name.endswith(PARTIAL_SUFFIXES)]
        return found

    def remove_partial_saves(self) -> list[Path]:
        """Remove them (only once no process writes this run); the paths removed."""
        removed = self.partial_saves()
        for path in removed:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return removed

    def create(self) -> RunFolder:
        for folder in (self.root, self.samples, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def _written(path: Path) -> tuple[int, str]:
    try:
        return path.stat().st_mtime_ns, path.name
    except OSError:  # deleted while listing: sorts first, as if long gone
        return 0, path.name
