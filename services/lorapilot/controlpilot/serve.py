"""`controlpilot`: serve ControlPilot with gunicorn (one worker, threads), as supervisord runs it.

One worker process on purpose: NVML and the telemetry history live in that process; threads serve
concurrent requests.
"""

from __future__ import annotations

import argparse
import os

from lorapilot.web.serving import prepare_service, serve, user_errors_end

DEFAULT_PORT = 7878


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="controlpilot", description="ControlPilot dashboard, jobs API, monitor and services"
    )
    parser.add_argument("--host", default=os.environ.get("CONTROLPILOT_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CONTROLPILOT_PORT", DEFAULT_PORT)))
    parser.add_argument("--workspace", default=None, help="workspace root (default $LORAPILOT_WORKSPACE)")
    parser.add_argument(
        "--supervisor-config",
        default=os.environ.get("CONTROLPILOT_SUPERVISOR_CONFIG"),
        help="supervisord.conf whose unix socket the services panel uses (default: services panel off)",
    )
    parser.add_argument("--threads", type=int, default=8)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    with user_errors_end("controlpilot"):
        args = parse_args(argv)
        workspace = prepare_service(args.workspace)
        from lorapilot.controlpilot.app import create_app  # noqa: PLC0415 - after logging and TMPDIR are set

        app = create_app({"CONTROLPILOT_SUPERVISOR_CONFIG": args.supervisor_config}, workspace=workspace)
        serve(app, args.host, args.port, args.threads)


if __name__ == "__main__":
    main()
