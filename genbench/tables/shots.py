"""Figure 3's data: CLER of a data source against the number of its images per class (shots).

For each shot count k, `draws` times: take k images of every class at random (without
replacement, seeded by (seed, draw, k)), score CLER on the real test set, and report the mean
and the standard deviation over the draws (one draw when k takes every image of every class).
Shot counts above the smallest class's image count are left out.

Multi-hot labels (N, C), e.g. a multi-label dataset's originals: a draw of k is the k-shot
protocol of genbench.kshot (per class, k of its positives not drawn for an earlier class) with
the same seeds, and a shot count the protocol cannot draw in every draw is left out. One-hot
rows are read as the class indices they encode.
"""

from __future__ import annotations

import numpy as np

from genbench.errors import GenBenchError
from genbench.kshot import kshot_indices
from genbench.metrics import cler


def default_shot_counts(max_shots: int) -> list[int]:
    """1, 2, 4, ... up to `max_shots`, and `max_shots` itself."""
    if max_shots < 1:
        return []
    counts = [2**i for i in range(max_shots.bit_length()) if 2**i <= max_shots]
    return sorted(set(counts) | {max_shots})


def subset(labels: np.ndarray, shots: int, rng: np.random.Generator, num_classes: int) -> np.ndarray:
    """Indices of `shots` rows of every class, drawn without replacement, in ascending order."""
    picked = [rng.choice(np.flatnonzero(labels == c), size=shots, replace=False) for c in range(num_classes)]
    return np.sort(np.concatenate(picked))


def multi_hot_subset(labels: np.ndarray, shots: int, seed: list[int], num_classes: int) -> np.ndarray | None:
    """The k-shot protocol's rows of multi-hot `labels` in ascending order, or None when it cannot draw them."""
    try:
        return np.sort(kshot_indices(labels, num_classes, shots, seed))
    except GenBenchError:
        return None


def cler_by_shots(feats, labels, test_feats, test_labels, *, num_classes: int, metric: str = "accuracy",
                  shots: list[int] | None = None, draws: int = 3, seed: int = 0) -> list[dict]:
    """[{shots, cler, cler_std, draws}] per shot count (see the module docstring)."""
    feats, labels = np.asarray(feats), np.asarray(labels)
    if draws < 1:
        raise GenBenchError(f"draws = {draws!r} must be 1 or more")
    if labels.ndim == 2 and len(labels) and (labels.sum(axis=1) == 1).all():
        labels = labels.argmax(axis=1)  # one-hot rows: the single-label draw, same seeds and images
    multi_hot = labels.ndim == 2
    if multi_hot:
        counts = labels.sum(axis=0)
    else:
        counts = np.bincount(labels, minlength=num_classes) if len(labels) else np.zeros(num_classes, int)
    smallest = int(counts.min()) if num_classes else 0
    wanted = default_shot_counts(smallest) if shots is None else sorted({int(k) for k in shots if 0 < int(k) <= smallest})
    points = []
    for k in wanted:
        scores = []
        for draw in range(1 if (counts == k).all() and not multi_hot else draws):
            if multi_hot:
                idx = multi_hot_subset(labels, k, [seed, draw, k], num_classes)
                if idx is None:
                    scores = []
                    break
            else:
                idx = subset(labels, k, np.random.default_rng([seed, draw, k]), num_classes)
            scores.append(cler(feats[idx], labels[idx], test_feats, test_labels, num_classes=num_classes,
                               metric=metric)["cler"])
        if not scores:
            continue
        points.append({"shots": k, "cler": float(np.mean(scores)), "cler_std": float(np.std(scores)),
                       "draws": len(scores)})
    return points
