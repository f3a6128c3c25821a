"""`lorapilot-appliance`: what the container entrypoint and the native run call before supervisord."""

from __future__ import annotations

import argparse
import configparser
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from lorapilot.appliance import comfyui, idle_stop, model_catalog, model_pull, ray_node, ssh, versions
from lorapilot.appliance.bootstrap import bootstrap
from lorapilot.appliance.health import check
from lorapilot.errors import LoraPilotError
from lorapilot.workspace import Workspace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lorapilot-appliance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("bootstrap", help="lay out the workspace and create the password once")
    boot.add_argument("--workspace", help="workspace root (default: $LORAPILOT_WORKSPACE or /workspace)")
    health = sub.add_parser("health", help="exit 0 when every program runs and every web service answers")
    health.add_argument(
        "--config", type=Path, default=Path("supervisord.conf"), help="supervisord.conf (default: ./)"
    )
    comfy = sub.add_parser("comfyui", help="run ComfyUI on the workspace's models (when the image has it)")
    comfy.add_argument("--workspace", help="workspace root (default: $LORAPILOT_WORKSPACE or /workspace)")
    comfy.add_argument("--host", default="127.0.0.1")
    comfy.add_argument("--port", type=int, default=8188)
    comfy.add_argument(
        "--installed",
        action="store_true",
        help=f"only answer: print true/false, exit 0 when ComfyUI is installed (${comfyui.COMFYUI_DIR_ENV})",
    )
    sshd = sub.add_parser("sshd", help=f"run key-only sshd for the key(s) in ${ssh.PUBLIC_KEY_ENV}")
    sshd.add_argument("--workspace", help="workspace root (default: $LORAPILOT_WORKSPACE or /workspace)")
    sshd.add_argument("--port", type=int, default=ssh.DEFAULT_PORT)
    sshd.add_argument(
        "--wanted",
        action="store_true",
        help=f"only answer: print true/false, exit 0 when ${ssh.PUBLIC_KEY_ENV} is set",
    )
    idle = sub.add_parser("idle-stop", help="watch for idle time and stop the machine (config/idle.yaml)")
    idle.add_argument("--workspace", help="workspace root (default: $LORAPILOT_WORKSPACE or /workspace)")
    idle.add_argument(
        "--supervisor-config", type=Path, required=True, help="supervisord.conf (its socket stops trainpilot)"
    )
    ray = sub.add_parser(
        "ray-node",
        help="run this appliance's Ray node (LORAPILOT_RAY_ROLE=head|worker): `ray start --block`",
    )
    ray.add_argument("--workspace", help="workspace root (default: $LORAPILOT_WORKSPACE or /workspace)")
    ray.add_argument(
        "--exports",
        action="store_true",
        help="only print the shell exports supervisord's programs need for this role (for the entrypoint)",
    )
    version = sub.add_parser("version", help="print the versions that matter: lorapilot, torch and CUDA, …")
    version.add_argument("--json", action="store_true", help="one JSON list of {name, version, detail}")
    models = sub.add_parser("models", help="the model catalog: list the base models, pull one by name")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    listing = models_sub.add_parser("list", help="a table of the catalog: name, family, folder, size, …")
    listing.add_argument("--workspace", help="workspace root (default: $LORAPILOT_WORKSPACE or /workspace)")
    pull = models_sub.add_parser("pull", help="download an entry into models/ (resumes, checks sha256)")
    pull.add_argument("name", help="the entry's name, as `models list` shows it")
    pull.add_argument("--workspace", help="workspace root (default: $LORAPILOT_WORKSPACE or /workspace)")
    pull.add_argument("--attempts", type=int, default=3, help="tries when the connection drops (default 3)")
    args = parser.parse_args(argv)
    try:
        return _command(args)
    except LoraPilotError as exc:  # e.g. an unusable password or secret file: the message says the fix
        print(f"lorapilot-appliance: {exc}", file=sys.stderr)
        return 1


