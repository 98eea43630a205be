"""What an executor is told (`ExecutorOptions`) and what it hands back (`ShardRun`, `EmbedRun`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from genbench.errors import GenBenchError


@dataclass(frozen=True)
class ExecutorOptions:
    """How to run the shards.

    address: Ray cluster to connect to ('auto', 'HOST:6379', 'ray://HOST:10001'); None starts a
        local Ray instance on this machine (or reuses the one this process already started);
    workers: at most this many workers (default: one per GPU of the cluster, else one per
        `cpu_threads` CPUs);
    max_retries: how many more times a shard is tried after its worker failed or died;
    meter: a factory `meter(stage) -> context manager` with `add_items(n)` and, after the block,
        `reading.to_dict()` (e.g. cost.meter.Meter); Ray workers meter their own work with it and
        the run returns one reading per worker. The local executor runs inside the stage's meter
        and returns none.
    """

    address: str | None = None
    workers: int | None = None
    max_retries: int = 3
    meter: Callable[[str], Any] | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1):
            raise GenBenchError(f"executor workers = {self.workers!r} must be a whole number of 1 or more, or None for all")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise GenBenchError(f"executor max_retries = {self.max_retries!r} must be a whole number of 0 or more")


@dataclass
class ShardRun:
    """The outcome of making generation shards: their manifest rows in shard order, the images made
    now, the out-of-memory batch-size halvings (genbench.generation.ImageMaker.oom_events), the
    worker readings (dicts of cost.meter.Reading plus 'worker'), how many shard attempts failed
    and were retried, and how many workers ran."""

    rows: list[dict]
    made: int
    oom_events: list[dict] = field(default_factory=list)
    readings: list[dict] = field(default_factory=list)
    failures: int = 0
    workers: int = 1


@dataclass
class EncodedSet:
    """The features of one image set, one row per manifest row and in manifest order."""

    features: np.ndarray
    manifest: pd.DataFrame


@dataclass
class EmbedRun:
    """The outcome of encoding image sets: each set's features, the worker readings, and how many
    shard attempts failed and were retried."""

    sets: dict[str, EncodedSet]
    readings: list[dict] = field(default_factory=list)
    failures: int = 0
    workers: int = 1
