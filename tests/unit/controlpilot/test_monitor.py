"""Telemetry (real psutil numbers, NVML or a clear no-GPU state) and the Prometheus `/metrics`."""

from __future__ import annotations

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lorapilot.controlpilot import gpu
from lorapilot.spool import RunStatus, write_status

QUICK = {"profile": "quick_test", "dataset": "demo"}


def _has_gpu() -> bool:
    return gpu.read().available


def test_telemetry_reports_the_real_host(session, ws):
    report = session.ok("GET", "/api/telemetry")
    host = report["host"]
    assert host["cpu_count"] == psutil.cpu_count()
    assert 0.0 <= host["cpu_percent"] <= 100.0
    memory = psutil.virtual_memory()
    assert host["memory"]["total_bytes"] == memory.total
    assert 0 < host["memory"]["used_bytes"] <= memory.total
    disk = psutil.disk_usage(str(ws.root))
    assert host["disk"]["path"] == str(ws.root) and host["disk"]["total_bytes"] == disk.total
    assert 0 < host["disk"]["free_bytes"] <= disk.total
    assert report["history"] and report["history"][-1]["memory_percent"] == host["memory"]["percent"]


@pytest.mark.skipif(
    _has_gpu(), reason="this machine has an NVIDIA GPU; the no-GPU state shows only without one"
)
def test_without_a_gpu_the_telemetry_says_so_with_the_reason(session):
    """nvidia-ml-py is installed everywhere; without a driver NVML's init fails and says why."""
    report = session.ok("GET", "/api/telemetry")["gpu"]
    assert report["available"] is False and report["gpus"] == []
    assert report["reason"].startswith("no NVIDIA GPU or driver ("), report["reason"]
    assert "nvidia-ml-py is not installed" not in report["reason"]


@pytest.mark.gpu
@pytest.mark.skipif(not _has_gpu(), reason="needs an NVIDIA GPU and driver for NVML")
def test_nvml_reports_each_gpu(session):
    telemetry = session.ok("GET", "/api/telemetry")
    report = telemetry["gpu"]
    assert report["available"] is True and report["driver"]
    last = telemetry["history"][-1]  # the sparklines' series: one value per GPU
    assert len(last["gpu_temperature_c"]) == len(last["gpu_power_w"]) == len(report["gpus"])
    first = report["gpus"][0]
    assert first["name"] and first["memory_total_bytes"] > 0
    assert 0 <= first["memory_used_bytes"] <= first["memory_total_bytes"]
    assert first["utilization_percent"] is None or 0 <= first["utilization_percent"] <= 100
    assert first["temperature_c"] is None or 0 < first["temperature_c"] < 120
    text = session.call("GET", "/metrics").get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["lorapilot_gpu_available"].samples[0].value == 1.0
    assert families["lorapilot_gpu_memory_total_bytes"].samples[0].value == first["memory_total_bytes"]


def _families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_metrics_parse_and_carry_host_gpu_and_job_gauges(session, ws):
    job_id = session.ok("POST", "/api/jobs", json={**QUICK, "name": "gauged"})["id"]
    folder = ws.outputs / "gauged"
    folder.mkdir(parents=True)
    write_status(folder, RunStatus(id=job_id, name="gauged", state="queued", step=25, total=100, loss=0.125))
    reply = session.call("GET", "/metrics")
    assert reply.status_code == 200 and reply.content_type.startswith("text/plain")
    families = _families(reply.get_data(as_text=True))
    memory = {s.labels["kind"]: s.value for s in families["lorapilot_host_memory_bytes"].samples}
    assert memory["total"] == psutil.virtual_memory().total
    assert {s.labels["kind"] for s in families["lorapilot_workspace_disk_bytes"].samples} == {
        "total",
        "used",
        "free",
    }
    assert families["lorapilot_host_cpu_percent"].type == "gauge"
    assert families["lorapilot_gpu_available"].samples[0].value in (0.0, 1.0)
    jobs = {s.labels["state"]: s.value for s in families["lorapilot_jobs"].samples}
    assert jobs["queued"] == 1 and jobs["running"] == 0
    progress = families["lorapilot_job_progress_ratio"].samples
    assert [(s.labels["name"], s.labels["job"], s.value) for s in progress] == [("gauged", job_id, 0.25)]
    assert families["lorapilot_job_loss"].samples[0].value == 0.125
    assert families["lorapilot_job_total_steps"].samples[0].value == 100


def test_metrics_need_a_login_or_the_configured_bearer_token(app, ws):
    client = app.test_client()
    assert client.get("/metrics").status_code in (302, 401)
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code in (302, 401)
    (ws.config / "metrics-token").write_text("scrape-token-123\n")
    good = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert good.status_code == 200 and "lorapilot_jobs" in good.get_data(as_text=True)
    for wrong in ("Bearer scrape-token-12", "Basic scrape-token-123", "Bearer ", "scrape-token-123"):
        assert client.get("/metrics", headers={"Authorization": wrong}).status_code in (302, 401), wrong
    # the token opens /metrics only, never the API
    assert client.get("/api/jobs", headers={"Authorization": "Bearer scrape-token-123"}).status_code == 401
    (ws.config / "metrics-token").write_text("")
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code in (302, 401)
