"""Figure 11's scores for one extra CLIP backbone: CLER and the clean linear probe of every
external feature set, with the same functions the cler and probe stages use."""

from __future__ import annotations

import numpy as np

from genbench.metrics import cler
from genbench.probe import linear_probe


def backbone_scores(sets: dict[str, tuple[np.ndarray, np.ndarray]], test: tuple[np.ndarray, np.ndarray],
                    text_feats: np.ndarray, *, num_classes: int, metric: str, ranking: str = "softmax",
                    seed: int = 0, val_fraction: float = 0.2) -> dict:
    """{"sets": {name: {"cler", "probe", "images"}}} of `sets` (name -> (features, labels)) on the
    real `test` (features, labels) of one backbone."""
    test_feats, test_labels = test
    out = {}
    for name, (feats, labels) in sets.items():
        c = cler(feats, labels, test_feats, test_labels, num_classes=num_classes, text_feats=text_feats,
                 metric=metric, ranking=ranking)
        p = linear_probe(feats, labels, test_feats, test_labels, metric=metric, seed=seed, val_fraction=val_fraction,
                         num_classes=num_classes)
        out[name] = {"cler": c["cler"], "probe": p["score"], "images": len(feats)}
    return {"sets": out}
