"""Synthetic, class-dependent images for stand-in datasets and pools.

Each class of a dataset gets a seeded two-colour stripe pattern (colours, orientation, period),
so classes are separable by their pixels; each image is its class's pattern plus a little
seeded noise, so no two images are the same bytes. Everything follows from (dataset, seed).
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image

NOISE = 6  # per-pixel noise amplitude of one image around its class pattern


class Painter:
    """Images of one dataset's classes, drawn from one seeded stream."""

    def __init__(self, dataset: str, seed: int, stream: int = 1):
        """`stream` picks the noise sequence: the same class patterns, other images."""
        self.key = [int(seed), zlib.crc32(dataset.encode())]
        self.noise = np.random.default_rng(self.key + [int(stream)])
        self._patterns: dict[tuple[int, int], np.ndarray] = {}

    def pattern(self, k: int, size: int) -> np.ndarray:
        """Class k's pattern, (size, size, 3) int16."""
        cached = self._patterns.get((k, size))
        if cached is None:
            rng = np.random.default_rng(self.key + [0, int(k)])
            colours = rng.integers(NOISE, 256 - NOISE, size=(2, 3))
            orientation = int(rng.integers(3))
            period = int(rng.integers(1, max(2, size // 4) + 1))
            y, x = np.mgrid[:size, :size]
            coordinate = (x, y, x + y)[orientation]
            cached = colours[(coordinate // period) % 2].astype(np.int16)
            self._patterns[(k, size)] = cached
        return cached

    def rgb(self, k: int, size: int) -> np.ndarray:
        """One image of class k, (size, size, 3) uint8."""
        noise = self.noise.integers(-NOISE, NOISE + 1, size=(size, size, 1), dtype=np.int16)
        return (self.pattern(k, size) + noise).astype(np.uint8)

    def grey(self, k: int, size: int) -> np.ndarray:
        """One greyscale image of class k, (size, size) uint8."""
        return self.rgb(k, size).mean(axis=2).astype(np.uint8)

    def bands(self, classes: list[int], size: int) -> np.ndarray:
        """An image holding several classes side by side (vertical bands), (size, size, 3) uint8."""
        image = np.empty((size, size, 3), dtype=np.uint8)
        edges = np.linspace(0, size, len(classes) + 1).round().astype(int)
        for k, left, right in zip(classes, edges[:-1], edges[1:]):
            image[:, left:right] = self.rgb(k, size)[:, left:right]
        return image

    def clutter(self, size: int) -> np.ndarray:
        """An image of no class (noise or a flat colour), (size, size, 3) uint8."""
        if self.noise.random() < 0.5:
            return self.noise.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        flat = np.broadcast_to(self.noise.integers(0, 256, size=3), (size, size, 3))
        return (flat + self.noise.integers(-NOISE, NOISE + 1, size=(size, size, 1))).clip(0, 255).astype(np.uint8)


def encode(array: np.ndarray, fmt: str) -> bytes:
    """uint8 (H, W, 3) or (H, W) -> encoded bytes in `fmt` (JPEG, PNG, PPM, WEBP)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue()
