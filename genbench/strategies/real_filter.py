"""RF (He et al. 2023, Sec. 4): drop generated images whose features lie closest to few-shot real
images of another class.

For each generated image labelled c, its `neighbours` nearest few-shot real images are found by
cosine similarity of L2-normalised features (equal similarities: the earlier real image first);
its own share is the fraction of those neighbours of class c, and the image is kept when that
share is at least one half (the majority, ties kept). With neighbours=1 this is He et al.'s rule
as worded: an image whose nearest real sample belongs to another category is filtered out.
Multi-label sets (VOC-2007's label vectors, on either side) count a neighbour as of the image's
own class when the two share at least one class; for one class per image that is the rule above.

Two uses: `real_filter_mask` on frozen features after `embed` (the `tune` stage), and the `+RF`
strategy part of `generate`, whose workers record each candidate's own share (`rf_own_share`)
against the k-shot originals embedded with the CF model (`RealReferences`), for the selection of
genbench.strategies.selection."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genbench.errors import GenBenchError
from genbench.metrics.arrays import as_int_labels, as_matrix, as_multi_hot, unit_norm

KEEP_SHARE = 0.5  # an image is kept when at least this share of its neighbours is of its class


def own_share(gen_feats, gen_labels, real_feats, real_labels, *, neighbours: int = 1) -> np.ndarray:
    """Float (M,): the share of each generated image's `neighbours` nearest real images that are
    of its own class (module docstring)."""
    gen = unit_norm(as_matrix(gen_feats, "gen_feats").astype(np.float64))
    real = unit_norm(as_matrix(real_feats, "real_feats").astype(np.float64))
    if gen.shape[1] != real.shape[1]:
        raise GenBenchError(f"real filter: generated features have {gen.shape[1]} dims, real {real.shape[1]}; embed both with one model")
    if not 1 <= neighbours <= len(real):
        raise GenBenchError(f"real filter: neighbours={neighbours} must be between 1 and the {len(real)} real images")
    nearest = np.argsort(-(gen @ real.T), axis=1, kind="stable")[:, :neighbours]
    if np.ndim(gen_labels) == 1 and np.ndim(real_labels) == 1:
        gen_labels = as_int_labels(gen_labels, "gen_labels", num_rows=len(gen))
        real_labels = as_int_labels(real_labels, "real_labels", num_rows=len(real))
        return (real_labels[nearest] == gen_labels[:, None]).sum(axis=1) / neighbours
    gen_sets, real_sets = _label_sets(gen_labels, real_labels, len(gen), len(real))
    shared = (real_sets[nearest] & gen_sets[:, None, :]).any(axis=2)
    return shared.sum(axis=1) / neighbours


def _label_sets(gen_labels, real_labels, gen_rows: int, real_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Both sides as boolean (N, C) label sets; class indices become one-hot rows."""
    widths = {np.shape(x)[1] for x in (gen_labels, real_labels) if np.ndim(x) == 2}
    if len(widths) != 1:
        raise GenBenchError(f"real filter: generated and real label vectors have {sorted(widths)} classes; "
                            f"label both sides over the dataset's classes")
    classes = widths.pop()
    return (as_multi_hot(gen_labels, "gen_labels", num_rows=gen_rows, num_classes=classes).astype(bool),
            as_multi_hot(real_labels, "real_labels", num_rows=real_rows, num_classes=classes).astype(bool))


def real_filter_mask(gen_feats, gen_labels, real_feats, real_labels, *, neighbours: int = 1) -> np.ndarray:
    """Boolean (M,) mask: True for the generated images RF keeps (module docstring)."""
    return own_share(gen_feats, gen_labels, real_feats, real_labels, neighbours=neighbours) >= KEEP_SHARE


def references_sha256(manifest: pd.DataFrame) -> str:
    """What RF's verdicts depend on in a reference set: its images (key, class, image sha256) in order."""
    rows = [[str(k), int(c), str(s)] for k, c, s in zip(manifest["key"], manifest["class_index"], manifest["sha256"])]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


@dataclass
class RealReferences:
    """The class-labelled few-shot originals RF compares candidates with; their features are
    computed on first use by `embed` (the model that embeds the candidates) and kept."""

    images: np.ndarray
    labels: np.ndarray
    sha256: str
    _features: np.ndarray | None = field(default=None, repr=False)

    def features(self, embed) -> np.ndarray:
        if self._features is None:
            self._features = embed(self.images)
        return self._features


def load_real_references(directory: str | Path) -> RealReferences:
    """The image set at `directory` (the prepare stage's k-shot originals), verified."""
    from genbench import storage

    images, manifest = storage.load_image_set(directory)
    if "class_index" not in manifest.columns:
        raise GenBenchError(f"real filter: {directory}'s manifest has no class_index; RF needs class-labelled originals")
    if not len(manifest):
        raise GenBenchError(f"real filter: {directory} holds no images; RF needs the k-shot originals (run prepare)")
    return RealReferences(images=images, labels=manifest["class_index"].to_numpy(dtype=np.int64),
                          sha256=references_sha256(manifest))
