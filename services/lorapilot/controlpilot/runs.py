"""What a run folder shows (DESIGN §3): metrics, samples by step, the log's tail and the LoRA file.

Pure reading of files the trainer writes; every name handed out is checked against a listing,
so no request can name a path outside the run folder.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

METRIC_KEYS = ("step", "loss", "lr")
_SAMPLE = re.compile(r"^step(\d+)(?:_(\d+))?\.(png|jpg|jpeg|webp)$", re.IGNORECASE)
LOG_TAIL_MAX_BYTES = 256 * 1024


def metrics(folder: Path) -> dict[str, list]:
    """`_logs/metrics.json` ({"step": [], "loss": [], "lr": []}); empty lists before the first step."""
    path = folder / "_logs" / "metrics.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as exc:  # being rewritten or hand-edited: show nothing, not a 500
        logger.warning("cannot read %s: %s", path, exc)
        data = {}
    return {key: list(data.get(key, [])) if isinstance(data, dict) else [] for key in METRIC_KEYS}


def samples(folder: Path) -> list[dict[str, Any]]:
    """Sample images by step then prompt index: `samples/step00000100_<k>.png`."""
    found = []
    directory = folder / "samples"
    if not directory.is_dir():
        return []
    for path in directory.iterdir():
        match = _SAMPLE.match(path.name)
        if match and path.is_file():
            found.append({"file": path.name, "step": int(match.group(1)), "index": int(match.group(2) or 0)})
    return sorted(found, key=lambda s: (s["step"], s["index"], s["file"]))


def sample_prompts(folder: Path | None, submitted: dict[str, Any] | None) -> list[str]:
    """The sample prompts in index order, so `step…_<k>.png` is prompt k: from the spec the run
    wrote (`spec.json`), else the one submitted (a queued job has no run folder yet)."""
    spec = submitted or {}
    if folder is not None:
        try:
            spec = json.loads((folder / "spec.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:  # being rewritten or hand-edited: the submitted spec
            logger.warning("cannot read %s: %s", folder / "spec.json", exc)
    sample = spec.get("sample") if isinstance(spec, dict) else None
    prompts = sample.get("prompts") if isinstance(sample, dict) else None
    if not isinstance(prompts, list):
        return []
    return [_prompt_text(prompt) for prompt in prompts]


def _prompt_text(prompt: Any) -> str:
    """A prompt as spec.json writes it: its text, or `{text, width, …}` when it has options."""
    if isinstance(prompt, dict):
        return str(prompt.get("text", ""))
    return str(prompt)


def sample_path(folder: Path, name: str) -> Path | None:
    """The sample called `name`, only if the listing has it."""
    return folder / "samples" / name if any(s["file"] == name for s in samples(folder)) else None


def log_tail(folder: Path, lines: int = 200) -> str:
    """The last `lines` lines of `_logs/train.log` (empty before the run writes one)."""
    path = folder / "_logs" / "train.log"
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_MAX_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def lora_files(folder: Path) -> list[str]:
    """The LoRA files of the run: the final one and the periodic (step and epoch) saves."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob("*.safetensors") if p.is_file())


def final_lora(folder: Path, name: str, status_lora: str | None) -> Path | None:
    """The LoRA to download: status.json's `lora` when it is in the folder, else `<name>.safetensors`."""
    candidates = [Path(status_lora)] if status_lora else []
    candidates.append(folder / f"{name}.safetensors")
    for candidate in candidates:
        path = candidate if candidate.is_absolute() else folder / candidate
        if path.parent == folder and path.name in lora_files(folder):
            return path
    return None
