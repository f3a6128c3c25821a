"""Host and GPU telemetry: CPU, RAM, the workspace disk (psutil) and NVML, with a short history."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import psutil

from lorapilot.controlpilot import gpu

HISTORY_LENGTH = 300  # samples kept; at one sample per second, five minutes
MIN_INTERVAL_S = 1.0  # a new history sample at most this often, however many clients poll


def host(disk_path: Path) -> dict[str, Any]:
    """CPU, RAM and the disk that holds `disk_path` (the workspace)."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(disk_path))
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_count": psutil.cpu_count() or 0,
        "load_average": list(load) if load else None,
        "memory": {
            "total_bytes": memory.total,
            "used_bytes": memory.total - memory.available,
            "available_bytes": memory.available,
            "percent": memory.percent,
        },
        "disk": {
            "path": str(disk_path),
            "total_bytes": disk.total,
            "used_bytes": disk.used,
            "free_bytes": disk.free,
            "percent": disk.percent,
        },
    }


class Telemetry:
    """Samples on demand and keeps the last few minutes for the page's sparklines."""

    def __init__(self, disk_path: Path) -> None:
        self.disk_path = disk_path
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_LENGTH)
        self._lock = threading.Lock()
        psutil.cpu_percent(interval=None)  # the first call only starts psutil's CPU counter

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        report = {"time": now, "host": host(self.disk_path), "gpu": gpu.read().to_json()}
        with self._lock:
            if not self.history or now - self.history[-1]["time"] >= MIN_INTERVAL_S:
                self.history.append(_point(report))
        return report

    def recent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.history)


def _point(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers the history keeps per sample."""
    gpus = report["gpu"]["gpus"]
    return {
        "time": report["time"],
        "cpu_percent": report["host"]["cpu_percent"],
        "memory_percent": report["host"]["memory"]["percent"],
        "gpu_utilization_percent": [g["utilization_percent"] for g in gpus],
        "gpu_memory_used_bytes": [g["memory_used_bytes"] for g in gpus],
        "gpu_temperature_c": [g["temperature_c"] for g in gpus],
        "gpu_power_w": [g["power_w"] for g in gpus],
    }
