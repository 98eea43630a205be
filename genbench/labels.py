"""Labels as manifests, feature files and metrics carry them.

Manifest rows of every image set have `class_index` (int) and `class_name`; prepared sets
(test, original) also have `labels`, the sorted list of class indices present in the image.
- Single-label datasets: `labels` = [class_index].
- Multi-label datasets (task "multilabel", e.g. VOC 2007): `labels` lists every class present;
  `class_index` is, for the original set, the class the k-shot protocol drew the image for
  (genbench.kshot), so each class still has exactly `shots` rows; for the test set, the lowest
  class present, or -1 when none is (class_name is then "").
Generated and retrieved images are single-class (the class of their prompt or query) and have
only `class_index`.

Feature files (genbench.features) hold `labels` as integer class indices (N,), except the sets of
a multi-label dataset whose manifest has `labels`: there a multi-hot (N, C) int64 matrix. When a
multi-label dataset is scored, single-class labels become one-hot rows (`scoring_targets`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

MULTILABEL = "multilabel"


def manifest_label_columns(labels: np.ndarray, classnames: Sequence[str],
                           drawn_for: np.ndarray | None = None) -> list[dict]:
    """Per image, {class_index, class_name, labels} as the module defines them, from integer labels
    (N,) or multi-hot labels (N, C); `drawn_for` gives a multi-label set's class_index."""
    labels = np.asarray(labels)
    rows = []
    for i, label in enumerate(labels):
        present = np.flatnonzero(label).tolist() if labels.ndim == 2 else [int(label)]
        if drawn_for is not None:
            index = int(drawn_for[i])
        else:
            index = present[0] if present else -1
        rows.append({"class_index": index, "class_name": classnames[index] if index >= 0 else "",
                     "labels": [int(c) for c in present]})
    return rows


def feature_labels(manifest: pd.DataFrame, task: str, num_classes: int) -> np.ndarray:
    """The `labels` array a feature file stores for an image set with this manifest."""
    if task != MULTILABEL or "labels" not in manifest.columns:
        return manifest["class_index"].to_numpy().astype(np.int64)
    matrix = np.zeros((len(manifest), num_classes), dtype=np.int64)
    for row, present in enumerate(manifest["labels"]):
        matrix[row, np.asarray(present, dtype=np.int64)] = 1
    return matrix


def scoring_targets(labels: np.ndarray, task: str, num_classes: int, name: str = "labels") -> np.ndarray:
    """Labels as the dataset's metric and the probe take them: multi-hot (N, C) for a multi-label
    dataset (single-class labels (N,) become one-hot rows), unchanged otherwise."""
    if task != MULTILABEL:
        return labels
    from genbench.metrics.arrays import as_multi_hot  # here, so that prepare does not depend on the metrics

    return as_multi_hot(labels, name, num_rows=len(labels), num_classes=num_classes)
