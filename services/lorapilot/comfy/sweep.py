"""Test renders of a published LoRA through ComfyUI: a strength sweep at a fixed seed for each of
the job's sample prompts (strength 0 is the base model), saved under `outputs/<name>/comfy/` with a
labelled contact sheet (rows: prompts, columns: strengths). `render_sweep` is how the bridge,
`trainpilot comfy test` and ControlPilot all render a finished job's sweep."""

from __future__ import annotations

import fcntl
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from lorapilot.atomic_files import write_atomic, write_json_atomic
from lorapilot.comfy.client import ComfyClient
from lorapilot.comfy.errors import PublishError, WorkflowCheckError
from lorapilot.comfy.publish import find_published
from lorapilot.comfy.settings import ComfySettings
from lorapilot.comfy.workflows import Base, LoraUse, Render, build, check, family_of
from lorapilot.spool import JobRecord, Spool
from lorapilot.workspace import Workspace

log = logging.getLogger(__name__)

FALLBACK_PROMPT = "a photo of {trigger}"
LABEL_HEIGHT = 18
RENDER_LOCK = ".render.lock"  # in outputs/<name>/comfy/: one sweep at a time writes that folder


@dataclass(frozen=True)
class SweepResult:
    folder: Path
    images: list[Path]
    contact_sheet: Path


def prompts_of(sidecar: dict) -> list[str]:
    prompts = list(sidecar.get("sample_prompts") or [])
    if prompts:
        return prompts
    trigger = ", ".join(sidecar.get("trigger_words") or []) or sidecar.get("name", "")
    return [FALLBACK_PROMPT.format(trigger=trigger)]


def strength_sweep(
    client: ComfyClient,
    *,
    family: str,
    base: Base,
    lora_name: str,
    prompts: list[str],
    out_folder: Path,
    strengths: tuple[float, ...] = (0.0, 0.5, 0.8, 1.0),
    blend: tuple[LoraUse, ...] = (),
    seed: int = 42,
    steps: int = 20,
    size: int | None = None,
    negative: str = "",
    timeout: float = 600.0,
) -> SweepResult:
    """Render every prompt at every strength (other LoRAs of `blend` at their fixed weights)."""
    object_info = client.object_info()
    side = size or family_of(family).native_resolution
    grid: list[list[Path]] = []
    out_folder.mkdir(parents=True, exist_ok=True)
    for p_index, prompt in enumerate(prompts):
        row = []
        for strength in strengths:
            render = Render(
                prompt=prompt,
                loras=(LoraUse(lora_name, strength), *blend),
                negative=negative,
                seed=seed,
                steps=steps,
                width=side,
                height=side,
                prefix=f"lorapilot/{Path(lora_name).stem}",
            )
            workflow = build(family, render, base)
            problems = check(workflow, object_info)
            if problems:
                raise WorkflowCheckError(problems)
            images = client.run(workflow, timeout=timeout)
            if not images:
                raise WorkflowCheckError(
                    [f"ComfyUI saved no image for prompt {p_index} at strength {strength:g}"]
                )
            target = out_folder / f"p{p_index:02d}_s{strength:.2f}.png"
            write_atomic(target, images[0][1])
            row.append(target)
            log.info("rendered %s", target)
        grid.append(row)
    # sweep.json first: the contact sheet is the last file, so whoever sees it sees a whole sweep
    write_json_atomic(
        out_folder / "sweep.json",
        {
            "lora": lora_name,
            "family": family,
            "seed": seed,
            "steps": steps,
            "size": side,
            "strengths": list(strengths),
            "prompts": prompts,
            "blend": [{"lora": b.name, "strength": b.strength} for b in blend],
            "images": [[p.name for p in row] for row in grid],
        },
    )
    sheet = out_folder / "contact_sheet.png"
    write_atomic(sheet, contact_sheet(grid, prompts, strengths, blend))
    return SweepResult(out_folder, [p for row in grid for p in row], sheet)


def contact_sheet(
    grid: list[list[Path]], prompts: list[str], strengths: tuple[float, ...], blend: tuple[LoraUse, ...] = ()
) -> bytes:
    """A PNG grid with a label above each image: the strength (and the prompt on the first column)."""
    font = ImageFont.load_default()
    tiles = [[Image.open(p).convert("RGB") for p in row] for row in grid]
    width = max(t.width for row in tiles for t in row)
    height = max(t.height for row in tiles for t in row)
    sheet = Image.new("RGB", (width * len(strengths), (height + LABEL_HEIGHT) * len(tiles)), "white")
    draw = ImageDraw.Draw(sheet)
    extra = "".join(f" + {b.name}@{b.strength:g}" for b in blend)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            x, y = c * width, r * (height + LABEL_HEIGHT)
            label = f"strength {strengths[c]:g}{extra}"
            if c == 0:
                label = f"{prompts[r][:40]} | {label}"
            draw.text((x + 2, y + 3), label, fill="black", font=font)
            sheet.paste(tile, (x, y + LABEL_HEIGHT))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def read_sidecar(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@contextmanager
def render_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's render lock; the bridge, `trainpilot comfy test` and ControlPilot all render
    into the same outputs/<name>/comfy/, and their images, sweep.json and contact sheet must agree."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / RENDER_LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # the lock goes with the file's close
        yield


def render_sweep(
    workspace: Workspace,
    record: JobRecord,
    client: ComfyClient,
    settings: ComfySettings,
    *,
    strengths: tuple[float, ...] | None = None,
    blend: tuple[LoraUse, ...] = (),
    seed: int = 42,
    steps: int = 20,
    size: int | None = None,
    timeout: float = 600.0,
) -> SweepResult:
    """The strength sweep of a published job, into outputs/<name>/comfy/."""
    loras = workspace.model_dir("loras")
    published = find_published(loras, record.id, kind="final")
    if not published:
        raise PublishError(
            f"{record.name} (id {record.id}) is not published; run `trainpilot comfy publish {record.name}`"
        )
    stem, sidecar = published[-1]
    family = sidecar.get("family") or ""
    folder = Spool(workspace).run_folder(record)
    if folder is None:
        raise PublishError(f"job {record.id} names no usable run folder inside outputs/")
    with render_lock(folder / "comfy"):
        return strength_sweep(
            client,
            family=family,
            base=settings.base(family),
            lora_name=f"{stem}.safetensors",
            prompts=prompts_of(sidecar),
            out_folder=folder / "comfy",
            strengths=strengths or settings.strengths,
            blend=blend,
            seed=seed,
            steps=steps,
            size=size,
            negative=sidecar.get("negative_prompt") or "",
            timeout=timeout,
        )
