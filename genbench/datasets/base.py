"""What a dataset declares, and the in-memory form its splits are loaded into."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

METRICS = ("accuracy", "mean_per_class", "map_11point", "roc_auc")
GROUPS = ("Common", "Fine-grained", "Rare", "Embedded", "Custom")
TASKS = ("multiclass", "multilabel")


@dataclass(frozen=True)
class LabeledImages:
    """A split held in memory: uint8 RGB images (N, H, W, 3) and integer labels (N,)
    (or a multi-hot (N, C) matrix for multi-label tasks)."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)


# A loader takes (split, data root, image size) and returns the split, or raises GenBenchError
# saying where to get the data when it is not available locally.
Loader = Callable[[str, Path, int], LabeledImages]


@dataclass(frozen=True)
class DatasetSpec:
    """Metadata of one benchmark dataset: its real label set, prompt templates (each with one
    `{c}` placeholder for the class name), evaluation metric and loader."""

    name: str
    group: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    metric: str
    loader: Loader
    task: str = "multiclass"
    aliases: tuple[str, ...] = ()
    source: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"{self.name}: metric {self.metric!r} not in {METRICS}")
        if self.group not in GROUPS:
            raise ValueError(f"{self.name}: group {self.group!r} not in {GROUPS}")
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task {self.task!r} not in {TASKS}")
        if not self.templates or any("{c}" not in t for t in self.templates):
            raise ValueError(f"{self.name}: every template needs a '{{c}}' placeholder")

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def open_split(self, split: str, root: Path, image_size: int):
        """The split's label-first reader (`genbench.datasets.access.SplitReader`): labels now,
        images decoded only when asked for. A loader without an `open` of its own is read whole."""
        from genbench.datasets.access import SplitReader

        opener = getattr(self.loader, "open", None)
        if opener is not None:
            return opener(split, Path(root), image_size)
        return SplitReader.in_memory(self.loader(split, Path(root), image_size))

    @classmethod
    def from_metadata(cls, meta: dict) -> "DatasetSpec":
        """A spec rebuilt from `metadata()` output (as prepared data carries it); it has no loader."""

        def no_loader(split: str, root: Path, image_size: int) -> LabeledImages:
            raise RuntimeError(f"{meta['name']}: rebuilt from metadata, it cannot load data")

        return cls(
            name=meta["name"], group=meta["group"], classnames=tuple(meta["classnames"]),
            templates=tuple(meta["templates"]), metric=meta["metric"], task=meta.get("task", "multiclass"),
            loader=no_loader,
        )

    def metadata(self) -> dict:
        """The JSON-serialisable part, written beside prepared data for later stages."""
        return {
            "name": self.name,
            "group": self.group,
            "classnames": list(self.classnames),
            "templates": list(self.templates),
            "metric": self.metric,
            "task": self.task,
        }
