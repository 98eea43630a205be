"""Figure 3's data: CLER of a data source against the number of its images per class (shots).

For each shot count k, `draws` times: take k images of every class at random (without
replacement, seeded by (seed, draw, k)), score CLER on the real test set, and report the mean
and the standard deviation over the draws (one draw when k takes every image of every class).
Shot counts above the smallest class's image count are left out.

Multi-label sources: the k images of a class are drawn among the rows `draw_classes` assigns to
it (for a k-shot original set, the class each image was drawn for: its manifest's class_index),
and the prototypes use the rows' multi-hot labels. So k = the set's own shots is the whole set,
and every smaller k is a k-shot set of the same kind. One-hot labels are read as the class
indices they encode.

With `probe=True` each draw is also scored by the linear probe (genbench.probe, clean protocol:
L2 chosen on a validation split of the drawn images), giving `probe` and `probe_std` (Figure 3 as
published plots the probe); at k = 1 there is no validation split, so `probe` is None there.
"""

from __future__ import annotations

import numpy as np

from genbench.errors import GenBenchError
from genbench.metrics import cler
from genbench.probe import linear_probe


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


def row_classes(labels: np.ndarray, draw_classes=None) -> np.ndarray:
    """The class each row is drawn as: `draw_classes`, or the labels (integer or one-hot)."""
    if draw_classes is not None:
        classes = np.asarray(draw_classes, dtype=np.int64)
        if classes.shape != (len(labels),):
            raise GenBenchError(f"draw_classes must hold one class per row ({len(labels)}), got shape {classes.shape}")
        return classes
    if labels.ndim == 1:
        return labels
    if len(labels) and not (labels.sum(axis=1) == 1).all():
        raise GenBenchError("multi-hot labels with several classes per row need draw_classes (the class each row was drawn for)")
    return labels.argmax(axis=1)


def cler_by_shots(feats, labels, test_feats, test_labels, *, num_classes: int, metric: str = "accuracy",
                  shots: list[int] | None = None, draws: int = 3, seed: int = 0, draw_classes=None,
                  probe: bool = False) -> list[dict]:
    """[{shots, cler, cler_std, draws}] per shot count, with probe and probe_std when `probe`
    (see the module docstring)."""
    feats, labels = np.asarray(feats), np.asarray(labels)
    if draws < 1:
        raise GenBenchError(f"draws = {draws!r} must be 1 or more")
    classes = row_classes(labels, draw_classes)
    counts = np.bincount(classes, minlength=num_classes) if len(classes) else np.zeros(num_classes, int)
    smallest = int(counts.min()) if num_classes else 0
    wanted = default_shot_counts(smallest) if shots is None else sorted({int(k) for k in shots if 0 < int(k) <= smallest})
    points = []
    for k in wanted:
        scores, probes = [], []
        for draw in range(1 if (counts == k).all() else draws):
            idx = subset(classes, k, np.random.default_rng([seed, draw, k]), num_classes)
            scores.append(cler(feats[idx], labels[idx], test_feats, test_labels, num_classes=num_classes,
                               metric=metric)["cler"])
            if probe and k >= 2:
                probes.append(linear_probe(feats[idx], labels[idx], test_feats, test_labels, metric=metric, seed=seed,
                                           num_classes=num_classes)["score"])
        point = {"shots": k, "cler": float(np.mean(scores)), "cler_std": float(np.std(scores)), "draws": len(scores)}
        if probe:
            point |= {"probe": float(np.mean(probes)) if probes else None,
                      "probe_std": float(np.std(probes)) if probes else None}
        points.append(point)
    return points
