"""Stage `probe`: a linear probe on frozen CLIP features of each external image set, with the L2
strength chosen on a validation split of the training data only and one scoring on test."""

from __future__ import annotations

import click

from genbench import storage
from genbench.features import load_features
from genbench.probe import linear_probe
from stages.cler import external_sets
from stages.inputs import FEATURES, METRICS, read_meta
from stages.options import params_option
from stages.params import Field, fraction, non_negative
from stages.runner import StageResult, run_stage

OUT = METRICS / "probe.json"
PROTOCOLS = ("clean", "elevater")
SCHEMA = {
    "val_fraction": Field(float, 0.2, fraction),
    "seed": Field(int, 0, non_negative),
    "protocol": Field(str, "clean", lambda v: None if v in PROTOCOLS else f"must be one of {', '.join(PROTOCOLS)}"),
}


def work(p: dict) -> StageResult:
    meta = read_meta()
    test_feats, test_labels, _ = load_features(FEATURES / "test.safetensors")
    result = {"metric": meta["metric"], "protocol": p["protocol"], "sets": {}}
    for name, (feats, labels) in external_sets().items():
        out = linear_probe(feats, labels, test_feats, test_labels, metric=meta["metric"], seed=p["seed"],
                           val_fraction=p["val_fraction"], protocol=p["protocol"], num_classes=len(meta["classnames"]))
        result["sets"][name] = {**out, "images": len(feats)}
        click.echo(f"probe: {name}: {out['score']:.2f} (l2={out['l2']:.2g})")
    storage.atomic_write_json(OUT, result)
    flat = {f"probe.{n.replace('/', '.')}": s["score"] for n, s in result["sets"].items()}
    return StageResult(metrics=flat, artifacts=[OUT], tags={"probe_protocol": p["protocol"]})


@click.command("probe")
@params_option
def command(params_file: str) -> None:
    """Linear probe on generated and on original data, scored on the test set (params: probe.*)."""
    run_stage("probe", params_file, SCHEMA, work)
