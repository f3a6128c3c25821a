"""A run's logs: `train.log` for people, `metrics.jsonl` per logged step, `metrics.json` in the
guide's shape (`{"step": [], "loss": [], "lr": []}`), and TensorBoard event files."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lorapilot.atomic_files import write_json_atomic

log = logging.getLogger("lorapilot.train")


@dataclass(frozen=True)
class MetricPoint:
    step: int
    loss: float
    lr: float
    it_per_s: float
    epoch: int
    elapsed_s: float


class RunLog:
    """Owns the run's log files; `close()` detaches the file handler again."""

    def __init__(self, logs: Path, resume_step: int = 0) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(logs / "train.log", encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger("lorapilot").addHandler(self.handler)
        logging.getLogger("lorapilot").setLevel(logging.INFO)
        self.points = self._load_points(resume_step)
        self._rewrite_jsonl()
        self.writer = self._tensorboard()

    def _load_points(self, resume_step: int) -> list[MetricPoint]:
        """Earlier points of a resumed run, up to the step it resumes from."""
        path = self.logs / "metrics.jsonl"
        points: list[MetricPoint] = []
        if resume_step and path.is_file():
            for line in path.read_text().splitlines():
                try:
                    point = MetricPoint(**json.loads(line))
                except (ValueError, TypeError):
                    continue
                if point.step <= resume_step:
                    points.append(point)
        return points

    def _rewrite_jsonl(self) -> None:
        with (self.logs / "metrics.jsonl").open("w") as handle:
            handle.writelines(json.dumps(asdict(p)) + "\n" for p in self.points)

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - optional, slow import
        except ImportError:
            log.warning("tensorboard is not installed; no TensorBoard event files for this run")
            return None
        return SummaryWriter(str(self.logs / "tensorboard"))

    def record(self, point: MetricPoint) -> None:
        self.points.append(point)
        with (self.logs / "metrics.jsonl").open("a") as handle:
            handle.write(json.dumps(asdict(point)) + "\n")
        if self.writer is not None:
            self.writer.add_scalar("loss", point.loss, point.step)
            self.writer.add_scalar("lr", point.lr, point.step)
            self.writer.add_scalar("it_per_s", point.it_per_s, point.step)

    def flush(self) -> None:
        """Rewrite metrics.json; done at log intervals and saves, not every step."""
        write_json_atomic(
            self.logs / "metrics.json",
            {
                "step": [p.step for p in self.points],
                "loss": [p.loss for p in self.points],
                "lr": [p.lr for p in self.points],
            },
        )
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()
        logging.getLogger("lorapilot").removeHandler(self.handler)
        self.handler.close()
