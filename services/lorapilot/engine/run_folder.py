"""The files of one training run (DESIGN §3 `outputs/<name>/`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_PERIODIC = re.compile(r"-step(\d{8})\.safetensors$")


@dataclass(frozen=True)
class RunFolder:
    root: Path
    name: str

    @property
    def lora(self) -> Path:
        return self.root / f"{self.name}.safetensors"

    def periodic_lora(self, step: int) -> Path:
        return self.root / f"{self.name}-step{step:08d}.safetensors"

    def periodic_loras(self) -> list[tuple[int, Path]]:
        """Periodic saves of this run, oldest first."""
        found = []
        for path in self.root.glob(f"{self.name}-step*.safetensors"):
            match = _PERIODIC.search(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

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

    def create(self) -> RunFolder:
        for folder in (self.root, self.samples, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        return self
