"""The demo dataset of `scripts/run`: real photographs through TagPilot, as a user would bring them.

The images are the sample photographs bundled with scikit-image (`lorapilot.testing.sample_photos`:
a cat, an astronaut, a rocket, coffee... in the formats uploads arrive in), or the user's own
folder named by `LORAPILOT_DEMO_DATASET`. They go through the running TagPilot's HTTP API: a
dataset `demo` is created, the images (with any `.txt` captions beside them) uploaded, auto-captioned
with the tiny built-in tagger, and exported to `datasets/images/<repeats>_demo`, where
`trainpilot run --dataset demo` finds it.

Usage: python -m lorapilot.appliance.demo_dataset [--check] --tagpilot URL [--workspace DIR]
It needs the dev extras (scikit-image, onnx, requests), which `scripts/bootstrap` installs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from lorapilot.data.images import IMAGE_SUFFIXES
from lorapilot.errors import LoraPilotError
from lorapilot.web.credentials import appliance_password
from lorapilot.workspace import Workspace

DEMO_DATASET_ENV = "LORAPILOT_DEMO_DATASET"
DATASET = "demo"
TRIGGER_WORD = "lpdemo"
CAPTIONER_FOLDER = "tiny-wd14"  # under models/captioners/: a WD14-style tagger built on the spot
CAPTION_SUFFIXES = (".txt", ".caption")
UPLOAD_BATCH = 16  # files per upload request: a progress line each, and no huge request


class DemoDatasetError(LoraPilotError):
    """The demo dataset cannot be made; the message says what to change."""


@dataclass(frozen=True)
class DemoSource:
    """The files to upload (images and their caption files) and where they came from, in words."""

    files: list[Path]
    description: str

    @property
    def images(self) -> list[Path]:
        return [path for path in self.files if path.suffix.lower() in IMAGE_SUFFIXES]


def user_folder(value: str) -> DemoSource:
    """The images (and `.txt` captions) in the folder `LORAPILOT_DEMO_DATASET` names, subfolders too."""
    folder = Path(value).expanduser()
    named = f"{DEMO_DATASET_ENV}={value}"
    if not folder.exists():
        raise DemoDatasetError(f"{named}: no such folder; point it at a folder of images, or unset it")
    if not folder.is_dir():
        raise DemoDatasetError(f"{named}: not a folder; point it at a folder of images, or unset it")
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix.lower() in (*IMAGE_SUFFIXES, *CAPTION_SUFFIXES)
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    source = DemoSource(files, f"your folder {folder}")
    if not source.images:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DemoDatasetError(f"{named}: no images in it ({suffixes}); add some, or unset it")
    return source


def sample_photos(scratch: Path) -> DemoSource:
    """The 20 sample photographs, written into `scratch` as uploads (JPEG, PNG, CMYK, 16-bit...)."""
    from lorapilot.testing.sample_photos import write_photos  # noqa: PLC0415 - scikit-image is heavy

    written = write_photos(scratch)
    return DemoSource(sorted(written.values()), f"{len(written)} sample photographs (scikit-image's)")


def choose_source(environ: dict[str, str] | os._Environ, scratch: Path) -> DemoSource:
    """The user's folder when `LORAPILOT_DEMO_DATASET` is set (and not empty), else the sample photos."""
    value = environ.get(DEMO_DATASET_ENV, "").strip()
    return user_folder(value) if value else sample_photos(scratch)


