"""The cost meter: what a block of work used, as a `Reading`.

    with Meter("generate") as m:
        ...
        m.add_items(len(images))
    m.reading.wall_s, m.reading.cpu_s, m.reading.gpu_s

Definitions:
- wall_s: monotonic wall-clock time inside the block (what an instance is billed for);
- cpu_s: user + system CPU time of this process (all threads) plus that of child processes that
  ended and were waited for inside the block (`resource.getrusage` SELF + CHILDREN deltas);
- vcpus: the CPUs this process may run on (its affinity mask, else `os.cpu_count()`);
- cpu_utilisation = cpu_s / (wall_s * vcpus);
- peak_rss_mb: the resident-memory high-water mark of the process since it started, or of its
  largest waited-for child if higher (one DVC stage runs in one process, so this is the stage's);
- GPU figures: see `cost.gpu` (gpus == [] where there is no GPU or NVML driver).
Without GPUs the meter starts no thread and costs two getrusage calls.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Sequence

from cost.errors import CostError
from cost.gpu import GpuSampler


def visible_vcpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _peak_rss_mb() -> float:
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    per_unit = 1.0 if sys.platform == "darwin" else 1024.0  # ru_maxrss: bytes on macOS, KiB on Linux
    return peak * per_unit / (1024 * 1024)


@dataclass(frozen=True)
class Reading:
    """What one metered block of work used (see the module docstring for each field)."""

    stage: str
    started_at: str
    wall_s: float
    cpu_s: float
    vcpus: int
    cpu_utilisation: float
    peak_rss_mb: float
    items: int
    hostname: str
    gpus: list[dict] = field(default_factory=list)
    gpu_s: float = 0.0
    gpu_energy_j: float | None = None

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def gpu_util_mean(self) -> float | None:
        """Mean over GPUs of each GPU's time-weighted utilisation (percent); None without GPUs."""
        utils = [g["util_mean"] for g in self.gpus if g.get("util_mean") is not None]
        return sum(utils) / len(utils) if utils else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Reading":
        missing = [name for name in _REQUIRED_READING_FIELDS if name not in data]
        if missing:
            raise CostError(
                f"meter reading lacks {', '.join(missing)}; write readings with cost.meter.Reading.to_dict"
            )
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["gpus"] = [dict(g) for g in values.get("gpus") or []]
        return cls(**values)


_REQUIRED_READING_FIELDS = ("stage", "started_at", "wall_s", "cpu_s", "vcpus", "cpu_utilisation",
                            "peak_rss_mb", "items", "hostname")


class Meter:
    """Context manager that measures a block of work; `reading` holds the result after the block."""

    def __init__(self, stage: str, *, gpu_sample_interval_s: float = 0.5,
                 gpu_indices: Sequence[int] | None = None):
        if not isinstance(stage, str) or not stage:
            raise CostError(f"meter stage name {stage!r} must be a non-empty string")
        if not gpu_sample_interval_s > 0:
            raise CostError(f"gpu_sample_interval_s = {gpu_sample_interval_s!r} must be greater than 0")
        self.stage = stage
        self.gpu_sample_interval_s = gpu_sample_interval_s
        self.gpu_indices = gpu_indices
        self.items = 0
        self.reading: Reading | None = None
        self._sampler: GpuSampler | None = None

    def add_items(self, n: int) -> None:
        """Count `n` more items (images, queries, ...) produced inside the block."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise CostError(f"add_items({n!r}): the count must be an integer of 0 or more")
        self.items += n

    def __enter__(self) -> "Meter":
        self._sampler = GpuSampler(self.gpu_sample_interval_s, indices=self.gpu_indices)
        self._started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self._sampler.start()
        self._cpu0 = _cpu_seconds()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        wall = time.perf_counter() - self._t0
        cpu = _cpu_seconds() - self._cpu0
        gpus = self._sampler.stop() if self._sampler else []
        vcpus = visible_vcpus()
        energies = [g["energy_j"] for g in gpus if g.get("energy_j") is not None]
        self.reading = Reading(
            stage=self.stage,
            started_at=self._started_at,
            wall_s=wall,
            cpu_s=cpu,
            vcpus=vcpus,
            cpu_utilisation=cpu / (wall * vcpus) if wall > 0 else 0.0,
            peak_rss_mb=_peak_rss_mb(),
            items=self.items,
            hostname=socket.gethostname(),
            gpus=gpus,
            gpu_s=sum((g["gpu_s"] for g in gpus), 0.0),
            gpu_energy_j=sum(energies) if energies else None,
        )
