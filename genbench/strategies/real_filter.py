"""RF (He et al. 2023, Sec. 4): drop generated images whose features lie closest to few-shot real
images of another class.

For each generated image labelled c, its `neighbours` nearest few-shot real images are found by
cosine similarity of L2-normalised features; the image is kept when the majority of those
neighbours (ties kept) are of class c. With neighbours=1 this is He et al.'s rule as worded:
an image whose nearest real sample belongs to another category is filtered out. Works on frozen
features, so it applies to any strategy's images after `embed`."""

from __future__ import annotations

import numpy as np

from genbench.errors import GenBenchError
from genbench.metrics.arrays import as_int_labels, as_matrix


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def real_filter_mask(gen_feats, gen_labels, real_feats, real_labels, *, neighbours: int = 1) -> np.ndarray:
    """Boolean (M,) mask: True for the generated images RF keeps (module docstring)."""
    gen = _unit(as_matrix(gen_feats, "gen_feats").astype(np.float64))
    real = _unit(as_matrix(real_feats, "real_feats").astype(np.float64))
    if gen.shape[1] != real.shape[1]:
        raise GenBenchError(f"real filter: generated features have {gen.shape[1]} dims, real {real.shape[1]}; embed both with one model")
    if not 1 <= neighbours <= len(real):
        raise GenBenchError(f"real filter: neighbours={neighbours} must be between 1 and the {len(real)} real images")
    gen_labels = as_int_labels(gen_labels, "gen_labels", num_rows=len(gen))
    real_labels = as_int_labels(real_labels, "real_labels", num_rows=len(real))
    nearest = np.argsort(-(gen @ real.T), axis=1, kind="stable")[:, :neighbours]
    same = (real_labels[nearest] == gen_labels[:, None]).sum(axis=1)
    return same * 2 >= neighbours
