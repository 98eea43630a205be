"""The k-shot protocol: which training images form the "original" (human-labelled) set.

Classes are visited in index order with one seeded generator (numpy's default_rng(seed)). For
class c, the pool is the training images labelled c that no earlier class has drawn; `shots` of
them are drawn without replacement and sorted. The result is the concatenation of the draws, so
rows c*shots to (c+1)*shots - 1 are the images drawn for class c (see `drawn_for`), and no
image appears twice.

- Single-label (integer labels (N,)): pool = the images of class c. The classes' pools are
  disjoint, so k-shot means exactly k images per class.
- Multi-label (multi-hot labels (N, C)): pool = the positives of class c not drawn for an earlier
  class. Each class then has k images drawn for it and at least k positives in the set (an image
  drawn for one class may also show others); the set has exactly C*k distinct images.

A class whose pool holds fewer than `shots` images is an error naming it (and, multi-label, how
many of its positives earlier classes already took).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from genbench.errors import GenBenchError


def _class_pools(labels: np.ndarray, num_classes: int):
    """(pool of class c given the images already taken, positives of c) for each c, in index order.

    Integer labels are grouped by one stable sort (memory O(N), as ImageNet's 1.28 M labels need);
    multi-hot labels (N, C) are read column by column."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
        for cls in range(num_classes):
            members = order[bounds[cls]:bounds[cls + 1]]
            yield (lambda taken, m=members: m), len(members)
        return
    if labels.ndim == 2 and labels.shape[1] == num_classes:
        for cls in range(num_classes):
            column = labels[:, cls].astype(bool)
            yield (lambda taken, col=column: np.flatnonzero(col & ~taken)), int(column.sum())
        return
    raise GenBenchError(f"k-shot labels must be (N,) class indices or (N, {num_classes}) multi-hot, got shape {labels.shape}")


def kshot_indices(labels: np.ndarray, num_classes: int, shots: int, seed: int,
                  classnames: Sequence[str] | None = None) -> np.ndarray:
    """Indices into `labels` of the k-shot set (the module's protocol), class by class. `seed` is
    anything numpy.random.default_rng takes; `classnames`, when given, name a short class."""
    multilabel = np.asarray(labels).ndim == 2
    rng = np.random.default_rng(seed)
    taken = np.zeros(len(labels), dtype=bool)
    picked = []
    for cls, (pool_of, total) in enumerate(_class_pools(labels, num_classes)):
        pool = pool_of(taken)
        if len(pool) < shots:
            name = f"class {cls}" + (f" ({classnames[cls]!r})" if classnames is not None else "")
            why = (f"{len(pool)} training images left ({total} positives, {total - len(pool)} already drawn for "
                   "earlier classes)") if multilabel else f"only {len(pool)} training images"
            raise GenBenchError(f"prepare.shots = {shots} but {name} has {why}; lower shots")
        draw = np.sort(rng.choice(pool, size=shots, replace=False))
        taken[draw] = True
        picked.append(draw)
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def drawn_for(num_classes: int, shots: int) -> np.ndarray:
    """The class each row of `kshot_indices`' result was drawn for."""
    return np.repeat(np.arange(num_classes), shots)
