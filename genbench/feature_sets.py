"""The feature sets the scoring code reads from a dataset's features folder (the embed stage's
output), each with its labels as the dataset's metric takes them (genbench.labels.scoring_targets):
the real test set, and the external sets scored against it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench import storage
from genbench.features import load_features
from genbench.labels import scoring_targets


def targets(meta: dict, labels: np.ndarray, name: str) -> np.ndarray:
    """`labels` as the metric of the dataset described by `meta` (its meta.json) takes them:
    multi-hot for a multi-label dataset, unchanged otherwise; `name` says which labels in errors."""
    return scoring_targets(labels, meta.get("task", "multiclass"), len(meta["classnames"]), name)


def real_test_set(features: Path, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """The real test set's features (features/test.safetensors) and its labels as the metric takes them."""
    feats, labels, _ = load_features(features / "test.safetensors")
    return feats, targets(meta, labels, "test labels")


def external_sets(features: Path, generated: Path, meta: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Feature sets to score: 'generated' (all strategies), 'generated/<strategy>' (split by the
    strategy column of the manifest in `generated`), 'retrieved' (where its features exist) and
    'original', each with its labels as the dataset's metric takes them."""
    gen_feats, gen_labels, _ = load_features(features / "generated.safetensors")
    gen_labels = targets(meta, gen_labels, "generated labels")
    strategies = storage.read_manifest(generated)["strategy"].to_numpy()
    sets = {"generated": (gen_feats, gen_labels)}
    for s in dict.fromkeys(strategies):
        mask = strategies == s
        sets[f"generated/{s}"] = (gen_feats[mask], gen_labels[mask])
    for name in ("retrieved", "original"):
        path = features / f"{name}.safetensors"
        if name == "original" or path.is_file():
            feats, labels, _ = load_features(path)
            sets[name] = (feats, targets(meta, labels, f"{name} labels"))
    return sets
