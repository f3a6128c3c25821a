"""`comfybridge`: the service that hands finished LoRAs to ComfyUI and renders their test sweeps.

Each cycle it lists `jobs/done/`, publishes every job it has not published yet (publish.py) and,
unless turned off, renders one job's strength sweep through ComfyUI (a backlog of sweeps never
holds up the publishing of a job that finishes meanwhile). What it did is remembered in
`config/comfybridge-state.json` (rewritten atomically after each job), so a restart neither
publishes a job twice nor forgets one. It only reads what training writes: a failure here (a
broken job, ComfyUI down) is logged and retried or skipped, never raised into training.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorapilot.atomic_files import write_json_atomic
from lorapilot.comfy.client import ComfyClient
from lorapilot.comfy.errors import ComfyError, ComfyUnavailableError, PublishError, SettingsError
from lorapilot.comfy.publish import Publication, publish, publish_checkpoints
from lorapilot.comfy.settings import ComfySettings, load_settings, settings_path
from lorapilot.comfy.sweep import render_sweep
from lorapilot.errors import LoraPilotError
from lorapilot.spool import JobRecord, JobState, Spool
from lorapilot.workspace import Workspace

log = logging.getLogger("comfybridge")

STATE_FILE = "comfybridge-state.json"


@dataclass
class BridgeState:
    path: Path
    published: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # job id → why it cannot be published
    tested: dict[str, str] = field(default_factory=dict)  # job id → sweep folder, or why it failed

    @classmethod
    def load(cls, path: Path) -> BridgeState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:  # keep the bad file for a person to look at
            log.warning(
                "cannot read %s (%s); starting over, publications are found by their sidecars", path, exc
            )
            path.replace(path.with_suffix(".broken"))
            return cls(path)
        return cls(
            path, dict(data.get("published", {})), dict(data.get("skipped", {})), dict(data.get("tested", {}))
        )

    def save(self) -> None:
        write_json_atomic(
            self.path, {"published": self.published, "skipped": self.skipped, "tested": self.tested}
        )


class Bridge:
    def __init__(
        self,
        workspace: Workspace,
        settings: ComfySettings | None = None,
        client: ComfyClient | None = None,
        *,
        test: bool | None = None,
        checkpoints: bool = False,
    ) -> None:
        self.ws = workspace
        self.checkpoints = checkpoints  # also publish the periodic saves (opt-in)
        self.spool = Spool(workspace)
        # settings and client given by the caller stay fixed; otherwise config/comfy.yaml is followed
        self._follow_settings = settings is None and client is None
        self._forced_test = test
        self._settings_stamp = self._stamp()
        self.settings = settings or load_settings(workspace)
        # one quick try per cycle: the next cycle is the retry, so a ComfyUI that is down blocks nothing
        self.client = client or ComfyClient(self.settings.url, timeout=10.0, retries=0)
        self.test = self.settings.test_after_publish if test is None else test
        self.state = BridgeState.load(workspace.config / STATE_FILE)
        self._comfy_down = False

    def _stamp(self) -> bytes | None:
        """The settings file's bytes: a few hundred, read once a cycle, so any edit is noticed."""
        try:
            return settings_path(self.ws).read_bytes()
        except OSError:
            return None

    def reload_settings(self) -> None:
        """Pick up a changed config/comfy.yaml (ControlPilot's settings form saves it) without a restart."""
        stamp = self._stamp()
        if not self._follow_settings or stamp == self._settings_stamp:
            return
        self._settings_stamp = stamp
        try:
            settings = load_settings(self.ws)
        except SettingsError as exc:
            log.warning("keeping the previous settings: %s", exc)
            return
        if settings.url != self.settings.url:
            self.client = ComfyClient(settings.url, timeout=10.0, retries=0)
            self._comfy_down = False
        self.settings = settings
        self.test = settings.test_after_publish if self._forced_test is None else self._forced_test
        log.info("settings reloaded from %s (ComfyUI at %s)", settings_path(self.ws), settings.url)

    def cycle(self) -> list[Publication]:
        """Publish (and test) what is new in jobs/done/; returns what was published this time."""
        self.reload_settings()
        done = sorted(self.spool.records([JobState.DONE]), key=lambda r: r.id)
        made = []
        for record in done:
            if record.id in self.state.published or record.id in self.state.skipped:
                continue
            try:
                publication = publish(self.ws, record)
                extra = publish_checkpoints(self.ws, record) if self.checkpoints else []
            except PublishError as exc:
                log.warning("not publishing job %s: %s", record.id, exc)
                self.state.skipped[record.id] = str(exc)
            except OSError as exc:  # disk full, permissions: try again next cycle
                log.error("publishing job %s failed, will retry: %s", record.id, exc)
                continue
            else:
                self.state.published[record.id] = {
                    "name": record.name,
                    "lora": publication.lora_name,
                    "sha256": publication.sha256,
                    "checkpoints": [p.lora_name for p in extra],
                }
                made.append(publication)
            self.state.save()
        if self.test:  # one sweep a cycle, so a job finishing meanwhile is published within one sweep
            untested = [r for r in done if r.id in self.state.published and r.id not in self.state.tested]
            if untested:
                self._test(untested[0])
        return made

    def _test(self, record: JobRecord) -> None:
        """Render the job's sweep; when ComfyUI is down it stays untested for a later cycle."""
        try:
            result = render_sweep(self.ws, record, self.client, self.settings)
        except ComfyUnavailableError as exc:
            if not self._comfy_down:
                log.warning("test renders wait for ComfyUI: %s", exc)
            self._comfy_down = True
            return
        except (ComfyError, OSError, ValueError) as exc:
            log.warning("test render of %s failed: %s", record.name, exc)
            self.state.tested[record.id] = f"failed: {exc}"
        else:
            log.info("test renders of %s: %s", record.name, result.contact_sheet)
            self.state.tested[record.id] = str(result.folder)
        self._comfy_down = False
        self.state.save()

    def run(self, interval: float, stop: threading.Event) -> None:
        log.info("watching %s every %g s", self.spool.folder(JobState.DONE), interval)
        while not stop.is_set():
            try:
                self.cycle()
            except Exception:  # the service must outlive any one bad cycle
                log.exception("bridge cycle failed; trying again in %g s", interval)
            stop.wait(interval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comfybridge", description="publish finished LoRAs to ComfyUI")
    parser.add_argument("--workspace", help="workspace root (default: $LORAPILOT_WORKSPACE or /workspace)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between looks at jobs/done/")
    parser.add_argument("--once", action="store_true", help="one cycle, then exit")
    parser.add_argument("--no-test", action="store_true", help="publish only; no test renders")
    parser.add_argument("--checkpoints", action="store_true", help="publish the periodic saves too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _serve(args)
    except LoraPilotError as exc:  # e.g. a broken config/comfy.yaml: the message says the fix
        print(f"comfybridge: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    workspace = Workspace.from_env(args.workspace).ensure()
    bridge = Bridge(workspace, test=False if args.no_test else None, checkpoints=args.checkpoints)
    if args.once:
        bridge.cycle()
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    bridge.run(args.interval, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
