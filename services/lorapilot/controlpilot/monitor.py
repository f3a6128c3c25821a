"""The monitor: `/api/telemetry` for the page, `/metrics` for Prometheus, and what the appliance
runs on: `/api/versions` and the same versions in the page footer (lorapilot.appliance.versions).

`/metrics` is behind the appliance login like everything else, unless the scraper sends
`Authorization: Bearer <token>` matching `config/metrics-token` in the workspace (one line;
absent or empty: no token access).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from functools import cache
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lorapilot.appliance import versions
from lorapilot.controlpilot import jobs
from lorapilot.controlpilot.telemetry import Telemetry
from lorapilot.spool import JobState
from lorapilot.spool.views import all_views
from lorapilot.web.app import allow_bearer_token, workspace_of

logger = logging.getLogger(__name__)
bp = Blueprint("monitor", __name__)
METRICS_TOKEN_FILE = "metrics-token"


def init_app(app: Flask) -> None:
    app.extensions["controlpilot.telemetry"] = Telemetry(workspace_of(app).root)
    app.register_blueprint(bp)
    allow_bearer_token(app, "monitor.metrics", lambda: metrics_token(current_app))
    app.context_processor(lambda: {"versions": installed_versions(), "versions_summary": versions_summary()})


@cache
def installed_versions() -> list[dict[str, Any]]:
    """Read once per process: what is installed changes only with a reinstall, which restarts it."""
    return [component.to_json() for component in versions.report()]


def versions_summary() -> str:
    """The footer's one line: LoRA Pilot's version and torch's with its build."""
    shown = {c["name"]: c for c in installed_versions()}
    torch = shown["torch"]
    build = f" ({torch['detail']})" if torch["detail"] else ""
    return f"LoRA Pilot {shown['lorapilot']['version']} · torch {torch['version'] or 'not installed'}{build}"


def metrics_token(app: Flask) -> str | None:
    """The scrapers' token: the app setting, else `config/metrics-token`; None when neither is set."""
    configured = app.config.get("CONTROLPILOT_METRICS_TOKEN")
    if configured:
        return str(configured)
    path = workspace_of(app).config / METRICS_TOKEN_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return None


def telemetry() -> Telemetry:
    return current_app.extensions["controlpilot.telemetry"]


@bp.get("/api/telemetry")
def telemetry_now() -> Response:
    report = telemetry().snapshot()
    return jsonify(**report, history=telemetry().recent())


@bp.get("/api/versions")
def versions_now() -> Response:
    return jsonify(versions=installed_versions())


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(telemetry().snapshot(), jobs.spool()))
    return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)


class _Snapshot(Collector):
    """Host, GPU and job gauges from one telemetry report and one read of the spool."""

    def __init__(self, report: dict[str, Any], spool: Any) -> None:
        self.report, self.spool = report, spool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from _host_gauges(self.report["host"])
        yield from _gpu_gauges(self.report["gpu"])
        yield from _job_gauges([jobs.summary(view) for view in all_views(self.spool)])


def _gauge(name: str, text: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"lorapilot_{name}", text, labels=labels)


def _host_gauges(host: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    cpu = _gauge("host_cpu_percent", "CPU utilisation of the host, percent")
    cpu.add_metric([], host["cpu_percent"])
    memory = _gauge("host_memory_bytes", "host memory", ["kind"])
    for kind in ("total", "used", "available"):
        memory.add_metric([kind], host["memory"][f"{kind}_bytes"])
    disk = _gauge("workspace_disk_bytes", "disk of the workspace volume", ["kind"])
    for kind in ("total", "used", "free"):
        disk.add_metric([kind], host["disk"][f"{kind}_bytes"])
    yield from (cpu, memory, disk)


def _gpu_gauges(report: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    available = _gauge("gpu_available", "1 when NVML reports GPUs, 0 on a machine without one")
    available.add_metric([], 1.0 if report["available"] else 0.0)
    yield available
    fields = {
        "utilization_percent": ("gpu_utilization_percent", "GPU utilisation, percent"),
        "memory_used_bytes": ("gpu_memory_used_bytes", "GPU memory in use"),
        "memory_total_bytes": ("gpu_memory_total_bytes", "GPU memory in all"),
        "temperature_c": ("gpu_temperature_celsius", "GPU temperature"),
        "power_w": ("gpu_power_watts", "GPU power draw"),
    }
    for key, (name, text) in fields.items():
        gauge = _gauge(name, text, ["gpu", "name"])
        for sample in report["gpus"]:
            if sample[key] is not None:
                gauge.add_metric([str(sample["index"]), sample["name"]], float(sample[key]))
        yield gauge


def _job_gauges(views: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    counts = Counter(view["state"] for view in views)
    by_state = _gauge("jobs", "jobs in the spool by state", ["state"])
    for state in JobState:
        by_state.add_metric([state], counts.get(state, 0))
    yield by_state
    fields = {
        "step": ("job_step", "the step a job has reached"),
        "total": ("job_total_steps", "the steps a job runs in all"),
        "loss": ("job_loss", "the job's latest training loss"),
        "lr": ("job_learning_rate", "the job's current learning rate"),
        "it_per_s": ("job_iterations_per_second", "training speed"),
        "eta_s": ("job_eta_seconds", "estimated seconds to the end of the run"),
    }
    progress = _gauge("job_progress_ratio", "step / total of a job (1 when done)", ["job", "name", "state"])
    gauges = {key: _gauge(name, text, ["job", "name"]) for key, (name, text) in fields.items()}
    for view in views:
        progress.add_metric([view["id"], view["name"], view["state"]], view["progress"])
        status = view["status"] or {}
        for key, gauge in gauges.items():
            if status.get(key) is not None:
                gauge.add_metric([view["id"], view["name"]], float(status[key]))
    yield progress
    yield from gauges.values()
