"""Correlation of a metric (CLER, CLIP score, FID, MTS) with the probe score across runs."""

from __future__ import annotations

import numpy as np
from scipy import stats

from genbench.errors import GenBenchError
from genbench.metrics.arrays import to_numpy


def _series(value, name: str) -> np.ndarray:
    array = to_numpy(value).astype(np.float64)
    if array.ndim != 1:
        raise GenBenchError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise GenBenchError(f"{name} holds NaN or infinite values; drop those runs first")
    if array.size == 0 or np.ptp(array) == 0:
        raise GenBenchError(f"{name} is empty or constant; a correlation needs values that vary")
    return array


def correlations(x, y) -> dict:
    """Pearson and Spearman coefficients of paired 1-D series with their two-sided p-values
    (scipy.stats): {pearson, pearson_p, spearman, spearman_p}. Needs at least 3 pairs."""
    x, y = _series(x, "x"), _series(y, "y")
    if len(x) != len(y):
        raise GenBenchError(f"x has {len(x)} values but y has {len(y)}; they must be paired")
    if len(x) < 3:
        raise GenBenchError(f"a correlation needs at least 3 pairs, got {len(x)}")
    pearson = stats.pearsonr(x, y)
    spearman = stats.spearmanr(x, y)
    return {
        "pearson": float(pearson.statistic),
        "pearson_p": float(pearson.pvalue),
        "spearman": float(spearman.statistic),
        "spearman_p": float(spearman.pvalue),
    }
