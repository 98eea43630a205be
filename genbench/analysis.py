"""Analysis across the datasets and strategies of a run: how well CLER, CLIP score and FID (in
CLIP feature space) predict the linear-probe score (GenBench Figure 4), and what each metric
costs in evaluation time (GenBench Figure 5).

Inputs are the per-dataset metric files of the pipeline: `<metrics_dir>/<dataset>/cler.json`,
`probe.json` and `quality.json` (schemas in docs/metrics.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from genbench.errors import GenBenchError
from genbench.metrics import correlations

METRICS_VS_PROBE = ("cler", "clip_score", "fid_clip")
MIN_POINTS = 3

# Source selections for gather_rows: name -> predicate on a source name ("generated/ST", ...).
SOURCE_SELECTIONS: dict[str, Callable[[str], bool]] = {
    "strategies": lambda source: source.startswith("generated/"),
    "generated": lambda source: source == "generated",
    "all": lambda source: True,
}

METRIC_FILES = {"cler": "cler", "probe": "probe", "quality": "quality"}  # file stem -> producing stage


def read_metric_file(metrics_dir: str | Path, dataset: str, stem: str) -> dict:
    path = Path(metrics_dir) / dataset / f"{stem}.json"
    if not path.is_file():
        raise GenBenchError(f"{path} not found; run the {METRIC_FILES[stem]} stage first (dvc repro {METRIC_FILES[stem]}@{dataset})")
    return json.loads(path.read_text())


def gather_rows(metrics_dir: str | Path, datasets: list[str], *, sources: str = "strategies") -> list[dict]:
    """One row per (dataset, source) present in all three metric files.

    `sources` picks the sources (SOURCE_SELECTIONS): "strategies" (default: each generated/<strategy>,
    the points of the paper's Figure 4), "generated" (the pooled generated set), "all" (also
    original, whose clip_score is None). Row keys: dataset, source, metric (the dataset's
    evaluation metric), images, cler, cler_ensemble, clip_score, fid_clip, pad, probe,
    probe_protocol, probe_selects_on_test.
    """
    if sources not in SOURCE_SELECTIONS:
        raise GenBenchError(f"unknown source selection {sources!r}; known: {', '.join(SOURCE_SELECTIONS)}")
    keep = SOURCE_SELECTIONS[sources]
    rows = []
    for dataset in datasets:
        cler, probe, quality = (read_metric_file(metrics_dir, dataset, stem) for stem in METRIC_FILES)
        for source, scores in cler["sets"].items():
            if not keep(source) or source not in probe["sets"] or source not in quality["sources"]:
                continue
            probed, measured = probe["sets"][source], quality["sources"][source]
            rows.append({
                "dataset": dataset,
                "source": source,
                "metric": cler.get("metric"),
                "images": scores.get("images"),
                "cler": scores["cler"],
                "cler_ensemble": scores.get("cler_ensemble"),
                "clip_score": measured.get("clip_score"),
                "fid_clip": measured.get("fid_clip"),
                "pad": measured.get("pad"),
                "probe": probed["score"],
                "probe_protocol": probe.get("protocol", "clean"),
                "probe_selects_on_test": bool(probed.get("selects_on_test", False)),
            })
    return rows


def _usable(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def metric_probe_correlations(rows: list[dict], *, metrics=METRICS_VS_PROBE, target: str = "probe") -> dict:
    """Pearson and Spearman correlation of each metric with `target` across `rows`.

    Rows where either value is missing (None, NaN) are left out of that metric's pairs. Returns
    {metric: {n, pearson, pearson_p, spearman, spearman_p, reason, probe_selects_on_test}}: with
    fewer than MIN_POINTS pairs, or a constant series, the four numbers are None and `reason`
    says why; otherwise `reason` is None. `probe_selects_on_test` is True when any pair's probe
    score came from a protocol that selects on the test set.
    """
    out = {}
    for metric in metrics:
        pairs = [(r[metric], r[target], r) for r in rows if _usable(r.get(metric)) and _usable(r.get(target))]
        x = np.array([p[0] for p in pairs], dtype=np.float64)
        y = np.array([p[1] for p in pairs], dtype=np.float64)
        entry = {"n": len(pairs), "pearson": None, "pearson_p": None, "spearman": None, "spearman_p": None, "reason": None,
                 "probe_selects_on_test": any(p[2].get("probe_selects_on_test", False) for p in pairs)}
        if len(pairs) < MIN_POINTS:
            entry["reason"] = f"{len(pairs)} point(s) with both {metric} and {target}; a correlation needs at least {MIN_POINTS}"
        elif np.ptp(x) == 0 or np.ptp(y) == 0:
            entry["reason"] = f"{metric if np.ptp(x) == 0 else target} is constant over the {len(pairs)} points"
        else:
            entry.update(correlations(x, y))
        out[metric] = entry
    return out


def gather_timings(metrics_dir: str | Path, datasets: list[str]) -> dict[str, dict[str, list[float]]]:
    """{dataset: {metric: [seconds of each timed repeat]}} from each dataset's quality.json."""
    return {dataset: read_metric_file(metrics_dir, dataset, "quality")["seconds"] for dataset in datasets}


def timing_summary(timings: dict[str, dict[str, list[float]]]) -> dict[str, dict]:
    """Per metric, over every timed repeat of every dataset (one repeat = one evaluation of one
    dataset): {mean, std (ddof=1; 0 for one value), sem (std / sqrt(n)), min, max, n, datasets,
    per_dataset: {dataset: mean}, values: [every repeat]}."""
    pooled: dict[str, list[float]] = {}
    per_dataset: dict[str, dict[str, float]] = {}
    for dataset, seconds in timings.items():
        for metric, values in seconds.items():
            values = [float(v) for v in values]
            if not values or not all(math.isfinite(v) and v >= 0 for v in values):
                raise GenBenchError(f"timings of {metric!r} on {dataset!r} = {values!r} must be non-empty non-negative seconds")
            pooled.setdefault(metric, []).extend(values)
            per_dataset.setdefault(metric, {})[dataset] = float(np.mean(values))
    summary = {}
    for metric, values in pooled.items():
        array = np.asarray(values)
        std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
        summary[metric] = {
            "mean": float(array.mean()),
            "std": std,
            "sem": std / math.sqrt(len(array)),
            "min": float(array.min()),
            "max": float(array.max()),
            "n": len(array),
            "datasets": len(per_dataset[metric]),
            "per_dataset": per_dataset[metric],
            "values": values,
        }
    return summary


def time_ratio(summary: dict[str, dict], numerator: str = "probe", denominator: str = "cler") -> float | None:
    """Mean time of `numerator` over mean time of `denominator` (e.g. how many times slower the
    probe is than CLER); None when either is missing or the denominator is 0."""
    if numerator not in summary or denominator not in summary or summary[denominator]["mean"] == 0:
        return None
    return summary[numerator]["mean"] / summary[denominator]["mean"]