def _command(args: argparse.Namespace) -> int:
    if args.command == "health":
        return _health(args.config)
    if args.command == "version":
        return _version(as_json=args.json)
    if args.command == "models":
        ws = Workspace.from_env(args.workspace)
        if args.models_command == "list":
            return _models_list(ws)
        return _models_pull(ws, args.name, args.attempts)
    if args.command == "idle-stop":
        return idle_stop.run(Workspace.from_env(args.workspace), args.supervisor_config)
    if args.command == "ray-node":
        ws = Workspace.from_env(args.workspace)
        if args.exports:
            ray_node.print_exports(ws, os.environ)
            return 0
        return ray_node.run(ws, os.environ)
    if args.command == "comfyui":
        if args.installed:
            print("true" if comfyui.installed() else "false")
            return 0 if comfyui.installed() else 1
        return comfyui.run(Workspace.from_env(args.workspace), args.host, args.port)
    if args.command == "sshd":
        if args.wanted:
            print("true" if ssh.wanted() else "false")
            return 0 if ssh.wanted() else 1
        return ssh.run(Workspace.from_env(args.workspace), args.port)
    return _bootstrap(Workspace.from_env(args.workspace))


def _bootstrap(ws: Workspace) -> int:
    try:
        report = bootstrap(ws)
    except OSError as exc:
        print(f"lorapilot-appliance: {exc}", file=sys.stderr)
        return 1
    print(f"[lorapilot] workspace {ws.root}: {len(report.created)} files and folders created")
    password = report.password
    if password is not None and password.created:
        # Shown once, on the start that created it; afterwards it is only in the 0600 file.
        print(f"[lorapilot] generated the appliance password (saved in {password.source}): {password.value}")
    elif password is not None:
        print(f"[lorapilot] appliance password: from {password.source}")
    return 0


def _version(*, as_json: bool) -> int:
    components = versions.report()
    if as_json:
        print(json.dumps([c.to_json() for c in components], indent=2))
        return 0
    width = max(len(c.name) for c in components)
    for c in components:
        shown = c.version or ("none" if c.name == "nvidia driver" else "not installed")
        detail = (f" ({c.detail})" if c.version else f": {c.detail}") if c.detail else ""
        print(f"{c.name:<{width}}  {shown}{detail}")
    return 0


def _models_list(ws: Workspace) -> int:
    entries = model_catalog.load(ws)
    rows = [("NAME", "FAMILY", "FOLDER", "SIZE", "GATED", "LICENSE", "PULLED")]
    for entry in entries:
        size = ("~" if entry.size_is_estimate else "") + _gigabytes(entry.size_bytes)
        pulled = "yes" if entry.target(ws).exists() else ""
        gated = "yes" if entry.gated else ""
        rows.append((entry.name, entry.family, entry.folder, size, gated, entry.license or "?", pulled))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _models_pull(ws: Workspace, name: str, attempts: int) -> int:
    entry = model_catalog.find(ws, name)
    print(f"[lorapilot] pulling {entry.name} ({entry.repo}) into {ws.display(entry.target(ws))}", flush=True)
    with tqdm(total=entry.size_bytes, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr) as bar:

        def progress(done: int, total: int | None) -> None:
            bar.total = total or bar.total
            bar.update(done - bar.n)

        try:
            result = model_pull.pull(ws, entry, progress, attempts=max(1, attempts))
        except KeyboardInterrupt:
            print(f"\n[lorapilot] interrupted: `models pull {name}` again resumes", file=sys.stderr)
            return 130
    if result.already_there:
        print(f"[lorapilot] {entry.name} is there already: {ws.display(result.path)}")
    else:
        resumed = f", resumed after {result.resumed_from} bytes" if result.resumed_from else ""
        print(f"[lorapilot] {entry.name} pulled into {ws.display(result.path)}{resumed}")
    for family, key in result.comfy_filled.items():
        print(f"[lorapilot] config/comfy.yaml: bases.{family}.{key} = {entry.target_name}")
    if result.comfy_note:
        print(f"[lorapilot] {result.comfy_note}")
    return 0


def _gigabytes(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.0f} MB"


def _health(config: Path) -> int:
    try:
        results = check(config)
    except (OSError, configparser.Error) as exc:
        print(f"unhealthy: supervisord does not answer ({exc})", file=sys.stderr)
        return 1
    for r in results:
        verdict = "" if r.healthy else "  <- unhealthy"
        print(f"{r.name}: {r.state}{' ' + r.detail if r.detail else ''}{verdict}")
    return 0 if all(r.healthy for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
