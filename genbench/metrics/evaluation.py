"""The per-dataset evaluation metrics of GenBench (its Table 4), in percent.

Every metric takes `scores`, an (N, C) matrix of logits or similarities (higher means more
likely), and the ground truth, and returns a Python float in [0, 100].

- accuracy: share of rows whose arg-max class is the label (ties go to the lower class index).
- mean_per_class: the recall of each class present in the labels, averaged over those classes
  (scikit-learn's balanced accuracy).
- map_11point: multi-label; per class, the PASCAL VOC 2007 11-point interpolated average precision
  AP = 1/11 * sum_{t in 0, 0.1, ..., 1} max(precision at recall >= t) (0 when no recall reaches t),
  averaged over the classes that have at least one positive. Precision and recall are taken at
  each distinct score threshold, so tied scores count together and the order of rows never
  matters. Labels are multi-hot (N, C); integer labels (N,) are read as one-hot rows.
- roc_auc: binary; the area under the ROC curve of the positive-class score, with ties counted
  as half (the Mann-Whitney statistic). For (N, 2) scores the positive-class score is
  scores[:, 1] - scores[:, 0], the margin that orders rows as a softmax over the two would;
  1-D or (N, 1) scores are used as they are. Labels are 0/1 (N,).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import rankdata

from genbench.errors import GenBenchError
from genbench.metrics.arrays import as_int_labels, as_matrix, as_multi_hot, to_numpy


def accuracy(scores, labels) -> float:
    scores = as_matrix(scores, "scores")
    labels = as_int_labels(labels, "labels", num_rows=len(scores), num_classes=scores.shape[1])
    return float(100.0 * np.mean(scores.argmax(axis=1) == labels))


def mean_per_class(scores, labels) -> float:
    scores = as_matrix(scores, "scores")
    labels = as_int_labels(labels, "labels", num_rows=len(scores), num_classes=scores.shape[1])
    predictions = scores.argmax(axis=1)
    recalls = [np.mean(predictions[labels == c] == c) for c in np.unique(labels)]
    return float(100.0 * np.mean(recalls))


def _eleven_point_ap(class_scores: np.ndarray, positives: np.ndarray) -> float:
    order = np.argsort(-class_scores, kind="stable")
    sorted_scores = class_scores[order]
    true_positives = np.cumsum(positives[order])
    ranks = np.arange(1, len(order) + 1)
    last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    true_positives, ranks = true_positives[last_of_tie], ranks[last_of_tie]
    precision = true_positives / ranks
    recall = true_positives / positives.sum()
    points = [precision[recall >= k / 10].max() if np.any(recall >= k / 10) else 0.0 for k in range(11)]
    return float(np.mean(points))


def map_11point(scores, labels) -> float:
    scores = as_matrix(scores, "scores")
    labels = as_multi_hot(labels, "labels", num_rows=len(scores), num_classes=scores.shape[1])
    with_positives = np.flatnonzero(labels.sum(axis=0) > 0)
    if len(with_positives) == 0:
        raise GenBenchError("map_11point: labels have no positive entry in any class; check the test labels")
    aps = [_eleven_point_ap(scores[:, c], labels[:, c]) for c in with_positives]
    return float(100.0 * np.mean(aps))


def _positive_margin(scores) -> np.ndarray:
    array = to_numpy(scores)
    if array.ndim == 1:
        array = array[:, None]
    matrix = as_matrix(array, "scores")
    if matrix.shape[1] == 1:
        return matrix[:, 0]
    if matrix.shape[1] == 2:
        return matrix[:, 1] - matrix[:, 0]
    raise GenBenchError(f"roc_auc is binary: scores must have 1 or 2 columns, got shape {matrix.shape}")


def roc_auc(scores, labels) -> float:
    margin = _positive_margin(scores)
    labels = as_int_labels(labels, "labels", num_rows=len(margin), num_classes=2)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise GenBenchError(f"roc_auc needs both classes in the labels, got {n_pos} positive and {n_neg} negative")
    ranks = rankdata(margin)
    return float(100.0 * (ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# Metrics that rank the test images per class (not by each image's arg-max): their scores depend on
# how each row is normalised, so a classifier says which scores it ranks by (`ranking_scores`).
RANKING_METRICS = frozenset({"map_11point", "roc_auc"})


def log_softmax(logits, temperature: float) -> np.ndarray:
    """Row-wise log of the softmax of `temperature` x logits, in float64. It ranks every column
    exactly as the softmax does, without rounding confident probabilities to tied 1.0s (at
    temperature 100 a cosine margin of 0.4 already gives 1 - 4e-18)."""
    scaled = temperature * as_matrix(logits, "logits")
    top = scaled.argmax(axis=1)
    scaled -= scaled[np.arange(len(scaled)), top][:, None]
    others = np.exp(scaled)
    others[np.arange(len(scaled)), top] = 0.0
    return scaled - np.log1p(others.sum(axis=1, keepdims=True))  # log1p keeps 1 + 1e-40 apart from 1


# Ranking scores: name -> fn(logits (N, C), temperature) -> the (N, C) scores ranking metrics use.
# softmax: as the released GenBench code, each image's scores normalised across the classes
# (as log-probabilities: the same ranking, no ties from rounding); cosine: the logits themselves
# (raw cosine similarities), a variant.
RANKING_SCORES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "softmax": log_softmax,
    "cosine": lambda logits, temperature: as_matrix(logits, "logits"),
}


def check_ranking(ranking: str) -> str:
    if ranking not in RANKING_SCORES:
        raise GenBenchError(f"unknown ranking scores {ranking!r}; known: {', '.join(RANKING_SCORES)}")
    return ranking


def ranking_scores(metric: str, logits, ranking: str, temperature: float):
    """The scores `metric` is computed on: the logits for arg-max metrics (accuracy, mean per
    class; a softmax would not change them), RANKING_SCORES[ranking](logits, temperature) for
    ranking metrics."""
    check_ranking(ranking)
    return RANKING_SCORES[ranking](logits, temperature) if check_metric(metric) in RANKING_METRICS else logits


# Contract: name -> fn(scores (N, C), labels) -> float in percent; names match DatasetSpec.metric.
METRIC_FUNCTIONS: dict[str, Callable[..., float]] = {
    "accuracy": accuracy,
    "mean_per_class": mean_per_class,
    "map_11point": map_11point,
    "roc_auc": roc_auc,
}


def check_metric(metric: str) -> str:
    if metric not in METRIC_FUNCTIONS:
        raise GenBenchError(f"unknown metric {metric!r}; known metrics: {', '.join(METRIC_FUNCTIONS)}")
    return metric


def evaluate(metric: str, scores, labels) -> float:
    """The dataset metric `metric` of (N, C) `scores` against `labels`, in percent."""
    return METRIC_FUNCTIONS[check_metric(metric)](scores, labels)
