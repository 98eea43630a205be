"""What a stand-in dataset writer is given: the classes, the images per class of each split as
the dataset's reader will see them, the image side, and a painter; it counts what it writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from genbench.rehearsal.painter import Painter, encode

SPLITS = ("train", "test")


@dataclass
class Plan:
    name: str
    classnames: tuple[str, ...]
    per_split: dict[str, int]
    size: int
    painter: Painter
    templates: tuple[str, ...] = ()
    images: int = 0
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

    def count_arrays(self, n: int) -> None:
        """Count images written inside a container file (pickle batch, idx, h5, csv, tar)."""
        self.images += n
