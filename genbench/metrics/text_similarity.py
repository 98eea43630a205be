"""Mean text similarity (MTS) of text-to-text retrieval, GenBench Section 3.3.

Per class, MTS is the mean similarity between the class-name query and its top-k retrieved
captions; the dataset MTS is the mean of the per-class values, so every class weighs the same
whatever its k. Values stay in the similarity's own units (cosine), not percent.
"""

from __future__ import annotations

import numpy as np

from genbench.errors import GenBenchError
from genbench.metrics.arrays import to_numpy


def per_class_text_similarity(similarities_per_class) -> np.ndarray:
    """(C,) per-class MTS from one 1-D array of top-k similarities per class (a (C, k) matrix
    works too)."""
    if isinstance(similarities_per_class, (str, bytes)) or len(similarities_per_class) == 0:
        raise GenBenchError("similarities_per_class must hold one array of top-k similarities per class")
    means = []
    for index, hits in enumerate(similarities_per_class):
        hits = to_numpy(hits).astype(np.float64)
        if hits.ndim != 1 or hits.size == 0:
            raise GenBenchError(f"class {index}: need a non-empty 1-D array of similarities, got shape {hits.shape}")
        if not np.isfinite(hits).all():
            raise GenBenchError(f"class {index}: similarities hold NaN or infinite values")
        means.append(hits.mean())
    return np.asarray(means)


def mean_text_similarity(similarities) -> float:
    """Dataset-level MTS: the mean over classes of the per-class MTS."""
    return float(per_class_text_similarity(similarities).mean())
