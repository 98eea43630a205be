"""GPU readings through NVML: a background sampler per block of work, absent cleanly without GPUs.

Definitions (per GPU, over the sampled span from the first to the last sample):
- each sample after the first stands for the interval since the previous one (sample and hold):
  NVML's utilisation is the share of its own recent period in which a kernel ran;
- gpu_s = sum(util_i / 100 * dt_i): the wall time the GPU was busy; util_mean = 100 * gpu_s / span;
- power_mean_w = sum(power_i * dt_i) / span;
- energy_j = the delta of NVML's total-energy counter (millijoules since the driver loaded) when
  the GPU has one, else the power integral; `energy_source` says which;
- mem_peak_mb = the highest device memory in use among the samples (all processes on the GPU).
Utilisation, power and memory are device-wide: another process on the same GPU counts too.

NVML is initialised once a process; when `pynvml` is missing or has no driver to talk to, the
meter records no GPUs and says nothing. `CUDA_VISIBLE_DEVICES` selects GPUs by UUID or by NVML
index (NVML counts in PCI bus order: set CUDA_DEVICE_ORDER=PCI_BUS_ID so the indices agree).
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

MIB = 1024 * 1024

_nvml_cache: dict[str, Any] = {}  # "module" -> the initialised pynvml module, or None when unavailable


def nvml() -> Any | None:
    """The initialised pynvml module, or None where there is no NVML library or driver."""
    if "module" not in _nvml_cache:
        _nvml_cache["module"] = _init_nvml()
    return _nvml_cache["module"]


def _init_nvml() -> Any | None:
    try:
        module = importlib.import_module("pynvml")
        module.nvmlInit()
        return module
    except Exception:  # no package, no libnvidia-ml, no driver: all mean "no GPU readings"
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _visible(index: int, uuid: str | None, cuda_visible: str | None) -> bool:
    if cuda_visible is None:
        return True
    for entry in (e.strip() for e in cuda_visible.split(",")):
        if not entry:
            continue
        if entry.isdigit() and int(entry) == index:
            return True
        if uuid and entry.startswith(("GPU-", "MIG-")) and uuid.startswith(entry):
            return True
    return False


def list_gpus(indices: Sequence[int] | None = None) -> list[tuple[int, str, Any]]:
    """(NVML index, name, handle) of the GPUs this process may use; [] without NVML."""
    lib = nvml()
    if lib is None:
        return []
    try:
        count = lib.nvmlDeviceGetCount()
    except Exception:
        return []
    cuda_visible = None if indices is not None else os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = []
    for index in range(count):
        if indices is not None and index not in indices:
            continue
        try:
            handle = lib.nvmlDeviceGetHandleByIndex(index)
            name = _text(lib.nvmlDeviceGetName(handle))
        except Exception:
            continue
        uuid = _read(lambda: _text(lib.nvmlDeviceGetUUID(handle))) if cuda_visible is not None else None
        if _visible(index, uuid, cuda_visible):
            gpus.append((index, name, handle))
    return gpus


def _read(call: Callable[[], Any]) -> Any | None:
    try:
        return call()
    except Exception:  # a metric this GPU does not support (NVML_ERROR_NOT_SUPPORTED and kin)
        return None


@dataclass(frozen=True)
class Sample:
    t: float
    util: float | None  # percent
    mem_bytes: float | None
    power_mw: float | None


def summarise_samples(
    samples: Sequence[Sample], energy_start_mj: float | None, energy_end_mj: float | None
) -> dict:
    """Per-GPU figures from a time-ordered list of samples (see the module docstring)."""
    busy = util_span = power_int_mj = power_span = 0.0
    for prev, cur in zip(samples, samples[1:]):
        dt = cur.t - prev.t
        if cur.util is not None:
            busy += cur.util / 100.0 * dt
            util_span += dt
        if cur.power_mw is not None:
            power_int_mj += cur.power_mw * dt
            power_span += dt
    mems = [s.mem_bytes for s in samples if s.mem_bytes is not None]
    if energy_start_mj is not None and energy_end_mj is not None and energy_end_mj >= energy_start_mj:
        energy_j, source = (energy_end_mj - energy_start_mj) / 1000.0, "counter"
    elif power_span > 0:
        energy_j, source = power_int_mj / 1000.0, "power_integral"
    else:
        energy_j, source = None, None
    return {
        "gpu_s": busy,
        "util_mean": 100.0 * busy / util_span if util_span > 0 else None,
        "mem_peak_mb": max(mems) / MIB if mems else None,
        "energy_j": energy_j,
        "energy_source": source,
        "power_mean_w": power_int_mj / 1000.0 / power_span if power_span > 0 else None,
        "samples": len(samples),
    }


@dataclass
class _Device:
    index: int
    name: str
    handle: Any
    samples: list[Sample] = field(default_factory=list)
    energy_start_mj: float | None = None
    energy_end_mj: float | None = None


class GpuSampler:
    """Samples every visible GPU every `interval_s` seconds in a daemon thread between start and stop."""

    def __init__(self, interval_s: float = 0.5, *, indices: Sequence[int] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self._clock = clock
        self._lib = nvml()
        self._devices = [_Device(i, n, h) for i, n, h in list_gpus(indices)] if self._lib else []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self._devices)

    def _energy(self, dev: _Device) -> float | None:
        return _read(lambda: self._lib.nvmlDeviceGetTotalEnergyConsumption(dev.handle))

    def _sample_all(self) -> None:
        lib = self._lib
        with self._lock:
            for dev in self._devices:
                util = _read(lambda: lib.nvmlDeviceGetUtilizationRates(dev.handle).gpu)
                mem = _read(lambda: lib.nvmlDeviceGetMemoryInfo(dev.handle).used)
                power = _read(lambda: lib.nvmlDeviceGetPowerUsage(dev.handle))
                dev.samples.append(Sample(self._clock(), util, mem, power))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample_all()

    def start(self) -> None:
        if not self._devices:
            return
        for dev in self._devices:
            dev.energy_start_mj = self._energy(dev)
        self._sample_all()
        self._thread = threading.Thread(target=self._run, name="cost-gpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> list[dict]:
        """Stop sampling and return one dict per GPU: index, name and the figures of `summarise_samples`."""
        if not self._devices:
            return []
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample_all()
        out = []
        for dev in self._devices:
            dev.energy_end_mj = self._energy(dev)
            out.append({"index": dev.index, "name": dev.name,
                        **summarise_samples(dev.samples, dev.energy_start_mj, dev.energy_end_mj)})
        return out
