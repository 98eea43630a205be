"""Classifier tuning (He et al. 2023, Sec. 3 "CT", with SCE from their appendix C.4): a linear head
on frozen CLIP image features, initialised from the zero-shot text classifier and tuned on
generated images. The protocol is that of the authors' released classifier-tuning code
(CVMI-Lab/SyntheticData, a WiSE-FT fork, `ct_zsl.py --freeze-encoder`):

- Head: logits = normalise(x) @ W.T + b, W initialised to s * the unit-norm class text prototypes
  with s = 100 (ZERO_SHOT_TEMPERATURE, CLIP's logit scale) and b = 0, so the untuned head's logits
  are exactly the zero-shot baseline's scaled cosines.
- CE: cross-entropy against the images' labels (multi-hot rows spread evenly over their classes).
- SCE: (1 - a) * CE + a * H(softmax(z0 / T), softmax(z)), where z0 are the frozen zero-shot head's
  logits of the same image: the "normalised CLIP scores as a target". a = `soft_weight`
  (released `--sl 0.5`), T = `soft_temperature` (released `--sl_T 2`). Cross-entropy is linear in
  its target, so SCE is the soft cross-entropy against (1 - a) * label + a * softmax(z0 / T).
- Optimiser: AdamW (`lr`, `weight_decay`), the learning rate on a cosine from `lr` to 0 over all
  steps with no warm-up, the gradient norm clipped at 1.0, shuffled mini-batches of `batch_size`
  for `epochs` epochs.
- Reported head: the last epoch's (the test set scores one head). The released code keeps the epoch
  that scores best on the test set; `select="best_test_epoch"` does that, to compare with the
  published numbers, and says so in its name."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from genbench.errors import GenBenchError
from genbench.metrics.arrays import as_matrix, unit_norm
from genbench.metrics.cler import ZERO_SHOT_TEMPERATURE
from genbench.metrics.evaluation import evaluate, ranking_scores

GRAD_CLIP_NORM = 1.0  # released code: clip_grad_norm_(params, 1.0)
SELECTIONS = ("last", "best_test_epoch")


@dataclass(frozen=True)
class TuneSettings:
    """The optimiser and loss settings of one tuning run (module docstring)."""

    epochs: int = 30
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 0.1
    soft_weight: float = 0.5
    soft_temperature: float = 2.0
    select: str = "last"
    seed: int = 0


def zero_shot_head(text_feats) -> tuple[np.ndarray, np.ndarray]:
    """(W (C, D), b (C,)): 100 x the unit-norm class text prototypes, and zero bias."""
    prototypes = unit_norm(as_matrix(text_feats, "text_feats").astype(np.float64))
    return ZERO_SHOT_TEMPERATURE * prototypes, np.zeros(len(prototypes))


def head_logits(head, feats) -> np.ndarray:
    """(N, C) logits normalise(feats) @ W.T + b."""
    weights, bias = head
    return unit_norm(as_matrix(feats, "feats").astype(np.float64)) @ np.asarray(weights, np.float64).T + bias


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


def sce_targets(feats, labels, text_feats, *, soft_weight: float, soft_temperature: float) -> np.ndarray:
    """(N, C) SCE targets: (1 - soft_weight) * the label rows + soft_weight * softmax(z0 / T) of the
    zero-shot head's logits z0 (module docstring)."""
    teacher = torch.softmax(torch.from_numpy(head_logits(zero_shot_head(text_feats), feats) / soft_temperature), dim=1)
    hard = hard_targets(labels, teacher.shape[1])
    return (1.0 - soft_weight) * hard + soft_weight * teacher.numpy()


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """The released schedule with no warm-up: 0.5 * (1 + cos(pi * step / total_steps)) * base_lr."""
    return 0.5 * (1.0 + math.cos(math.pi * step / total_steps)) * base_lr


def tune_head(head, feats, targets, settings: TuneSettings, on_epoch=None):
    """The head after `settings.epochs` epochs of AdamW on soft_cross_entropy(logits, targets);
    on_epoch(head) is called after each epoch with the head as it stands. epochs=0 returns `head`."""
    if settings.epochs == 0:
        return head
    w = torch.tensor(np.asarray(head[0], np.float64), requires_grad=True)
    b = torch.tensor(np.asarray(head[1], np.float64), requires_grad=True)
    x = torch.from_numpy(unit_norm(as_matrix(feats, "feats").astype(np.float64)))
    t = torch.from_numpy(np.asarray(targets, np.float64))
    optimiser = torch.optim.AdamW([w, b], lr=settings.lr, weight_decay=settings.weight_decay, eps=1e-8)
    generator = torch.Generator().manual_seed(settings.seed)
    batches = math.ceil(len(x) / settings.batch_size)
    total, step = settings.epochs * batches, 0
    for _ in range(settings.epochs):
        order = torch.randperm(len(x), generator=generator)
        for rows in order.split(settings.batch_size):
            for group in optimiser.param_groups:
                group["lr"] = cosine_lr(settings.lr, step, total)
            optimiser.zero_grad()
            soft_cross_entropy(x[rows] @ w.T + b, t[rows]).backward()
            torch.nn.utils.clip_grad_norm_([w, b], GRAD_CLIP_NORM)
            optimiser.step()
            step += 1
        if on_epoch is not None:
            on_epoch((w.detach().numpy().copy(), b.detach().numpy().copy()))
    return w.detach().numpy(), b.detach().numpy()


def score_head(head, test_feats, test_labels, *, metric: str, ranking: str) -> float:
    """The dataset metric of the head on the test set (ranking metrics on the softmax of the logits
    when ranking='softmax', as the zero-shot baseline)."""
    return evaluate(metric, ranking_scores(metric, head_logits(head, test_feats), ranking, 1.0), test_labels)


def tuned_score(head, feats, targets, test_feats, test_labels, settings: TuneSettings, *, metric: str,
                ranking: str) -> float:
    """The test score of the head tuned on (feats, targets): the last epoch's, or the best epoch's on
    the test set when settings.select == 'best_test_epoch'."""
    if settings.select not in SELECTIONS:
        raise GenBenchError(f"tune: select {settings.select!r} is unknown; use one of {', '.join(SELECTIONS)}")
    per_epoch: list[float] = []
    record = None
    if settings.select == "best_test_epoch":
        def record(h):
            per_epoch.append(score_head(h, test_feats, test_labels, metric=metric, ranking=ranking))
    tuned = tune_head(head, feats, targets, settings, on_epoch=record)
    if per_epoch:
        return max(per_epoch)
    return score_head(tuned, test_feats, test_labels, metric=metric, ranking=ranking)


def tune_scores(gen_feats, gen_labels, test_feats, test_labels, text_feats, settings: TuneSettings, *,
                metric: str, ranking: str) -> dict:
    """Zero-shot, CE- and SCE-tuned scores of the head on the test set."""
    head = zero_shot_head(text_feats)
    targets = {
        "ce": hard_targets(gen_labels, len(head[0])),
        "sce": sce_targets(gen_feats, gen_labels, text_feats, soft_weight=settings.soft_weight,
                           soft_temperature=settings.soft_temperature),
    }
    out = {"zero_shot": score_head(head, test_feats, test_labels, metric=metric, ranking=ranking)}
    for name, target in targets.items():
        out[name] = tuned_score(head, gen_feats, target, test_feats, test_labels, settings, metric=metric,
                                ranking=ranking)
    return out
