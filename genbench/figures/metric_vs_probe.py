"""GenBench Figure 4 from a run's own data: how well CLER, CLIP score and FID (in CLIP feature
space) predict the linear-probe score across the datasets and sources of a run, and the scatter
that shows it.

Inputs are the per-dataset metric files of the pipeline: `<metrics_dir>/<dataset>/cler.json`,
`probe.json` and `quality.json` (schemas in docs/metrics.md). The PNG is written atomically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from genbench.errors import GenBenchError, run_first  # noqa: E402
from genbench.figures._save import save_csv, save_png  # noqa: E402
from genbench.metrics import correlations  # noqa: E402

FIGURE4_TITLE = "Figure 4: correlation of CLER, CLIP score and FID with the linear-probe score"
FIGURE4_DATA = ["dataset", "source", "probe", "cler", "clip_score", "fid_clip"]
METRICS_VS_PROBE = ("cler", "clip_score", "fid_clip")
MIN_POINTS = 3

# Source selections for gather_rows: name -> predicate on a source name ("generated/ST", ...).
SOURCE_SELECTIONS: dict[str, Callable[[str], bool]] = {
    "strategies": lambda source: source.startswith("generated/"),
    "generated": lambda source: source == "generated",
    "all": lambda source: True,
}

METRIC_FILES = {"cler": "cler", "probe": "probe", "quality": "quality"}  # file stem -> producing stage

METRIC_LABELS = {
    "cler": "CLER score (%)",
    "cler_ensemble": "CLER-ensemble score (%)",
    "clip_score": "CLIP score",
    "fid_clip": "FID in CLIP feature space",
    "pad": "proxy-A distance",
    "probe": "linear probe score (%)",
    "encode_prompts": "prompt encoding",
}
MARKERS = "osD^vP*Xph<>"


def read_metric_file(metrics_dir: str | Path, dataset: str, stem: str) -> dict:
    path = Path(metrics_dir) / dataset / f"{stem}.json"
    if not path.is_file():
        raise GenBenchError(f"{path} not found; {run_first(METRIC_FILES[stem], dataset)}")
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


def _correlation_title(metric: str, stats: dict) -> str:
    label = METRIC_LABELS.get(metric, metric)
    if stats["reason"] is not None:
        return f"{label}\nr, \u03c1: n/a ({stats['n']} point(s))"
    return f"{label}\nr = {stats['pearson']:.2f}, \u03c1 = {stats['spearman']:.2f} (n = {stats['n']})"


def figure4_metric_vs_probe(rows: list[dict], path: str | Path, *, correlations: dict | None = None,
                            metrics=METRICS_VS_PROBE, target: str = "probe", title: str | None = None) -> dict:
    """One scatter panel per metric (default CLER, CLIP score, FID in CLIP space) against the
    probe score, one point per row (dataset x source: colour = dataset, marker = source), with
    Pearson r and Spearman rho in each panel's title. `rows` come from
    gather_rows; `correlations` from metric_probe_correlations (computed from
    `rows` when None). Returns the correlations drawn."""
    if not rows:
        raise GenBenchError("Figure 4 needs at least one (dataset, source) row; run the cler, probe and quality stages")
    correlations = correlations or metric_probe_correlations(rows, metrics=metrics, target=target)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    sources = list(dict.fromkeys(r["source"] for r in rows))
    colors = plt.get_cmap("tab10" if len(datasets) <= 10 else "tab20")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.9), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for row in rows:
            if row.get(metric) is None or row.get(target) is None:
                continue
            ax.scatter(row[metric], row[target], s=36, alpha=0.85, edgecolors="black", linewidths=0.4,
                       color=colors(datasets.index(row["dataset"]) % colors.N),
                       marker=MARKERS[sources.index(row["source"]) % len(MARKERS)])
        ax.set_title(_correlation_title(metric, correlations[metric]), fontsize=9)
        ax.set_xlabel(METRIC_LABELS.get(metric, metric), fontsize=8)
        ax.set_ylabel(METRIC_LABELS.get(target, target), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], linestyle="", marker="o", color=colors(i % colors.N), label=d) for i, d in enumerate(datasets)]
    handles += [plt.Line2D([], [], linestyle="", marker=MARKERS[i % len(MARKERS)], color="black", label=s)
                for i, s in enumerate(sources)]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    notes = []
    if any(c.get("probe_selects_on_test") for c in correlations.values()):
        notes.append("probe scores select L2 on the test set (protocol l2-on-test)")
    heading = title or "Metric vs linear-probe score across datasets and sources"
    fig.suptitle(heading + ("\n" + "; ".join(notes) if notes else ""), fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
    return correlations


def draw_figure4(metrics_dir: str | Path, datasets: list[str], path: str | Path, data_csv: str | Path) -> None:
    """Write Figure 4's rows (gather_rows, columns FIGURE4_DATA) to `data_csv` and draw it to `path`."""
    rows = gather_rows(metrics_dir, datasets)
    save_csv(data_csv, FIGURE4_DATA, [[r[c] for c in FIGURE4_DATA] for r in rows])
    figure4_metric_vs_probe(rows, path)
