"""Background auto-captioning: one job at a time, progress and cancel through the API.

The loaded model is kept between jobs (loading BLIP or Florence costs far more than captioning a
few images) and released after `idle_s` without use, so TagPilot gives the GPU back to training.

Modes: `ignore-existing` captions only images without a caption, `append` adds the new caption
to the existing one (tags merged without repeats, sentences one after the other), `overwrite`
replaces every caption.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from lorapilot.data.images import ImageError, load_image
from lorapilot.tagpilot.caption_edits import merge_caption
from lorapilot.tagpilot.captioners import BACKENDS, Captioner, CaptionerChoice, CaptionerError
from lorapilot.tagpilot.errors import BusyError, NotFoundError, TagPilotError
from lorapilot.tagpilot.store import DatasetStore
from lorapilot.tagpilot.stored_image import now_iso
from lorapilot.web.activity import CAPTIONING, ActivityLog
from lorapilot.web.state_db import WebStateDb
from lorapilot.workspace import Workspace

logger = logging.getLogger(__name__)

MODES = ("ignore-existing", "append", "overwrite")
_KEEP_FINISHED = 20


class CaptionerCache:
    """Holds at most one loaded captioner; releases it after `idle_s` seconds unused."""

    def __init__(self, workspace: Workspace, idle_s: float) -> None:
        self.workspace = workspace
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._choice: CaptionerChoice | None = None
        self._captioner: Captioner | None = None
        self._last_used = 0.0
        self._in_use = 0
        self._reaper: threading.Thread | None = None

    def acquire(self, choice: CaptionerChoice) -> Captioner:
        """The captioner for `choice`, loading it (and releasing another) when needed."""
        with self._lock:
            if self._choice != choice:
                self._release_locked()
                logger.info("loading captioner %s", choice.label)
                self._captioner = BACKENDS[choice.backend](choice, self.workspace)
                self._choice = choice
            captioner = self._captioner
            if captioner is None:
                raise CaptionerError(f"captioner {choice.label} did not load")
            self._in_use += 1
            self._start_reaper()
            return captioner

    def done(self) -> None:
        with self._lock:
            self._in_use -= 1
            self._last_used = time.monotonic()

    def status(self) -> dict[str, Any]:
        with self._lock:
            if self._choice is None:
                return {"loaded": None, "idle_s": self.idle_s}
            idle = 0.0 if self._in_use else time.monotonic() - self._last_used
            return {"loaded": self._choice.label, "idle_for_s": round(idle, 1), "idle_s": self.idle_s}

    def release_if_idle(self) -> bool:
        with self._lock:
            if self._captioner is None or self._in_use or time.monotonic() - self._last_used < self.idle_s:
                return False
            logger.info(
                "releasing captioner %s after %.0f s idle", self._choice and self._choice.label, self.idle_s
            )
            self._release_locked()
            return True

    def _release_locked(self) -> None:
        if self._captioner is not None:
            try:
                self._captioner.close()
            except Exception:
                logger.exception("closing captioner %s failed", self._choice and self._choice.label)
        self._captioner, self._choice = None, None
        gc.collect()
        torch = sys.modules.get("torch")  # only if a back-end imported it; never import it for this
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap, name="captioner-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        while True:
            time.sleep(max(0.2, min(5.0, self.idle_s / 4)))
            if self.release_if_idle():
                return


@dataclass
class CaptionJob:
    id: str
    dataset: str
    mode: str
    captioner: CaptionerChoice
    images: list[str] | None
    state: str = "queued"  # queued → loading → running → done | failed | cancelled
    total: int = 0
    done: int = 0
    written: int = 0
    current: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    started: str = field(default_factory=now_iso)
    finished: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset": self.dataset,
            "mode": self.mode,
            "captioner": self.captioner.label,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "written": self.written,
            "current": self.current,
            "errors": self.errors[-50:],
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
        }


class AutoCaptioner:
    """Runs captioning jobs one after another in a background thread."""

    def __init__(self, store: DatasetStore, cache: CaptionerCache, batch_size: int = 4) -> None:
        self.store, self.cache, self.batch_size = store, cache, batch_size
        self._activity = ActivityLog(WebStateDb.of(cache.workspace))  # idle stop waits while it runs
        self._jobs: dict[str, CaptionJob] = {}
        self._lock = threading.Lock()

    def start(
        self, dataset: str, captioner: CaptionerChoice, mode: str, images: list[str] | None
    ) -> CaptionJob:
        if mode not in MODES:
            raise TagPilotError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        self.store.get(dataset)  # 404 before a thread starts
        with self._lock:
            if self.active() is not None:
                raise BusyError("a captioning job is running; wait for it or cancel it")
            job = CaptionJob(uuid.uuid4().hex[:12], dataset, mode, captioner, images)
            self._jobs[job.id] = job
            self._forget_old()
        threading.Thread(target=self._run, args=(job,), name=f"caption-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> CaptionJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no captioning job {job_id!r}")
        return job

    def cancel(self, job_id: str) -> CaptionJob:
        job = self.get(job_id)
        job.cancel.set()
        return job

    def active(self) -> CaptionJob | None:
        return next((job for job in self._jobs.values() if job.finished is None), None)

    def busy(self, dataset: str) -> bool:
        job = self.active()
        return job is not None and job.dataset == dataset

    def jobs(self) -> list[CaptionJob]:
        return list(self._jobs.values())

    def _forget_old(self) -> None:
        finished = [job for job in self._jobs.values() if job.finished is not None]
        for job in finished[:-_KEEP_FINISHED]:
            del self._jobs[job.id]

    def _run(self, job: CaptionJob) -> None:
        try:
            with self._activity.busy(CAPTIONING):
                self._caption_all(job)
            job.state = "cancelled" if job.cancel.is_set() else "done"
        except (CaptionerError, TagPilotError) as exc:
            job.state, job.error = "failed", str(exc)
            logger.warning("captioning job %s failed: %s", job.id, exc)
        except Exception as exc:  # a back-end bug must end the job, not leave it "running" forever
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            logger.exception("captioning job %s failed", job.id)
        finally:
            job.current = None
            job.finished = now_iso()

    def _caption_all(self, job: CaptionJob) -> None:
        dataset = self.store.get(job.dataset)
        names = [record.name for record in dataset.records()]
        if job.images is not None:
            names = [name for name in names if name in set(job.images)]
        if job.mode == "ignore-existing":
            names = [name for name in names if not dataset.caption(name)]
        job.total = len(names)
        if not names:
            return
        job.state = "loading"
        captioner = self.cache.acquire(job.captioner)
        try:
            job.state = "running"
            for start in range(0, len(names), self.batch_size):
                if job.cancel.is_set():
                    return
                self._caption_batch(job, dataset, captioner, names[start : start + self.batch_size])
        finally:
            self.cache.done()

    def _caption_batch(self, job: CaptionJob, dataset: Any, captioner: Captioner, names: list[str]) -> None:
        images, loaded = [], []
        for name in names:
            job.current = name
            try:
                images.append(load_image(dataset.path_of(name)))
                loaded.append(name)
            except ImageError as exc:
                job.errors.append({"image": name, "error": exc.problem})
                job.done += 1
        if not loaded:
            return
        captions = captioner.caption(images)
        for name, text in zip(loaded, captions, strict=True):
            job.done += 1
            if not text:
                job.errors.append({"image": name, "error": "the captioner returned an empty caption"})
                continue
            with dataset.lock:
                old = dataset.caption(name)
                new = merge_caption(old, text, captioner.style) if job.mode == "append" else text
                dataset.set_caption(name, new)
            job.written += 1
