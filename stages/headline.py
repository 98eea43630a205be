"""The headline numbers of a run, read from the stages' detailed metrics files.

`headline_metrics` is the one place they are computed: the `headline` stage writes them as DVC's
metrics (metrics/<dataset>/headline.json and metrics/summary.json) and the tracking layer logs the
same numbers on the parent MLflow run. Keys are flat, '/'-separated:

    <dataset>/zero_shot                      zero-shot accuracy (or the dataset's metric)
    <dataset>/cler/<source>                  CLER of each image set (generated, generated/ST, ...)
    <dataset>/probe/<source>                 linear-probe score of each image set
    <dataset>/clip_score/<source>            CLIP score of each generated set
    <dataset>/fid/<source>                   FID (CLIP features) of each image set
    usd_per_image/<data type>                USD per image of generated, retrieved, original
    usd_total                                the run's total USD

A missing file or value leaves its keys out (a partial run still has a headline)."""

from __future__ import annotations

import json
from pathlib import Path


def _read(path: Path) -> dict:
    """The JSON object at `path`, or {} when the stage has not written it."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _number(value) -> float | None:
    """`value` as a float when it is a number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _per_source(sets: dict, field: str, prefix: str) -> dict[str, float]:
    """{prefix/<source>: sets[source][field]} for every source whose field is a number."""
    out = {}
    for source, values in sets.items():
        number = _number(values.get(field)) if isinstance(values, dict) else None
        if number is not None:
            out[f"{prefix}/{source}"] = number
    return out


def dataset_headline(metrics_dir: Path) -> dict[str, float]:
    """One dataset's headline numbers (keys without the dataset prefix) from its metrics folder."""
    cler = _read(metrics_dir / "cler.json")
    probe = _read(metrics_dir / "probe.json")
    quality = _read(metrics_dir / "quality.json")
    out: dict[str, float] = {}
    if _number(cler.get("zero_shot")) is not None:
        out["zero_shot"] = float(cler["zero_shot"])
    out.update(_per_source(cler.get("sets", {}), "cler", "cler"))
    out.update(_per_source(probe.get("sets", {}), "score", "probe"))
    out.update(_per_source(quality.get("sources", {}), "clip_score", "clip_score"))
    out.update(_per_source(quality.get("sources", {}), "fid_clip", "fid"))
    return out


def cost_headline(cost: dict) -> dict[str, float]:
    """USD per image of each data type and the total, from metrics/cost.json's content."""
    out = {f"usd_per_image/{kind}": float(v) for kind, v in cost.get("usd_per_image", {}).items()
           if _number(v) is not None}
    if _number(cost.get("usd_total")) is not None:
        out["usd_total"] = float(cost["usd_total"])
    return out


def headline_metrics(root: Path, datasets: list[str]) -> dict[str, float]:
    """The run's headline numbers under `root` (the project folder holding metrics/), flat keys
    '<dataset>/<metric>/<source>' for each of `datasets` plus the pipeline-wide cost keys."""
    root = Path(root)
    out: dict[str, float] = {}
    for name in datasets:
        out.update({f"{name}/{k}": v for k, v in dataset_headline(root / "metrics" / name).items()})
    out.update(cost_headline(_read(root / "metrics" / "cost.json")))
    return out
