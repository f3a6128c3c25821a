"""Watching a job from the command line: `run`'s progress bar and `logs -f`."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from lorapilot.spool import JobRecord, JobState, Spool, read_status

POLL_S = 0.5


class Follower:
    """A progress bar for one job, fed from its status.json; `update()` once per poll."""

    def __init__(self, spool: Spool, record: JobRecord, folder: Path) -> None:
        self.spool = spool
        self.record = record
        self.folder = folder
        self.bar = None
        self.said_queued = False

    def update(self) -> bool:
        """Refresh the bar; True once the job has reached done, failed or cancelled."""
        record = self.spool.locate(self.record.id)
        if record is not None:
            self.record = record
        status = read_status(self.folder)
        if self.record.state is JobState.QUEUED and not self.said_queued:
            print(f"{self.record.name}: queued, waiting for the daemon", file=sys.stderr)
            self.said_queued = True
        if status is not None and status.total and self.record.state is JobState.RUNNING:
            self._draw(status.step, status.total, status.loss)
        return record is None or record.state.terminal

    def _draw(self, step: int, total: int, loss: float | None) -> None:
        if self.bar is None:
            from tqdm import tqdm  # noqa: PLC0415

            self.bar = tqdm(total=total, initial=step, desc=self.record.name, unit="step", dynamic_ncols=True)
        self.bar.total = total
        self.bar.update(step - self.bar.n)
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def finish(self) -> int:
        """Print where the job ended; the exit code of `run` (0 done, 1 otherwise)."""
        status = read_status(self.folder)
        if status is not None and status.total and self.record.state is JobState.DONE:
            self._draw(status.step, status.total, status.loss)
        if self.bar is not None:
            self.bar.close()
        name, state = self.record.name, self.record.state
        if state is JobState.DONE:
            for warning in status.warnings if status else []:
                print(f"warning: {warning}", file=sys.stderr)
            lora = status.lora if status and status.lora else str(self.folder / f"{name}.safetensors")
            print(f"LoRA:    {lora}")
            print(f"samples: {self.folder / 'samples'}")
            print(f"logs:    {self.folder / '_logs' / 'train.log'}")
            return 0
        if state is JobState.FAILED:
            error = self.spool.error_of(self.record) or (status.error if status else None) or "see the log"
            print(f"{name} failed: {error}", file=sys.stderr)
            return 1
        if state is JobState.CANCELLED:
            saved = f"; last saved LoRA: {status.lora}" if status and status.lora else ""
            print(f"{name} cancelled{saved}; `trainpilot retry {name}` resumes it", file=sys.stderr)
            return 1
        print(f"{name} is {state.value}; `trainpilot status {name}` shows where it is", file=sys.stderr)
        return 1

    def follow(self) -> int:
        """Watch until the job ends. Ctrl-C stops watching, not the job."""
        try:
            while not self.update():
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            if self.bar is not None:
                self.bar.close()
            name = self.record.name
            print(
                f"\nstopped watching; {name} keeps training. `trainpilot logs {name} -f` watches it again, "
                f"`trainpilot cancel {name}` stops it",
                file=sys.stderr,
            )
            return 130
        return self.finish()


def tail(path: Path, out: TextIO, done: Callable[[], bool]) -> None:
    """Print `path` as it grows until `done()` says the job has ended (then print the rest)."""
    position = 0
    while True:
        finished = done()
        if path.is_file():
            with path.open("r", encoding="utf-8", errors="replace") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
            if chunk:
                out.write(chunk)
                out.flush()
        if finished:
            return
        time.sleep(POLL_S)
