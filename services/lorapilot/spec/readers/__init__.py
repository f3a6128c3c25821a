"""One reader per config dialect; each turns a parsed document into a native-shaped `Draft`.

`READERS` is ordered for auto-detection: the most specific signatures are tried first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lorapilot.spec.draft import Draft
from lorapilot.spec.readers import aitoolkit, diffusion_pipe, kohya, lorapilot


@dataclass(frozen=True)
class Reader:
    name: str
    detect: Callable[[Mapping[str, Any]], bool]
    read: Callable[[Mapping[str, Any], Draft], None]


READERS: dict[str, Reader] = {
    module.DIALECT: Reader(module.DIALECT, module.detect, module.read)
    for module in (lorapilot, aitoolkit, diffusion_pipe, kohya)
}
DIALECTS = tuple(READERS)


def detect_dialect(doc: Mapping[str, Any]) -> str | None:
    for reader in READERS.values():
        if reader.detect(doc):
            return reader.name
    return None
