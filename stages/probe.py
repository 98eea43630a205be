"""Stage `probe`: a linear probe on frozen CLIP features of each external image set, with the L2
strength chosen on a validation split of the training data only and one scoring on test."""

from __future__ import annotations

import click

from genbench import storage
from genbench.feature_sets import external_sets, real_test_set
from genbench.probe import linear_probe
from stages.frame.dataset_command import dataset_stage_command
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult
from stages.frame.sections import PROBE_SCHEMA

SCHEMA = PROBE_SCHEMA


def work(p: dict, paths: DatasetPaths) -> StageResult:
    meta = paths.read_meta()
    out_path = paths.metrics / "probe.json"
    test_feats, test_labels = real_test_set(paths.features, meta)
    result = {"metric": meta["metric"], "protocol": p["protocol"], "sets": {}}
    for name, (feats, labels) in external_sets(paths.features, paths.generated, meta).items():
        out = linear_probe(feats, labels, test_feats, test_labels, metric=meta["metric"], seed=p["seed"],
                           val_fraction=p["val_fraction"], protocol=p["protocol"], num_classes=len(meta["classnames"]))
        result["sets"][name] = {**out, "images": len(feats)}
        click.echo(f"probe: {name}: {out['score']:.2f} (l2={out['l2']:.2g})")
    storage.atomic_write_json(out_path, result)
    flat = {f"probe.{n.replace('/', '.')}": s["score"] for n, s in result["sets"].items()}
    selects_on_test = any(s.get("selects_on_test") for s in result["sets"].values())
    return StageResult(metrics=flat, artifacts=[out_path], tags={"probe_protocol": p["protocol"], "selects_on_test": selects_on_test})


command = dataset_stage_command(
    "probe", SCHEMA, work, "Linear probe on generated and on original data, scored on the test set (params: probe.*).",
    requires=lambda paths, p: paths.scored_features()
)