def images_in_words(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"


def upload_batches(files: list[Path], size: int = UPLOAD_BATCH) -> Iterator[list[Path]]:
    """Batches of about `size` files; an image's caption file is always in its image's batch."""
    by_stem: dict[tuple[Path, str], list[Path]] = {}
    for path in files:
        by_stem.setdefault((path.parent, path.stem), []).append(path)
    batch: list[Path] = []
    for group in by_stem.values():
        if batch and len(batch) + len(group) > size:
            yield batch
            batch = []
        batch.extend(group)
    if batch:
        yield batch


class TagPilot:
    """The running TagPilot, logged in with the appliance password; errors carry its message."""

    def __init__(self, url: str, password: str, timeout_s: float = 300.0) -> None:
        from lorapilot.testing.web_client import ApplianceClient  # noqa: PLC0415 - the browser's login

        self.client = ApplianceClient(url, timeout_s)
        self.password = password

    def wait_until_up(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.client.http.get(f"{self.client.url}/healthz", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise DemoDatasetError(
                    f"TagPilot does not answer at {self.client.url}; see logs/tagpilot.log in the workspace"
                )
            time.sleep(0.5)

    def log_in(self) -> None:
        reply = self.client.login(self.password)
        if not reply.ok:
            raise DemoDatasetError(f"logging in to TagPilot failed ({reply.status_code}): {_error_of(reply)}")

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (), **kwargs: Any) -> requests.Response:
        """The reply; a status that is neither 2xx nor in `ok` raises with TagPilot's own message."""
        reply = self.client.call(method, path, **kwargs)
        if not reply.ok and reply.status_code not in ok:
            raise DemoDatasetError(f"TagPilot {method} {path}: {reply.status_code} {_error_of(reply)}")
        return reply


def _error_of(reply: requests.Response) -> str:
    try:
        return str(reply.json().get("error", reply.text))
    except ValueError:
        return reply.text[:300]


def make_demo_dataset(
    tagpilot: TagPilot, workspace: Workspace, source: DemoSource, say: Callable[[str], None]
) -> dict[str, Any]:
    """Upload, auto-caption and export `source` as TagPilot's dataset `demo`; the export's reply."""
    tagpilot.wait_until_up()
    tagpilot.log_in()
    if tagpilot.call("GET", f"/api/datasets/{DATASET}", ok=(404,)).status_code != 404:
        tagpilot.call("DELETE", f"/api/datasets/{DATASET}")
        say(f"the earlier dataset {DATASET!r} went to TagPilot's trash (restore it there if you need it)")
    settings = {"name": DATASET, "trigger_word": TRIGGER_WORD, "caption_style": "tags"}
    tagpilot.call("POST", "/api/datasets", json=settings)
    _upload(tagpilot, source, say)
    _autocaption(tagpilot, workspace, say)
    exported = tagpilot.call("POST", f"/api/datasets/{DATASET}/export", json={"replace": True}).json()
    count = images_in_words(exported["images"])
    say(f"exported to {exported['folder']}: {count}, {exported['repeats']} repeats")
    return exported


def _upload(tagpilot: TagPilot, source: DemoSource, say: Callable[[str], None]) -> None:
    total, sent, accepted = len(source.images), 0, 0
    say(f"uploading {images_in_words(total)} from {source.description} to TagPilot's dataset {DATASET!r}")
    for batch in upload_batches(source.files):
        parts = [("files", (path.name, path.read_bytes(), "application/octet-stream")) for path in batch]
        reply = tagpilot.call("POST", f"/api/datasets/{DATASET}/upload", files=parts).json()
        sent += sum(1 for path in batch if path.suffix.lower() in IMAGE_SUFFIXES)
        accepted = reply["summary"]["images"]
        for refusal in reply["rejected"]:
            say(f"  not taken: {refusal['name']}: {refusal['reason']}")
        say(f"uploaded {sent}/{total} ({accepted} in the dataset)")
    if accepted == 0:
        raise DemoDatasetError(f"TagPilot took none of the images from {source.description} (reasons above)")


def _autocaption(tagpilot: TagPilot, workspace: Workspace, say: Callable[[str], None]) -> None:
    captioner = workspace.model_dir("captioners") / CAPTIONER_FOLDER
    if not (captioner / "model.onnx").is_file():
        from lorapilot.testing.tiny_captioners import build_tiny_wd14  # noqa: PLC0415 - needs onnx

        build_tiny_wd14(captioner)
    shown_path = workspace.display(captioner)
    say(f"auto-captioning with the tiny built-in tagger ({shown_path}: random weights, so random tags)")
    choice = {"backend": "wd14", "source": CAPTIONER_FOLDER}
    body = {"captioner": choice, "mode": "ignore-existing"}
    job = tagpilot.call("POST", f"/api/datasets/{DATASET}/autocaption", json=body).json()
    shown = -1
    while job["finished"] is None:
        if job["done"] != shown and job["total"]:
            say(f"captioned {job['done']}/{job['total']}")
            shown = job["done"]
        time.sleep(0.5)
        job = tagpilot.call("GET", f"/api/jobs/{job['id']}").json()
    if job["state"] != "done":
        raise DemoDatasetError(f"auto-captioning {job['state']}: {job['error'] or job['errors']}")
    for problem in job["errors"]:
        say(f"  not captioned: {problem['image']}: {problem['error']}")
    say(f"captioned {job['written']} of the {job['total']} images without a caption")
    images = tagpilot.call("GET", f"/api/datasets/{DATASET}").json()["image_list"]
    for image in images[:2]:
        say(f"  {image['name']}: {image['caption']!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lorapilot.appliance.demo_dataset", description=__doc__)
    parser.add_argument("--tagpilot", help="TagPilot's URL, e.g. http://127.0.0.1:7861")
    parser.add_argument("--workspace", help="workspace root (default: $LORAPILOT_WORKSPACE or /workspace)")
    parser.add_argument("--check", action="store_true", help=f"only check ${DEMO_DATASET_ENV}")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(f"[run] {line}", flush=True)

    try:
        if args.check:
            value = os.environ.get(DEMO_DATASET_ENV, "").strip()
            if value:
                say(f"demo dataset: {images_in_words(len(user_folder(value).images))} from {value}")
            return 0
        if not args.tagpilot:
            parser.error("--tagpilot URL is required (unless --check)")
        workspace = Workspace.from_env(args.workspace)
        tagpilot = TagPilot(args.tagpilot, appliance_password(workspace))
        with tempfile.TemporaryDirectory(prefix="lorapilot-demo-") as scratch:
            make_demo_dataset(tagpilot, workspace, choose_source(os.environ, Path(scratch)), say)
    except LoraPilotError as exc:
        print(f"[run] {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
