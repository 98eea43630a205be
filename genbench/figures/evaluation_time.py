"""GenBench Figure 5 from a run's own data: what each metric costs in evaluation time (the timed
repeats in each dataset's `quality.json`), summarised and drawn as bars on a log scale. The PNG
is written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from genbench.errors import GenBenchError  # noqa: E402
from genbench.figures._save import save_csv, save_png  # noqa: E402
from genbench.figures.metric_vs_probe import read_metric_file  # noqa: E402

FIGURE5_TITLE = "Figure 5: evaluation time per metric"
TIME_LABELS = {"cler": "CLER", "probe": "linear probe", "fid_clip": "FID (CLIP)", "clip_score": "CLIP score", "pad": "proxy-A"}
HIGHLIGHT_COLORS = {"cler": "#c44e52", "probe": "#4c72b0"}
OTHER_COLOR = "#9a9a9a"


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


def figure5_evaluation_time(summary: dict[str, dict], path: str | Path, *, highlight=("cler", "probe"),
                            title: str | None = None) -> None:
    """Mean evaluation time per metric (bars, log scale) with standard-error bars and every timed
    repeat as a dot; the metrics in `highlight` (CLER and the linear probe) in their own colours,
    and the probe/CLER time ratio in the title. `summary` comes from
    timing_summary."""
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
    save_png(fig, path)


def _seconds_label(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} \u00b5s"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def draw_figure5(metrics_dir: str | Path, datasets: list[str], path: str | Path, data_csv: str | Path) -> None:
    """Write Figure 5's summary (metric, mean seconds, std) to `data_csv` and draw it to `path`."""
    summary = timing_summary(gather_timings(metrics_dir, datasets))
    save_csv(data_csv, ["metric", "seconds", "std"], [[metric, s["mean"], s["std"]] for metric, s in summary.items()])
    figure5_evaluation_time(summary, path)
