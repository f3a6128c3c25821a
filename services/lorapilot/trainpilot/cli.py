"""`trainpilot` command line. Subcommand names are a contract: the user guide uses them.

Exit codes: 0 ok, 1 training failed (or an internal error), 2 invalid config or request.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from lorapilot.errors import LoraPilotError
from lorapilot.spec.explain import explain
from lorapilot.trainpilot.cluster_commands import add_cluster_command
from lorapilot.trainpilot.comfy_commands import add_comfy_commands
from lorapilot.trainpilot.commands import add_commands
from lorapilot.trainpilot.options import add_spec_options, load_for
from lorapilot.trainpilot.temp_dir import trainer_temp_dir
from lorapilot.workspace import Workspace

EXIT_OK = 0
EXIT_INTERNAL = 1  # training failed (bad image, unloadable model) or an internal error
EXIT_INVALID = 2  # the config or the request is invalid

log = logging.getLogger("trainpilot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainpilot", description="LoRA Pilot training runs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser(
        "validate",
        help="check a training config and print the normalised spec",
        description="Exit 0 and print the normalised spec as YAML, or exit 2 and "
        "print every problem with its field, the value and the fix. With --explain, say what a "
        "spec field or section means instead.",
    )
    validate.add_argument("file", type=Path, nargs="?", help="YAML or TOML config in any supported dialect")
    validate.add_argument("--json", action="store_true", help="print the spec as JSON instead of YAML")
    validate.add_argument(
        "--explain",
        metavar="FIELD",
        help="print a spec field's type, default, accepted values and meaning (e.g. training.learning_rate, "
        "datasets.folder), or a section's fields (e.g. training); no config needed",
    )
    add_spec_options(validate)
    validate.set_defaults(handler=cmd_validate)

    train = sub.add_parser(
        "train",
        help="run a training config in the foreground (no daemon)",
        description="Validate the config, then train it here with a progress bar. A run "
        "folder with saved state is resumed unless --restart is given.",
    )
    train.add_argument("file", type=Path, nargs="?", help="YAML or TOML config in any supported dialect")
    train.add_argument("--restart", action="store_true", help="ignore saved state and start from step 0")
    add_spec_options(train)
    train.set_defaults(handler=cmd_train)
    add_commands(sub)
    add_comfy_commands(sub)
    add_cluster_command(sub)
    return parser


def cmd_validate(args: argparse.Namespace) -> int:
    if args.explain is not None:
        print(explain(args.explain))
        return EXIT_OK
    loaded = load_for(args, Workspace.from_env(args.workspace))
    data = loaded.spec.model_dump(mode="json")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        if loaded.dialect:
            print(f"# normalised from a {loaded.dialect} config")
        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    workspace = Workspace.from_env(args.workspace)
    loaded = load_for(args, workspace)
    with trainer_temp_dir(workspace.ensure()):  # before the engine's imports make their temp files
        from lorapilot.engine import train  # noqa: PLC0415 - torch/diffusers only when training

        try:
            result = train(loaded.spec, workspace, resume=not args.restart)
        except LoraPilotError as exc:  # a valid config that cannot train here (an image, the model...)
            print(f"training failed: {exc}", file=sys.stderr)
            return EXIT_INTERNAL
    folder = Path(loaded.spec.output.folder)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"LoRA:    {result.lora}")
    print(f"samples: {folder / 'samples'}")
    print(f"logs:    {folder / '_logs' / 'train.log'}  (metrics: {folder / '_logs' / 'metrics.json'})")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if sys.stderr.isatty():  # the progress bar shows each step; train.log keeps the lines
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda record: not record.name.startswith("lorapilot.train.steps"))
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except LoraPilotError as exc:  # the message names the problem and the fix; no traceback
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `trainpilot list | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_INTERNAL
    except Exception:  # the last line of defence: a message, the details in the log
        log.exception("internal error; please report it with the config that caused it")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
