"""Per-image seeds.

Each image's seed is derived from (global seed, dataset, class index, strategy, index within the
class) by SHA-256, so an image is the same whatever the batch size, shard count, shard order or
number of workers that produced it.
"""

from __future__ import annotations

import hashlib

import numpy as np


def image_seed(global_seed: int, dataset: str, class_index: int, strategy: str, index: int) -> int:
    key = f"{global_seed}/{dataset}/{class_index}/{strategy}/{index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") & ((1 << 63) - 1)


def class_rng(global_seed: int, dataset: str, class_index: int, strategy: str) -> np.random.Generator:
    """The random stream a prompt strategy draws from for one class (templates, negatives)."""
    return np.random.default_rng(image_seed(global_seed, dataset, class_index, strategy, -1))
