"""What a stand-in dataset writer is given: the classes, the images per class of each split as
the dataset's reader will see them, the image side, and a painter; it counts what it writes."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from genbench.rehearsal.painter import Painter, encode

SPLITS = ("train", "test")
MIN_DISTINCT_PER_CLASS = 16  # distinct images per class at least, where a split rule forces more files


@dataclass
class Plan:
    name: str
    classnames: tuple[str, ...]
    per_split: dict[str, int]
    size: int
    painter: Painter
    templates: tuple[str, ...] = ()
    requested: dict[str, int] | None = None
    images: int = 0
    links: int = 0
    _made: set = field(default_factory=set)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def items(self, split: str) -> Iterator[tuple[int, int]]:
        """(class k, image i of that class) for every image of `split`, class by class."""
        for k in range(self.num_classes):
            for i in range(self.per_split[split]):
                yield k, i

    def labels(self, split: str) -> list[int]:
        return [k for k, _ in self.items(split)]

    def write_image(self, path: Path, array: np.ndarray, fmt: str = "JPEG") -> None:
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        path.write_bytes(encode(array, fmt))
        self.images += 1

    def distinct_per_class(self) -> int:
        """Distinct images per class: all of them unless a split rule forced more test images than
        requested; then the request, or MIN_DISTINCT_PER_CLASS if more."""
        total = sum(self.per_split.values())
        requested = self.requested or self.per_split
        if self.per_split["test"] <= requested["test"]:
            return total
        return min(total, max(MIN_DISTINCT_PER_CLASS, sum(requested.values())))

    def link_image(self, path: Path, target: Path) -> None:
        """Another file of the same image: a hard link, or a copy where links are not supported."""
        try:
            os.link(target, path)
        except OSError:
            shutil.copyfile(target, path)
        self.images += 1
        self.links += 1

    def count_arrays(self, n: int) -> None:
        """Count images written inside a container file (pickle batch, idx, h5, csv, tar)."""
        self.images += n
