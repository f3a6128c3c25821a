"""The queue commands of `trainpilot`: run, submit, list, status, logs, cancel, retry, daemon."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from lorapilot.spool import Job, JobRecord, JobState, Spool
from lorapilot.spool.status import mark_state
from lorapilot.spool.views import all_views, job_view, queue_position
from lorapilot.trainpilot.follow import Follower, tail
from lorapilot.trainpilot.job_text import describe, log_path, table
from lorapilot.trainpilot.options import add_spec_options, add_workspace, load_for
from lorapilot.workspace import Workspace

EXIT_OK = 0
EXIT_FAILED = 1
CANCEL_WAIT_S = 30.0  # how long `cancel` waits for the daemon to stop a running job

log = logging.getLogger("trainpilot")


def _spool(args: argparse.Namespace) -> Spool:
    return Spool(Workspace.from_env(args.workspace).ensure())


def _queue(args: argparse.Namespace) -> tuple[Spool, JobRecord, Path]:
    """Validate the config (exit 2 with every problem) and queue it under a unique name."""
    spool = _spool(args)
    spec = load_for(args, spool.ws).spec
    folder = Path(spec.output.folder)
    job = Job.for_spec(
        spec,
        priority=args.priority,
        gpus=args.gpus,
        profile=args.profile,
        dataset=args.dataset,
        overrides=args.overrides,
    )
    record = spool.submit(job, folder)
    print(f"queued {record.name} (id {record.id})", file=sys.stderr)
    return spool, record, folder


def cmd_submit(args: argparse.Namespace) -> int:
    _, record, _ = _queue(args)
    print(record.id)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    spool, record, folder = _queue(args)
    if args.detach:
        print(record.id)
        return EXIT_OK
    follower = Follower(spool, record, folder)
    if spool.live_daemons():
        return follower.follow()
    from lorapilot.trainpilot.daemon import Daemon, detect_devices  # noqa: PLC0415

    print(
        "no trainpilot daemon is running: training here (Ctrl-C cancels; `trainpilot retry NAME` resumes)",
        file=sys.stderr,
    )
    Daemon(spool.ws, detect_devices(), only=record.id, interrupt_cancels=True).serve(follower.update)
    follower.update()
    return follower.finish()


def cmd_list(args: argparse.Namespace) -> int:
    views = all_views(_spool(args))
    if args.state:
        views = [v for v in views if v["state"] in args.state]
    if args.json:
        print(json.dumps(views, indent=1))
    elif views:
        print(table(views))
    else:
        print("no jobs", file=sys.stderr)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    spool = _spool(args)
    record = spool.find(args.job)
    view = job_view(spool, record, queue_position(spool, record))
    print(json.dumps(view, indent=1) if args.json else describe(view))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    spool = _spool(args)
    record = spool.find(args.job)
    view = job_view(spool, record)
    path = log_path(view)
    if args.follow and path is not None:

        def ended() -> bool:
            now = spool.locate(record.id)
            return now is None or now.state.terminal

        try:
            tail(path, sys.stdout, ended)
        except KeyboardInterrupt:
            return 130
    elif path is not None and path.is_file():
        sys.stdout.write(path.read_text(encoding="utf-8", errors="replace"))
    elif view["error"] is None:
        print(f"{record.name} has no log yet ({view['state']})", file=sys.stderr)
    final = job_view(spool, spool.locate(record.id) or record)
    if final["error"]:
        print(f"error: {final['error']}", file=sys.stderr)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    spool = _spool(args)
    record, now = spool.cancel(args.job)
    if now:
        mark_state(spool.run_folder(record), JobState.CANCELLED)
        print(f"cancelled {record.name} ({record.id})")
        return EXIT_OK
    print(f"asked the daemon to stop {record.name}; it saves its state first", file=sys.stderr)
    deadline = time.monotonic() + CANCEL_WAIT_S
    while time.monotonic() < deadline:
        found = spool.locate(record.id)
        if found is not None and found.state.terminal:
            if found.state is JobState.CANCELLED:
                print(f"cancelled {record.name} ({record.id})")
                return EXIT_OK
            print(
                f"{record.name} ended as {found.state.value} before the cancel took effect", file=sys.stderr
            )
            return EXIT_FAILED
        time.sleep(0.1)
    print(f"{record.name} has not stopped yet; the daemon cancels it at its next step", file=sys.stderr)
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    spool = _spool(args)
    record = spool.retry(args.job)
    mark_state(spool.run_folder(record), JobState.QUEUED)
    print(f"queued {record.name} ({record.id}) again; it resumes from its last saved state")
    return EXIT_OK


def cmd_daemon(args: argparse.Namespace) -> int:
    from lorapilot.trainpilot.daemon import Daemon, detect_devices  # noqa: PLC0415

    logging.getLogger().handlers[0].setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    workspace = Workspace.from_env(args.workspace)
    Daemon(workspace, detect_devices(args.gpus), poll_s=args.poll, start_method=args.start_method).serve()
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the queue commands on the `trainpilot` parser."""
    run = sub.add_parser(
        "run",
        help="queue a training run and follow it to the end",
        description="Queue the run (as `submit` does) and show its progress until it ends. Without "
        "a running daemon, train it here in the foreground. Exit 0 when done, 1 when it failed "
        "or was cancelled, 2 when the config is invalid.",
    )
    run.add_argument("file", type=Path, nargs="?", help="YAML or TOML config in any supported dialect")
    run.add_argument("--detach", action="store_true", help="queue it, print its id and return")
    add_spec_options(run)
    _add_queue_options(run)
    run.set_defaults(handler=cmd_run)

    submit = sub.add_parser("submit", help="queue a training config for the daemon and print its id")
    submit.add_argument("file", type=Path, nargs="?", help="YAML or TOML config in any supported dialect")
    add_spec_options(submit)
    _add_queue_options(submit)
    submit.set_defaults(handler=cmd_submit)

    listing = sub.add_parser("list", help="every job with its state, oldest first")
    listing.add_argument("--json", action="store_true", help="print the jobs as JSON")
    listing.add_argument(
        "--state", action="append", metavar="STATE", help="only jobs in this state (repeatable)"
    )
    add_workspace(listing)
    listing.set_defaults(handler=cmd_list)

    for name, handler, text in (
        ("status", cmd_status, "one job: state, progress, files, error"),
        ("logs", cmd_logs, "a job's train.log"),
        ("cancel", cmd_cancel, "stop a queued or running job (its saved LoRAs stay)"),
        ("retry", cmd_retry, "queue a failed or cancelled job again; it resumes from its saved state"),
    ):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("job", metavar="NAME|ID", help="the job's run name or id")
        if name == "status":
            parser.add_argument("--json", action="store_true", help="print the job as JSON")
        if name == "logs":
            parser.add_argument("-f", "--follow", action="store_true", help="keep printing until it ends")
        add_workspace(parser)
        parser.set_defaults(handler=handler)

    daemon = sub.add_parser(
        "daemon",
        help="serve the job queue (supervisord runs this)",
        description="Claim queued jobs and train each in its own process: one per GPU, one at a "
        "time without a GPU. SIGTERM saves the running jobs; they resume on the next start.",
    )
    daemon.add_argument(
        "--gpus", help="GPUs to use, e.g. 0,1; or cpu, or cpu:N for N CPU slots (default: all visible)"
    )
    daemon.add_argument("--poll", type=float, default=0.25, help="seconds between queue scans")
    daemon.add_argument(
        "--start-method",
        choices=("forkserver", "spawn"),
        help="how training processes start (default: forkserver without GPUs, spawn with them)",
    )
    add_workspace(daemon)
    daemon.set_defaults(handler=cmd_daemon)


def _gpus(text: str) -> int | str:
    if text == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GPUs or 'all'") from None
    if value < 1:
        raise argparse.ArgumentTypeError("needs at least 1 GPU")
    return value


def _add_queue_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    parser.add_argument("--gpus", type=_gpus, default=1, help="GPUs for the job: a number or 'all'")
