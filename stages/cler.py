"""Stage `cler`: the zero-shot baseline, CLER and CLER-ensemble of each external image set
(generated per strategy and in all, retrieved, original), with each metric's wall time.

Each set also gets its `label_agreement`: the share (%) of its own images that zero-shot CLIP
assigns to the class they are labelled with; for generated images, how often the image of a
prompt for class c is recognised as c (chance is 100 / number of classes)."""

from __future__ import annotations

import statistics

import click

from genbench import storage
from genbench.feature_sets import external_sets, real_test_set
from genbench.features import load_features
from genbench.metrics import cler, label_agreement, timed, zero_shot
from stages.frame.dataset_command import dataset_stage_command
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult
from stages.frame.sections import CLER_SCHEMA

SCHEMA = CLER_SCHEMA


def work(p: dict, paths: DatasetPaths) -> StageResult:
    meta = paths.read_meta()
    out = paths.metrics / "cler.json"
    test_feats, test_labels = real_test_set(paths.features, meta)
    text_feats, _, _ = load_features(paths.features / "text.safetensors")
    n, metric = len(meta["classnames"]), meta["metric"]
    zs, zs_times = timed(zero_shot, test_feats, test_labels, text_feats, metric=metric, ranking=p["ranking"],
                         repeats=p["timing_repeats"])
    result = {"metric": metric, "ranking": p["ranking"], "zero_shot": zs, "sets": {}, "seconds": {"zero_shot": statistics.median(zs_times)}}
    for name, (feats, labels) in external_sets(paths.features, paths.generated, meta).items():
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
