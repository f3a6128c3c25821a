"""GPU telemetry through NVML (nvidia-ml-py): utilisation, memory, temperature and power per GPU.

nvidia-ml-py is a default dependency: on a machine without an NVIDIA driver NVML's init fails
(its shared library is not found) and the report says "no NVIDIA GPU or driver" with NVML's words.
Without a GPU the report says so with the reason, and never invents numbers.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_initialised: bool | str = False  # True once nvmlInit worked; the reason text once it failed


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    utilization_percent: float | None
    memory_used_bytes: int
    memory_total_bytes: int
    temperature_c: float | None
    power_w: float | None
    power_limit_w: float | None


@dataclass(frozen=True)
class GpuReport:
    available: bool
    reason: str | None = None  # why there is no GPU data
    driver: str | None = None
    gpus: list[GpuSample] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _init() -> str | None:
    """None when NVML is ready, else why it is not (remembered: a CPU machine stays one)."""
    global _initialised  # noqa: PLW0603 - NVML is process-wide state; initialise it once
    with _lock:
        if _initialised is True:
            return None
        if isinstance(_initialised, str):
            return _initialised
        try:
            import pynvml  # noqa: PLC0415 - imported on first use: a process that never asks pays nothing
        except ImportError:  # an environment not installed from the lock
            _initialised = "nvidia-ml-py is not installed (a LoRA Pilot dependency: rerun scripts/bootstrap)"
            return _initialised
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            _initialised = f"no NVIDIA GPU or driver ({exc})"
            logger.info("GPU telemetry off: %s", _initialised)
            return _initialised
        _initialised = True
        return None


def read() -> GpuReport:
    """One sample of every GPU, or the reason there is none."""
    reason = _init()
    if reason is not None:
        return GpuReport(available=False, reason=reason)
    import pynvml  # noqa: PLC0415

    try:
        count = pynvml.nvmlDeviceGetCount()
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = [_sample(pynvml, index) for index in range(count)]
    except pynvml.NVMLError as exc:
        logger.warning("NVML query failed: %s", exc)
        return GpuReport(available=False, reason=f"NVML query failed: {exc}")
    if not gpus:
        return GpuReport(available=False, reason="the NVIDIA driver reports no GPU", driver=driver)
    return GpuReport(available=True, driver=driver, gpus=gpus)


def _sample(pynvml: Any, index: int) -> GpuSample:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return GpuSample(
        index=index,
        name=_text(pynvml.nvmlDeviceGetName(handle)),
        utilization_percent=_optional(lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)),
        memory_used_bytes=int(memory.used),
        memory_total_bytes=int(memory.total),
        temperature_c=_optional(
            lambda: float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
        ),
        power_w=_optional(lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0),
        power_limit_w=_optional(lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0),
    )


def _optional(read_value: Any) -> float | None:
    """A reading some GPUs (or MIG slices) do not support is None, not an error."""
    import pynvml  # noqa: PLC0415

    try:
        return read_value()
    except pynvml.NVMLError:
        return None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
