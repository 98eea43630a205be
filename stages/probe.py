"""Stage `probe`: a linear probe on frozen CLIP features of each external image set, with the L2
strength chosen on a validation split of the training data only and one scoring on test."""

from __future__ import annotations

import click

from genbench import storage
from genbench.features import load_features
from genbench.probe import linear_probe
from stages.cler import external_sets
from stages.dataset_command import dataset_stage_command
from stages.inputs import DatasetPaths
from stages.params import Field, fraction, non_negative
from stages.runner import StageResult

PROTOCOLS = ("clean", "elevater")
SCHEMA = {
    "val_fraction": Field(float, 0.2, fraction),
    "seed": Field(int, 0, non_negative),
    "protocol": Field(str, "clean", lambda v: None if v in PROTOCOLS else f"must be one of {', '.join(PROTOCOLS)}"),
}


def work(p: dict, paths: DatasetPaths) -> StageResult:
    meta = paths.read_meta()
    out_path = paths.metrics / "probe.json"
    test_feats, test_labels, _ = load_features(paths.features / "test.safetensors")
    result = {"metric": meta["metric"], "protocol": p["protocol"], "sets": {}}
    for name, (feats, labels) in external_sets(paths).items():
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
    requires=DatasetPaths.scored_features
)
