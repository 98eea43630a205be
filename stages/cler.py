"""Stage `cler`: the zero-shot baseline, CLER and CLER-ensemble of each external image set
(generated per strategy and in all, retrieved, original), with each metric's wall time.

Each set also gets its `label_agreement`: the share (%) of its own images that zero-shot CLIP
assigns to the class they are labelled with; for generated images, how often the image of a
prompt for class c is recognised as c (chance is 100 / number of classes)."""

from __future__ import annotations

import statistics
from pathlib import Path

import click
import numpy as np

from genbench import feature_sets, storage
from genbench.features import load_features
from genbench.metrics import cler, label_agreement, timed, zero_shot
from genbench.metrics.evaluation import RANKING_SCORES
from stages.frame.dataset_command import dataset_stage_command
from stages.frame.paths import DatasetPaths
from stages.frame.params import Field, positive
from stages.frame.runner import StageResult

SCHEMA = {
    "timing_repeats": Field(int, 3, positive, help="timed repeats per metric (Figure 5)"),
    "ranking": Field(str, "softmax", choices=RANKING_SCORES,
                     help="scores 11-point mAP and ROC AUC rank by: softmax (released code) | cosine"),
}


def external_sets(paths: DatasetPaths, features: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """genbench.feature_sets.external_sets of the dataset, from `features` (default: the dataset's
    features folder, embed.model's)."""
    return feature_sets.external_sets(features or paths.features, paths.generated, paths.read_meta())


def targets(paths: DatasetPaths, labels: np.ndarray, name: str) -> np.ndarray:
    """`labels` as the dataset's metric takes them: multi-hot for a multi-label dataset."""
    return feature_sets.targets(paths.read_meta(), labels, name)


def real_test_set(paths: DatasetPaths, features: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The real test set's features and its labels as the dataset's metric takes them."""
    return feature_sets.real_test_set(features or paths.features, paths.read_meta())


def work(p: dict, paths: DatasetPaths) -> StageResult:
    meta = paths.read_meta()
    out = paths.metrics / "cler.json"
    test_feats, test_labels = real_test_set(paths)
    text_feats, _, _ = load_features(paths.features / "text.safetensors")
    n, metric = len(meta["classnames"]), meta["metric"]
    zs, zs_times = timed(zero_shot, test_feats, test_labels, text_feats, metric=metric, ranking=p["ranking"],
                         repeats=p["timing_repeats"])
    result = {"metric": metric, "ranking": p["ranking"], "zero_shot": zs, "sets": {}, "seconds": {"zero_shot": statistics.median(zs_times)}}
    for name, (feats, labels) in external_sets(paths).items():
        scores, times = timed(cler, feats, labels, test_feats, test_labels, num_classes=n, text_feats=text_feats,
                              metric=metric, ranking=p["ranking"], repeats=p["timing_repeats"])
        scores.pop("zero_shot", None)
        agreement = label_agreement(feats, labels, text_feats)
        result["sets"][name] = {**scores, "label_agreement": agreement, "images": len(feats)}
        result["seconds"][name] = statistics.median(times)
        result["seconds_all"] = {**result.get("seconds_all", {}), name: times}
    storage.atomic_write_json(out, result)
    gen = result["sets"]["generated"]
    click.echo(f"cler: zero-shot {zs:.2f}  CLER(generated) {gen['cler']:.2f}  ensemble {gen['cler_ensemble']:.2f}  "
               f"CLER(original) {result['sets']['original']['cler']:.2f} -> {out}")
    flat = {"zero_shot": zs}
    for name, scores in result["sets"].items():
        for k in ("cler", "cler_ensemble", "cler_ensemble_protosum", "label_agreement"):
            flat[f"{k}.{name.replace('/', '.')}"] = scores[k]
    flat["cler_seconds"] = result["seconds"]["generated"]
    return StageResult(metrics=flat, artifacts=[out])


command = dataset_stage_command(
    "cler", SCHEMA, work, "Zero-shot, CLER and CLER-ensemble scores on the real test set (params: cler.*).",
    requires=lambda paths, p: paths.scored_features()
)
