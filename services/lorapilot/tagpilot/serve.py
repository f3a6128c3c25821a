"""`tagpilot`: serve TagPilot with gunicorn (one worker, threads), as supervisord runs it.

One worker process on purpose: auto-captioning jobs and the loaded captioner live in that process;
threads serve concurrent requests.
"""

from __future__ import annotations

import argparse
import os

from lorapilot.web.serving import prepare_service, serve, user_errors_end

MB = 1024 * 1024
DEFAULT_PORT = 7861


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tagpilot", description="TagPilot dataset and caption service")
    parser.add_argument("--host", default=os.environ.get("TAGPILOT_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("TAGPILOT_PORT", DEFAULT_PORT)))
    parser.add_argument("--workspace", default=None, help="workspace root (default $LORAPILOT_WORKSPACE)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max-upload-mb", type=int, default=2048, help="largest single request")
    parser.add_argument("--max-image-mb", type=int, default=100, help="largest single image file")
    parser.add_argument("--max-zip-mb", type=int, default=4096, help="largest unpacked size of one zip")
    parser.add_argument("--captioner-idle-s", type=float, default=300.0, help="release an unused model after")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    with user_errors_end("tagpilot"):
        args = parse_args(argv)
        workspace = prepare_service(args.workspace)
        from lorapilot.tagpilot.app import create_app  # noqa: PLC0415 - after logging and TMPDIR are set

        app = create_app(
            {
                "MAX_CONTENT_LENGTH": args.max_upload_mb * MB,
                "TAGPILOT_MAX_IMAGE_BYTES": args.max_image_mb * MB,
                "TAGPILOT_MAX_ZIP_TOTAL_BYTES": args.max_zip_mb * MB,
                "TAGPILOT_CAPTIONER_IDLE_S": args.captioner_idle_s,
            },
            workspace=workspace,
        )
        serve(app, args.host, args.port, args.threads)


if __name__ == "__main__":
    main()
