"""Wall-clock timing of a metric call, for the evaluation-time figure (GenBench Figure 5)."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from genbench.errors import GenBenchError


def _synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[..., Any], *args, repeats: int = 3, warmup: int = 0, **kwargs) -> tuple[Any, list[float]]:
    """Call fn(*args, **kwargs) `warmup` untimed times, then `repeats` timed times.

    Returns (result of the last call, wall seconds of each timed call). CUDA work is synchronised
    before the clock starts and before it stops, so queued GPU kernels are counted.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise GenBenchError(f"repeats must be a positive integer, got {repeats!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise GenBenchError(f"warmup must be a non-negative integer, got {warmup!r}")
    for _ in range(warmup):
        fn(*args, **kwargs)
    seconds = []
    result = None
    for _ in range(repeats):
        _synchronize()
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        _synchronize()
        seconds.append(time.perf_counter() - start)
    return result, seconds
