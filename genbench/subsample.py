"""A seeded per-class subsample of a split (prepare's `test_per_class`, a size knob for
rehearsals and quick runs).

Classes are visited in index order with one generator (numpy's default_rng(seed)); for class c,
a seeded permutation of its images (multi-hot labels: its positives) and the first `per_class`
of them are drawn. The subsample is the union of the draws, in split order. Single-label, a
class keeps min(per_class, its images); multi-label, at most `per_class` images are drawn for
each class (an image drawn for one class may show others).
"""

from __future__ import annotations

import numpy as np

from genbench.errors import GenBenchError


def per_class_subsample(labels: np.ndarray, num_classes: int, per_class: int | None, seed: int) -> np.ndarray:
    """Sorted indices into `labels` of the subsample; every index when `per_class` is None."""
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(len(labels))
    if labels.ndim == 1:
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
        pools = (order[bounds[c] : bounds[c + 1]] for c in range(num_classes))
    elif labels.ndim == 2 and labels.shape[1] == num_classes:
        pools = (np.flatnonzero(labels[:, c]) for c in range(num_classes))
    else:
        raise GenBenchError(f"labels must be (N,) class indices or (N, {num_classes}) multi-hot, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    chosen = np.zeros(len(labels), dtype=bool)
    for pool in pools:
        chosen[rng.permutation(pool)[:per_class]] = True
    return np.flatnonzero(chosen)
