"""Reproductions of GenBench Figure 4 (CLER, CLIP score and FID against the linear-probe score)
and Figure 5 (evaluation time per metric) from a run's own data, as PNG files.

Both are pure functions of the gathered data (genbench.analysis) and an output path; the file is
written atomically.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from genbench import storage  # noqa: E402
from genbench.analysis import METRICS_VS_PROBE, metric_probe_correlations, time_ratio  # noqa: E402
from genbench.errors import GenBenchError  # noqa: E402

METRIC_LABELS = {
    "cler": "CLER score (%)",
    "cler_ensemble": "CLER-ensemble score (%)",
    "clip_score": "CLIP score",
    "fid_clip": "FID in CLIP feature space",
    "pad": "proxy-A distance",
    "probe": "linear probe score (%)",
    "encode_prompts": "prompt encoding",
}
TIME_LABELS = {"cler": "CLER", "probe": "linear probe", "fid_clip": "FID (CLIP)", "clip_score": "CLIP score", "pad": "proxy-A"}
HIGHLIGHT_COLORS = {"cler": "#c44e52", "probe": "#4c72b0"}
OTHER_COLOR = "#9a9a9a"
MARKERS = "osD^vP*Xph<>"


def _save(fig, path: str | Path) -> None:
    with storage.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


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
    genbench.analysis.gather_rows; `correlations` from metric_probe_correlations (computed from
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
    _save(fig, path)
    return correlations


def figure5_evaluation_time(summary: dict[str, dict], path: str | Path, *, highlight=("cler", "probe"),
                            title: str | None = None) -> None:
    """Mean evaluation time per metric (bars, log scale) with standard-error bars and every timed
    repeat as a dot; the metrics in `highlight` (CLER and the linear probe) in their own colours,
    and the probe/CLER time ratio in the title. `summary` comes from
    genbench.analysis.timing_summary."""
    if not summary:
        raise GenBenchError("Figure 5 needs the timings of at least one metric; run the quality stage")
    names = sorted(summary, key=lambda m: summary[m]["mean"])
    means = np.array([summary[m]["mean"] for m in names])
    if np.any(means <= 0):
        raise GenBenchError(f"Figure 5 plots on a log scale; metric {names[int(np.argmin(means))]!r} has mean time {means.min()!r}")
    sems = np.array([summary[m]["sem"] for m in names])
    lower = np.minimum(sems, means * 0.999)
    colors = [HIGHLIGHT_COLORS.get(m, OTHER_COLOR) if m in highlight else OTHER_COLOR for m in names]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(names) + 1.5), 3.8))
    x = np.arange(len(names))
    ax.bar(x, means, color=colors, edgecolor="black", linewidth=0.5, yerr=[lower, sems], capsize=4, zorder=2)
    rng = np.random.default_rng(0)
    for i, m in enumerate(names):
        values = np.asarray(summary[m].get("values", []), dtype=float)
        values = values[values > 0]
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=9, color="black", alpha=0.6, zorder=3)
        top = max([means[i] + sems[i], *values])
        ax.text(i, top * 1.2, _seconds_label(means[i]), ha="center", va="bottom", fontsize=7, zorder=4)
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 3)
    ax.set_xticks(x, [TIME_LABELS.get(m, m) for m in names], fontsize=8, rotation=20)
    ax.set_ylabel("seconds per dataset (log scale)", fontsize=8)
    ax.grid(axis="y", alpha=0.3, which="both", zorder=0)
    ratio = time_ratio(summary)
    datasets = max(s["datasets"] for s in summary.values())
    repeats = max(s["n"] for s in summary.values())
    heading = title or "Evaluation time per metric, on cached CLIP features"
    detail = f"mean \u00b1 s.e. over {repeats} timed runs, {datasets} dataset(s)"
    if ratio is not None:
        detail += f"; linear probe / CLER = {ratio:,.0f}x" if ratio >= 10 else f"; linear probe / CLER = {ratio:.2g}x"
    ax.set_title(f"{heading}\n{detail}", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _seconds_label(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} \u00b5s"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"
