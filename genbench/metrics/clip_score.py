"""CLIP score of image-prompt pairs."""

from __future__ import annotations

import numpy as np

from genbench.errors import GenBenchError
from genbench.metrics.arrays import as_matrix, l2_normalize


def clip_score(image_feats, text_feats) -> float:
    """Mean over paired rows i of 100 * max(cos(image_i, text_i), 0), where row i of `text_feats`
    is the CLIP text embedding of the prompt image i was generated from (no 2.5 rescaling)."""
    images = as_matrix(image_feats, "image_feats")
    texts = as_matrix(text_feats, "text_feats")
    if images.shape != texts.shape:
        raise GenBenchError(
            f"image_feats {images.shape} and text_feats {texts.shape} must be paired rows of the same shape"
        )
    cosines = np.sum(l2_normalize(images, "image_feats") * l2_normalize(texts, "text_feats"), axis=1)
    return float(np.mean(100.0 * np.clip(cosines, 0, None)))
