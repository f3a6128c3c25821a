"""`trainpilot comfy publish|test`: hand a finished LoRA to ComfyUI and render its strength sweep."""

from __future__ import annotations

import argparse
import sys

from lorapilot.comfy.client import ComfyClient
from lorapilot.comfy.errors import ComfyError
from lorapilot.comfy.publish import lora_file_name, publish_named
from lorapilot.comfy.settings import load_settings
from lorapilot.comfy.sweep import render_sweep
from lorapilot.comfy.workflows import LoraUse
from lorapilot.spool import Spool
from lorapilot.trainpilot.options import UsageError, add_workspace
from lorapilot.workspace import Workspace

EXIT_OK = 0
EXIT_FAILED = 1


def _blend_item(text: str) -> LoraUse:
    """`OTHER:0.6` → another LoRA (a published file name or a job name) at weight 0.6."""
    name, _, weight = text.rpartition(":")
    try:
        return LoraUse(name, float(weight)) if name else _bad_blend(text)
    except ValueError:
        return _bad_blend(text)


def _bad_blend(text: str) -> LoraUse:
    raise argparse.ArgumentTypeError(f"{text!r}: write LORA:WEIGHT, e.g. --with my_style:0.6")


def _resolve_blend(ws: Workspace, items: list[LoraUse]) -> tuple[LoraUse, ...]:
    loras = ws.model_dir("loras")
    resolved = []
    for item in items:
        name = lora_file_name(item.name)
        if not (loras / name).is_file():
            raise UsageError(f"--with {item.name}: no {name} in {ws.display(loras)}; publish it first")
        resolved.append(LoraUse(name, item.strength))
    return tuple(resolved)


def cmd_publish(args: argparse.Namespace) -> int:
    ws = Workspace.from_env(args.workspace).ensure()
    try:
        publication = publish_named(ws, args.name)
    except ComfyError as exc:
        print(f"trainpilot comfy publish: {exc}", file=sys.stderr)
        return EXIT_FAILED
    word = "already published as" if publication.reused else "published as"
    print(f"{publication.name} {word} {ws.display(publication.lora)}")
    print(f"sidecar: {ws.display(publication.sidecar)}")
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    ws = Workspace.from_env(args.workspace).ensure()
    try:
        settings = load_settings(ws)
        record = Spool(ws).find(args.name)
        publish_named(ws, record.id)  # a no-op when it is published already
        client = ComfyClient(args.url or settings.url, timeout=args.request_timeout)
        result = render_sweep(
            ws,
            record,
            client,
            settings,
            strengths=tuple(args.strengths) if args.strengths else None,
            blend=_resolve_blend(ws, args.blend),
            seed=args.seed,
            steps=args.steps,
            size=args.size,
            timeout=args.timeout,
        )
    except ComfyError as exc:
        print(f"trainpilot comfy test: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{len(result.images)} images in {ws.display(result.folder)}")
    print(f"contact sheet: {ws.display(result.contact_sheet)}")
    return EXIT_OK


def add_comfy_commands(sub: argparse._SubParsersAction) -> None:
    """Register `trainpilot comfy ...` on the `trainpilot` parser."""
    comfy = sub.add_parser("comfy", help="hand LoRAs to ComfyUI and render test sweeps through it")
    actions = comfy.add_subparsers(dest="comfy_command", required=True, metavar="ACTION")

    publish = actions.add_parser(
        "publish",
        help="copy a finished job's LoRA into models/loras/ with its sidecar",
        description="Copy the LoRA of the done job NAME (or id) into /workspace/models/loras/ (mode 0644, "
        "a versioned name when the name is taken; nothing is overwritten) with a sidecar JSON.",
    )
    publish.add_argument("name", help="job name or id")
    add_workspace(publish)
    publish.set_defaults(handler=cmd_publish)

    test = actions.add_parser(
        "test",
        help="render a strength sweep of a job's LoRA through ComfyUI",
        description="Publish the LoRA if needed, then render every sample prompt at each strength "
        "(fixed seed) through ComfyUI into outputs/NAME/comfy/, with a labelled contact sheet.",
    )
    test.add_argument("name", help="job name or id")
    test.add_argument("--strengths", type=float, nargs="+", metavar="S", help="default: 0 0.5 0.8 1.0")
    test.add_argument(
        "--with",
        dest="blend",
        type=_blend_item,
        action="append",
        default=[],
        metavar="LORA:WEIGHT",
        help="blend another published LoRA at a fixed weight (repeatable)",
    )
    test.add_argument("--seed", type=int, default=42)
    test.add_argument("--steps", type=int, default=20)
    test.add_argument("--size", type=int, help="image side in pixels (default: the family's native size)")
    test.add_argument("--url", help="ComfyUI URL (default: config/comfy.yaml, $LORAPILOT_COMFY_URL)")
    test.add_argument("--timeout", type=float, default=600.0, help="seconds one image may take")
    test.add_argument("--request-timeout", type=float, default=10.0, help="seconds one HTTP request may take")
    add_workspace(test)
    test.set_defaults(handler=cmd_test)
