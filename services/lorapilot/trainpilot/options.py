"""Command-line options shared by several `trainpilot` commands, and the spec they describe."""

from __future__ import annotations

import argparse
import sys

from lorapilot.errors import LoraPilotError
from lorapilot.spec import DIALECTS, LoadedSpec, load_spec
from lorapilot.workspace import Workspace


class UsageError(LoraPilotError):
    """The command line itself is incomplete."""


def add_workspace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", help="workspace root (default: $LORAPILOT_WORKSPACE or /workspace)")


def add_spec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dialect", choices=DIALECTS, help="config dialect (default: detected)")
    parser.add_argument("--profile", help="profile to merge the config over (e.g. quick_test)")
    parser.add_argument("--dataset", help="dataset folder or name under /workspace/datasets/images")
    parser.add_argument("--name", help="run name (default: from the config or its file name)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one field, e.g. --set training.max_steps=50 (repeatable)",
    )
    add_workspace(parser)


def load_for(args: argparse.Namespace, workspace: Workspace) -> LoadedSpec:
    """The spec the command's arguments describe; notices go to stderr."""
    if args.file is None and not args.profile:
        raise UsageError(f"trainpilot {args.command}: give a config FILE or --profile NAME")
    loaded = load_spec(
        args.file,
        dialect=args.dialect,
        profile=args.profile,
        dataset=args.dataset,
        name=args.name,
        overrides=args.overrides,
        workspace=workspace,
    )
    for notice in loaded.notices:
        print(f"notice: {notice.render()}", file=sys.stderr)
    return loaded
