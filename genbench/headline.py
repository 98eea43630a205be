"""The headline numbers of a run, read from the stages' detailed metrics files.

`headline_metrics` is the one place they are computed: the `headline` stage (stages/headline.py)
writes them as DVC's metrics (metrics/<dataset>/headline.json and metrics/summary.json) and the tracking layer logs the
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


USD_SCALE = 1e6  # DVC's tables round to 5 decimals: a generated image's 1e-7 USD reads as USD per 1M images
HEADLINE_DIR = "headline"  # metrics/<dataset>/headline/: one small file per image set, DVC's only metrics
SOURCE_DATA_TYPE = {"generated": "generated", "retrieved": "retrieved", "original": "original"}  # source root -> ledger data type


def dataset_rows(headline: dict[str, float], usd: dict[str, float]) -> dict[str, dict[str, float]]:
    """`dataset_headline`'s numbers regrouped for `dvc metrics show`, one row per file:
    {"zero_shot": {"zero_shot": ..}, "<source>": {cler, probe, clip_score, fid, usd_per_1M_images}},
    so the table's columns are the few metric names and its rows the image sets."""
    rows: dict[str, dict[str, float]] = {}
    if "zero_shot" in headline:
        rows["zero_shot"] = {"zero_shot": headline["zero_shot"]}
    for key, value in headline.items():
        metric, _, source = key.partition("/")
        if source:
            rows.setdefault(source, {})[metric] = value
    for source, row in rows.items():
        kind = SOURCE_DATA_TYPE.get(source.split("/")[0])
        if kind and f"usd_per_image/{kind}" in usd:
            row["usd_per_1M_images"] = usd[f"usd_per_image/{kind}"] * USD_SCALE
    return rows


def write_dataset_headline(root: Path, dataset: str) -> list[Path]:
    """Write metrics/<dataset>/headline/<source>.json (and zero_shot.json) as one folder that
    replaces the previous one whole (files of sources no longer produced go with it; a crash
    leaves the previous folder as it was); returns the files."""
    from genbench import storage  # pyarrow: only the writer needs it, not the tracking layer that reads headlines

    base = Path(root) / "metrics" / dataset
    usd = cost_headline(_read(Path(root) / "metrics" / "cost.json"))
    rows = dataset_rows(dataset_headline(base), usd)
    with storage.atomic_dir(base / HEADLINE_DIR) as staging:
        for source, row in rows.items():
            path = staging / f"{source}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            storage.atomic_write_json(path, row)
    return [base / HEADLINE_DIR / f"{source}.json" for source in rows]


def summary(cost: dict) -> dict[str, float]:
    """metrics/summary.json's content: the pipeline-wide total, in USD."""
    return {"usd_total": float(cost["usd_total"])} if _number(cost.get("usd_total")) is not None else {}
