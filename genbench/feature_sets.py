"""The feature sets a scoring stage reads from what `embed` wrote for one dataset.

Each set is (features, labels) with the labels as the dataset's metric takes them (multi-hot for a
multi-label dataset, genbench.labels). `layout` is anything with the dataset's folders as
attributes (`features`, `generated`) and `read_meta()` (the prepare stage's meta.json), as the
stages' DatasetPaths has them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from genbench import storage
from genbench.features import load_features
from genbench.labels import scoring_targets


class DatasetLayout(Protocol):
    features: Path
    generated: Path

    def read_meta(self) -> dict: ...


def external_sets(paths: DatasetLayout, features: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Feature sets to score: 'generated' (all strategies), 'generated/<strategy>', 'retrieved',
    'original', each with its labels as the dataset's metric takes them (genbench.labels); from
    `features` (default: the dataset's features folder, embed.model's)."""
    features = features or paths.features
    gen_feats, gen_labels, _ = load_features(features / "generated.safetensors")
    gen_labels = targets(paths, gen_labels, "generated labels")
    strategies = storage.read_manifest(paths.generated)["strategy"].to_numpy()
    sets = {"generated": (gen_feats, gen_labels)}
    for s in dict.fromkeys(strategies):
        mask = strategies == s
        sets[f"generated/{s}"] = (gen_feats[mask], gen_labels[mask])
    for name in ("retrieved", "original"):
        path = features / f"{name}.safetensors"
        if name == "original" or path.is_file():
            feats, labels, _ = load_features(path)
            sets[name] = (feats, targets(paths, labels, f"{name} labels"))
    return sets


def targets(paths: DatasetLayout, labels: np.ndarray, name: str) -> np.ndarray:
    """`labels` as the dataset's metric takes them: multi-hot for a multi-label dataset."""
    meta = paths.read_meta()
    return scoring_targets(labels, meta.get("task", "multiclass"), len(meta["classnames"]), name)


def real_test_set(paths: DatasetLayout, features: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The real test set's features and its labels as the dataset's metric takes them."""
    feats, labels, _ = load_features((features or paths.features) / "test.safetensors")
    return feats, targets(paths, labels, "test labels")
