"""Classifier tuning (He et al. 2023, Sec. 3, "CT"): a linear head on frozen CLIP image features,
initialised from the zero-shot text classifier and tuned on generated images.

- Head: logits = s * normalise(x) @ W.T, W initialised to the L2-normalised class text prototypes
  and s = 100 (ZERO_SHOT_TEMPERATURE), so the untuned head's logits are exactly the zero-shot
  baseline's scaled cosines (and its scores the zero-shot scores).
- CE: cross-entropy against the images' labels (multi-hot rows spread evenly over their classes).
- SCE: cross-entropy against soft targets built from normalised CLIP scores. An image's CLIP score
  is cos(image, text prototype of its class); it is min-max normalised to q in [0, 1] over the
  generated images of that class, and the target puts q on the class and (1 - q) / (C - 1) on each
  other class, so doubtful images pull less towards their label. He et al.'s appendix C.4 is not
  in the kit's copy of the paper; this is the kit's reading of "the normalized clip scores as a
  target" (Sec. 3). The other reading, the softmax of the zero-shot logits, has zero gradient at
  the zero-shot initialisation and would leave the head as it is (docs/tune.md).
- Optimiser: full-batch Adam over W for `steps` steps (deterministic on CPU)."""

from __future__ import annotations

import numpy as np
import torch

from genbench.errors import GenBenchError
from genbench.metrics.arrays import as_matrix
from genbench.metrics.cler import ZERO_SHOT_TEMPERATURE
from genbench.metrics.evaluation import evaluate, ranking_scores


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def zero_shot_head(text_feats) -> np.ndarray:
    """(C, D) head weights: the unit-norm class text prototypes."""
    return _unit(as_matrix(text_feats, "text_feats").astype(np.float64))


def head_logits(weights, feats) -> np.ndarray:
    """(N, C) logits s * normalise(feats) @ weights.T."""
    return ZERO_SHOT_TEMPERATURE * _unit(as_matrix(feats, "feats").astype(np.float64)) @ np.asarray(weights, np.float64).T


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_c targets[c] * log_softmax(logits)[c]."""
    return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def hard_targets(labels, num_classes: int) -> np.ndarray:
    """(N, C) target rows: one-hot for integer labels, multi-hot rows divided by their sum."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return np.eye(num_classes)[labels.astype(int)]
    sums = labels.sum(axis=1, keepdims=True)
    if np.any(sums == 0):
        raise GenBenchError("tune: a generated image has no positive class; check the generated labels")
    return labels / sums


def normalised_clip_scores(feats, labels, text_feats) -> np.ndarray:
    """(N,) per image, cos(image, its class's text prototype) min-max normalised to [0, 1] over the
    images of that class (1 where a class's images all score alike)."""
    labels = np.asarray(labels).astype(int)
    cos = _unit(as_matrix(feats, "feats").astype(np.float64)) @ zero_shot_head(text_feats).T
    own = cos[np.arange(len(labels)), labels]
    q = np.ones(len(labels))
    for c in np.unique(labels):
        rows = labels == c
        low, high = own[rows].min(), own[rows].max()
        if high > low:
            q[rows] = (own[rows] - low) / (high - low)
    return q


def clip_soft_targets(feats, labels, text_feats) -> np.ndarray:
    """(N, C) SCE targets: q on the labelled class, (1 - q) / (C - 1) on each other (module docstring)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise GenBenchError("tune: SCE needs one class per generated image; use loss ce for multi-label generated sets")
    num_classes = len(as_matrix(text_feats, "text_feats"))
    q = normalised_clip_scores(feats, labels, text_feats)
    targets = np.repeat(((1.0 - q) / (num_classes - 1))[:, None], num_classes, axis=1)
    targets[np.arange(len(labels)), labels.astype(int)] = q
    return targets


def tune_head(weights, feats, targets, *, steps: int, lr: float) -> np.ndarray:
    """Head weights after `steps` full-batch Adam steps on soft_cross_entropy(head logits, targets);
    steps=0 returns `weights` unchanged."""
    w = torch.tensor(np.asarray(weights, np.float64), requires_grad=True)
    x = torch.from_numpy(ZERO_SHOT_TEMPERATURE * _unit(as_matrix(feats, "feats").astype(np.float64)))
    t = torch.from_numpy(np.asarray(targets, np.float64))
    optimiser = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        soft_cross_entropy(x @ w.T, t).backward()
        optimiser.step()
    return w.detach().numpy()


def score_head(weights, test_feats, test_labels, *, metric: str, ranking: str) -> float:
    """The dataset metric of the head on the test set (ranking metrics on the softmax of the logits
    when ranking='softmax', as the zero-shot baseline)."""
    return evaluate(metric, ranking_scores(metric, head_logits(weights, test_feats), ranking, 1.0), test_labels)


# Losses: name -> fn(feats, labels, text_feats, num_classes) -> (N, C) targets the head is tuned on.
LOSS_TARGETS = {
    "ce": lambda feats, labels, text, n: hard_targets(labels, n),
    "sce": lambda feats, labels, text, n: clip_soft_targets(feats, labels, text),
}


def tune_scores(gen_feats, gen_labels, test_feats, test_labels, text_feats, *, metric: str, ranking: str,
                steps: int, lr: float) -> dict:
    """Zero-shot, CE- and SCE-tuned scores of the head on the test set."""
    w0 = zero_shot_head(text_feats)
    out = {"zero_shot": score_head(w0, test_feats, test_labels, metric=metric, ranking=ranking)}
    for name, make in LOSS_TARGETS.items():
        targets = make(gen_feats, gen_labels, text_feats, len(w0))
        w = tune_head(w0, gen_feats, targets, steps=steps, lr=lr)
        out[name] = score_head(w, test_feats, test_labels, metric=metric, ranking=ranking)
    return out
